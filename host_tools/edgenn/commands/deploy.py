"""`edgenn deploy MODEL.enn --port P`: install the runtime, main.py and the model on a board."""

from __future__ import annotations

import argparse
from pathlib import Path

from edgenn.device.client import add_port_argument, require_port
from edgenn.device.deploy import deploy

NAME = "deploy"
HELP = "copy the runtime (compiled for the board), main.py and a model to a board; only what changed"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", type=Path, help="the .enn model file")
    add_port_argument(parser)
    parser.add_argument("--board", help="board profile for budgets (default: guessed from the board's arch)")
    parser.add_argument("--baud", type=int, default=115200, help="baud rate (default 115200)")
    parser.add_argument("--dry-run", action="store_true", help="say what would change, change nothing")
    parser.add_argument("--no-restart", action="store_true", help="stay at the REPL, do not start main.py")


def run(args: argparse.Namespace) -> int:
    deploy(
        args.model,
        require_port(args.port),
        board=args.board,
        dry_run=args.dry_run,
        baud=args.baud,
        restart=not args.no_restart,
    )
    return 0
