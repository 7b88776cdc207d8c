"""One module per `edgenn` subcommand: NAME, HELP, add_arguments(parser), run(args) -> int."""
