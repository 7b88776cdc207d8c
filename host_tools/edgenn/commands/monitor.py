"""`edgenn monitor --port P`: print what the board emits until Ctrl-C."""

from __future__ import annotations

import argparse
import json
import sys
import time

from edgenn.device.client import add_port_arguments, client_from_args

NAME = "monitor"
HELP = "print what the board emits (e.g. a sensor loop's JSON lines) until Ctrl-C"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_port_arguments(parser)
    parser.add_argument("--reset", action="store_true", help="soft-reset the board first (see it boot)")
    parser.add_argument("--lines", type=int, default=None, metavar="N", help="stop after N lines")
    parser.add_argument("--seconds", type=float, default=None, metavar="S", help="stop after S seconds")


def annotate(line: str) -> str:
    """A JSON line with an anomaly score and flag (a sensor loop printing the board's `score` and
    `anomaly`, or a `predict` reply) gets the verdict at its end, easy to spot in a scrolling log."""
    if '"anomaly"' not in line:
        return line
    try:
        obj = json.loads(line)
    except ValueError:
        return line
    if not isinstance(obj, dict) or not isinstance(obj.get("anomaly"), bool):
        return line
    score = f"score {obj['score']}: " if "score" in obj else ""
    return f"{line}   <- {score}{'ANOMALY' if obj['anomaly'] else 'normal'}"


def run(args: argparse.Namespace) -> int:
    stop_at = None if args.seconds is None else time.monotonic() + args.seconds
    count = 0
    with client_from_args(args) as board:
        if args.reset:
            board.send_soft_reset()
        try:
            for line in board.lines(until=stop_at):
                print(annotate(line), flush=True)
                count += 1
                if args.lines is not None and count >= args.lines:
                    break
        except KeyboardInterrupt:
            pass  # Ctrl-C is how a monitor session ends: exit 0
    print(f"edgenn monitor: {count} line(s) from {args.port}", file=sys.stderr)
    return 0
