"""`edgenn doctor --port P [--model LOCAL.enn] [--deep]`: what is on the board and is it ready; with
--deep, the layer zoo through every kernel the board has, against golden (a report for a bug report)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from edgenn.device.client import add_port_argument, require_port
from edgenn.device.deep import deep_lines
from edgenn.device.doctor import deep_check, diagnose, report_lines
from edgenn.errors import UserError

NAME = "doctor"
HELP = "check a board: MicroPython, .mpy compatibility, kernel, free heap/flash, deployed model"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_port_argument(parser)
    parser.add_argument("--model", type=Path, help="a local .enn: does the board hold exactly this file?")
    parser.add_argument("--board", help="board profile (default: guessed from the board)")
    parser.add_argument("--baud", type=int, default=115200, help="baud rate (default 115200)")
    parser.add_argument(
        "--deep",
        action="store_true",
        help="also run the layer zoo through every kernel on the board, byte for byte against golden, with "
        "the asm self-test, one inference's time per kernel, heap and executable RAM (a few seconds)",
    )
    parser.add_argument("--json", action="store_true", help="one JSON object on stdout")


def run(args: argparse.Namespace) -> int:
    port = require_port(args.port)
    d = diagnose(port, args.model, board=args.board, baud=args.baud)
    deep = None
    if args.deep:
        if d.runtime is None or str(d.runtime).startswith("import failed"):
            raise UserError(
                f"--deep needs the runtime on the board: run `edgenn deploy MODEL.enn --port {port}`"
            )
        deep = deep_check(port, args.baud)
        d.problems += [f"{c.kernel} kernel on zoo model {c.case}: {c.detail()}" for c in deep.failures()]
    if args.json:
        print(json.dumps({**d.as_dict(), **({"deep": deep.as_dict()} if deep else {})}))
    else:
        lines = report_lines(d)
        if deep is not None:  # before the problems/ok verdict at the end
            tail = next(i for i, line in enumerate(lines) if line == "problems:" or line.startswith("ok:"))
            lines[tail:tail] = deep_lines(deep)
        print("\n".join(lines))
    return 1 if d.problems else 0
