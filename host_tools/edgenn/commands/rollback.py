"""`edgenn rollback --port P`: the previous model (model.enn.bak, kept by deploy) back in service."""

from __future__ import annotations

import argparse

from edgenn.device.client import add_port_argument, require_port
from edgenn.device.swap import rollback

NAME = "rollback"
HELP = "put the previous model (model.enn.bak, kept by deploy) back; run again to undo"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_port_argument(parser)
    parser.add_argument("--baud", type=int, default=115200, help="baud rate (default 115200)")


def run(args: argparse.Namespace) -> int:
    rollback(require_port(args.port), baud=args.baud)
    return 0
