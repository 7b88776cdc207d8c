"""`edgenn fleet SUB ...`: many boards through an MQTT broker (keygen, join, deploy, status, watch).

Each subcommand is a module of `edgenn.fleet` with `HELP`, `add_arguments(parser)` and `run(args)`.
"""

from __future__ import annotations

import argparse
import importlib

NAME = "fleet"
HELP = "many boards on Wi-Fi through an MQTT broker: keygen, join, deploy, status, watch"

# The order `edgenn fleet --help` lists them in: the journey of a fleet.
SUBCOMMANDS = ["keygen", "join", "deploy", "status", "watch"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="fleet_command", metavar="SUBCOMMAND")
    sub.required = True
    for name in SUBCOMMANDS:
        try:
            module = importlib.import_module(f"edgenn.fleet.{name}")
        except ModuleNotFoundError as exc:
            if exc.name != f"edgenn.fleet.{name}":
                raise
            continue
        p = sub.add_parser(name, help=module.HELP, description=module.HELP)
        module.add_arguments(p)
        p.set_defaults(_run=module.run)


def run(args: argparse.Namespace) -> int:  # replaced by the subcommand's run via set_defaults
    raise AssertionError("unreachable: argparse requires a fleet subcommand")
