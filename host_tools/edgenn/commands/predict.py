"""`edgenn predict --port P V1,V2,...`: one prediction from the board."""

from __future__ import annotations

import argparse
import json

from edgenn.device.client import add_port_arguments, client_from_args
from edgenn.errors import UserError

NAME = "predict"
HELP = "ask the board for one prediction (values comma-separated; negative first value: put -- before it)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_port_arguments(parser)
    parser.add_argument(
        "values",
        nargs="+",
        metavar="V1,V2,...",
        help="feature values in the model's input order, comma- or space-separated",
    )
    parser.add_argument("--json", action="store_true", help="print the board's JSON reply as is")
    parser.add_argument("--reset", action="store_true", help="soft-reset the board first")


def feature_line(values: list[str]) -> str:
    """Join the values into one request line, checking each is a number so that a typo is caught here
    with a clear message (the board would also refuse it)."""
    parts = [p.strip() for v in values for p in v.split(",")]
    parts = [p for p in parts if p]
    if not parts:
        raise UserError("no feature values given")
    for i, p in enumerate(parts, 1):
        try:
            x = float(p)
        except ValueError:
            raise UserError(f"value {i} ({p!r}) is not a number") from None
        if x != x or x in (float("inf"), float("-inf")):
            raise UserError(f"value {i} ({p!r}) is not finite")
    return ",".join(parts)


def run(args: argparse.Namespace) -> int:
    line = feature_line(args.values)
    with client_from_args(args) as board:
        info = board.connect(reset=args.reset)
        if info.get("model") is None:
            raise UserError(f"the board has no working model: {info.get('error')}")
        expected = info.get("values", info["inputs"])  # a front end takes a raw window
        if line.count(",") + 1 != expected:
            what = "raw window values" if info.get("frontend") else "values"
            raise UserError(f"the model {info['model']!r} takes {expected} {what}, got {line.count(',') + 1}")
        reply = board.request(line)
    if "error" in reply:
        raise UserError(f"the board refused it: {reply['error']}")
    if args.json:
        print(json.dumps(reply))
    elif "class" in reply:
        print(
            f"{reply['label']}  (class {reply['class']}; int8 scores {reply['scores']}; "
            f"{reply['us']} us on the board)"
        )
    else:
        print(f"{reply['value']}  (int8 outputs {reply['scores']}; {reply['us']} us on the board)")
    return 0
