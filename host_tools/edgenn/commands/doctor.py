"""`edgenn doctor --port P [--model LOCAL.enn]`: what is on the board and is it ready."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from edgenn.device.client import add_port_argument, require_port
from edgenn.device.doctor import diagnose, report_lines

NAME = "doctor"
HELP = "check a board: MicroPython, .mpy compatibility, kernel, free heap/flash, deployed model"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_port_argument(parser)
    parser.add_argument("--model", type=Path, help="a local .enn: does the board hold exactly this file?")
    parser.add_argument("--board", help="board profile (default: guessed from the board)")
    parser.add_argument("--baud", type=int, default=115200, help="baud rate (default 115200)")
    parser.add_argument("--json", action="store_true", help="one JSON object on stdout")


def run(args: argparse.Namespace) -> int:
    d = diagnose(require_port(args.port), args.model, board=args.board, baud=args.baud)
    if args.json:
        print(json.dumps(d.as_dict()))
    else:
        print("\n".join(report_lines(d)))
    return 1 if d.problems else 0
