"""Many boards through an MQTT broker: signed manifests, chunked model transfer, deploy/status/watch,
join over USB, and a simulated fleet for scale. The wire contract is docs/fleet-protocol.md.

Each `edgenn fleet SUB` is a module here exposing `HELP`, `add_arguments(parser)` and `run(args)`;
`edgenn.commands.fleet` wires them (the list is SUBCOMMANDS there).
"""
