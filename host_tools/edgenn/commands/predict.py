"""`edgenn predict --port P V1,V2,... [ROW2 ...]`: predictions from the board, one per row.

Rows come as arguments (one row per argument, values comma- or space-separated; or one value per
argument for a single row), from `--file ROWS.csv`, or one per line on stdin. Negative values work as
typed: `predict -1.5,2,3` and `predict -- -1.5,2,3` alike.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

import numpy as np

from edgenn.device.client import NUMBER, VALUE_MAX, add_port_arguments, client_from_args, parse_number
from edgenn.errors import UserError

NAME = "predict"
HELP = "ask the board for predictions: one row per argument (V1,V2,... or 'V1 V2 ...'), --file, or stdin"
_SEPARATORS = re.compile(r"[,\s]+")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_port_arguments(parser)
    parser.add_argument(
        "values",
        nargs="*",
        metavar="ROW",
        help="a row of feature values in the model's input order, comma- or space-separated (quote a "
        "row with spaces); several arguments are several rows, or one value each for a single row",
    )
    parser.add_argument(
        "--file",
        type=Path,
        metavar="ROWS.csv",
        help="rows from a file, one per line (a header line is skipped); '-' reads stdin",
    )
    parser.add_argument(
        "--json",
        action="store_true",
        help="one JSON object: the board's reply (class id, label, int8 scores, us; anomaly models: "
        "score and anomaly) for one row; "
        '{"model", "predictions": [replies...]} for several',
    )
    parser.add_argument("--reset", action="store_true", help="soft-reset the board first")
    # "-1.5,2,3" is a row, not an option: any argument that starts with "-" and a digit (or "-.5") is
    # taken as values (predict has no option that looks like that).
    parser._negative_number_matcher = re.compile(r"^-\.?\d")


def split_values(text: str) -> list[str]:
    return [p for p in _SEPARATORS.split(text.strip()) if p]


def _check_numbers(values: list[str], row: int, rows: int) -> None:
    where = f" in row {row}" if rows > 1 else ""
    for i, p in enumerate(values, 1):  # the board's grammar (client.NUMBER): typos caught here
        if len(p) > VALUE_MAX:
            raise UserError(f"value {i}{where} is longer than {VALUE_MAX} characters")
        if NUMBER.fullmatch(p) is None:
            raise UserError(f"value {i}{where} ({p!r}) is not a number")
        if parse_number(p) is None:
            raise UserError(f"value {i}{where} ({p!r}) is not finite")


def rows_from_arguments(
    values: list[str], n_inputs: int, what: str = "values", model: str = ""
) -> list[list[str]]:
    """One row per argument when each holds n_inputs values; else all arguments together are one row."""
    per_arg = [split_values(v) for v in values]
    if all(len(t) == n_inputs for t in per_arg):
        return per_arg
    flat = [p for t in per_arg for p in t]
    if len(flat) == n_inputs:
        return [flat]
    counts = ", ".join(str(len(t)) for t in per_arg)
    raise UserError(
        f"the model {model!r} takes {n_inputs} {what}, got {len(flat)} in {len(per_arg)} argument(s) "
        f"({counts}): give one row per argument, or one value per argument for a single row"
    )


def rows_from_lines(lines: list[str], n_inputs: int, source: str) -> list[list[str]]:
    rows = []
    for number, line in enumerate(lines, 1):
        values = split_values(line)
        if not values:
            continue
        if number == 1 and not _is_number(values[0]):
            continue  # a header line
        if len(values) != n_inputs:
            raise UserError(f"{source} line {number}: {len(values)} values, the model takes {n_inputs}")
        rows.append(values)
    if not rows:
        raise UserError(f"{source}: no rows")
    return rows


def _is_number(text: str) -> bool:
    return parse_number(text) is not None


def saturation_warnings(board, rows: list[list[str]], limit: int = 5) -> list[str]:
    """Rows with values outside the range the deployed model was calibrated for: the board clamps them
    to the range's end, so its answer is for another input, as confident as ever. The model is read
    back from the board (its input scaling says the range). Models with a front end compute their
    network inputs on the board from the window: not checked here."""
    from edgenn import golden, modelfile

    X = np.array([[float(v) for v in row] for row in rows])
    qm = modelfile.from_bytes(board.read_model_file())
    hit = golden.saturated(qm, X)
    lo, hi = golden.input_range(qm)
    notes = []
    for r in np.flatnonzero(hit.any(axis=1))[:limit]:
        where = f"row {r + 1}: " if len(rows) > 1 else ""
        values = ", ".join(
            f"{qm.feature_names[d]} = {X[r, d]:g} (the model's input range {lo[d]:.4g} .. {hi[d]:.4g})"
            for d in np.flatnonzero(hit[r])
        )
        notes.append(
            f"{where}input saturated: {values}; the board clamped it to the range's end, so the answer is "
            "for another input (the range is the calibration data's with a margin: values like these lie "
            "well outside it)"
        )
    if hit.any(axis=1).sum() > limit:
        notes.append(f"... and {int(hit.any(axis=1).sum()) - limit} more row(s) with saturated inputs")
    return notes


def _read_lines(args: argparse.Namespace) -> tuple[list[str], str] | None:
    if args.file is not None:
        if str(args.file) == "-":
            return sys.stdin.read().splitlines(), "stdin"
        try:
            return args.file.read_text().splitlines(), str(args.file)
        except OSError as exc:
            raise UserError(f"{args.file}: cannot read ({exc.strerror})") from None
    if not args.values:
        if sys.stdin is None or sys.stdin.isatty():
            raise UserError(
                "no feature values given: pass a row (V1,V2,...), --file ROWS.csv, or rows on stdin"
            )
        return sys.stdin.read().splitlines(), "stdin"
    return None


def run(args: argparse.Namespace) -> int:
    if args.values and args.file is not None:
        raise UserError("give rows as arguments or with --file, not both")
    for value in args.values:  # typos are caught before the board is asked
        _check_numbers(split_values(value), 1, 1)
    lines = _read_lines(args)
    with client_from_args(args) as board:
        info = board.connect(reset=args.reset)
        if info.get("model") is None:
            raise UserError(f"the board has no working model: {info.get('error')}")
        n_inputs = int(info.get("values", info["inputs"]))  # a front end takes a raw window
        what = "raw window values" if info.get("frontend") else "values"
        if lines is None:
            rows = rows_from_arguments(args.values, n_inputs, what, info["model"])
        else:
            rows = rows_from_lines(lines[0], n_inputs, lines[1])
        for number, row in enumerate(rows, 1):
            _check_numbers(row, number, len(rows))
        replies = list(board.stream(",".join(row) for row in rows))
        notes = [] if info.get("frontend") else saturation_warnings(board, rows)
    for note in notes:
        print(f"warning: {note}", file=sys.stderr)
    for number, reply in enumerate(replies, 1):
        if "error" in reply:
            where = f" row {number}" if len(replies) > 1 else " it"
            raise UserError(f"the board refused{where}: {reply['error']}")
    if args.json:
        print(
            json.dumps(replies[0] if len(replies) == 1 else {"model": info["model"], "predictions": replies})
        )
        return 0
    for reply in replies:
        if "anomaly" in reply:  # an anomaly model: the integer score and the flag
            flag = "ANOMALY" if reply["anomaly"] else "normal"
            print(f"{flag}  (score {reply['score']}; {reply['us']} us on the board)")
        elif "class" in reply:
            print(
                f"{reply['label']}  (class {reply['class']}; int8 scores {reply['scores']}; "
                f"{reply['us']} us on the board)"
            )
        else:
            print(f"{reply['value']}  (int8 outputs {reply['scores']}; {reply['us']} us on the board)")
    return 0
