"""`edgenn ...`: a thin command line over the library.

Each subcommand lives in its own module under `edgenn.commands` and exposes
`NAME`, `HELP`, `add_arguments(parser)` and `run(args) -> int`. This file only wires them up
and turns `UserError` (and Ctrl-C) into one line on stderr with a non-zero exit.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from typing import NoReturn

from edgenn import __version__
from edgenn.errors import UserError

# Order is the order `edgenn --help` lists them in: the user's journey.
COMMAND_MODULES = [
    "datasets",
    "record",
    "train",
    "tune",
    "quantize",
    "evaluate",
    "report",
    "estimate",
    "boards",
    "vboard",
    "flash",
    "deploy",
    "rollback",
    "doctor",
    "predict",
    "eval_device",
    "monitor",
    "fleet",
]

EXIT_USER_ERROR = 2
EXIT_INTERRUPTED = 130


def _load_commands() -> list:
    modules = []
    for name in COMMAND_MODULES:
        try:
            modules.append(importlib.import_module(f"edgenn.commands.{name}"))
        except ModuleNotFoundError as exc:
            if exc.name != f"edgenn.commands.{name}":
                raise
    return modules


class OneLineParser(argparse.ArgumentParser):
    """Every usage mistake (an invalid choice, a missing argument, a bad number) is one line, like every
    other error, for every command and option at once: the usage block is what `--help` is for."""

    def error(self, message: str) -> NoReturn:
        hint = f"`{self.prog} --help` lists the options"
        self.exit(EXIT_USER_ERROR, f"{self.prog}: error: {message} ({hint})\n")


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(
        prog="edgenn",
        description="Train a small neural network, quantize it to integers, and run it on an ESP32 "
        "under stock MicroPython (or on a virtual board).",
    )
    parser.add_argument("--version", action="version", version=f"edgenn {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for module in _load_commands():
        p = sub.add_parser(module.NAME, help=module.HELP, description=module.HELP)
        module.add_arguments(p)
        p.set_defaults(_run=module.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    # Known before parsing: Ctrl-C can land while the commands import NumPy (a second or more on a
    # loaded machine), and still deserves one line naming the command.
    command = next((a for a in argv if not a.startswith("-")), "")
    try:
        parser = build_parser()
        args = parser.parse_args(argv)
        command = args.command
        return int(args._run(args) or 0)
    except UserError as exc:
        print(f"edgenn {command}: error: {exc}", file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt as exc:
        # a command that knows what a late Ctrl-C left behind says so in the exception (deploy)
        print(f"{'edgenn ' + command if command else 'edgenn'}: {str(exc) or 'interrupted'}", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        return 0


if __name__ == "__main__":
    sys.exit(main())
