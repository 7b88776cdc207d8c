"""`edgenn eval-device --port P DATA`: stream a dataset through the board, check it against the golden model.

Exit status: 0 when every row's int8 outputs equal the golden model's; 1 when any row disagrees or the
board refused a row (a bug: the report says which rows); 2 for a user mistake (bad port, data, model).
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from edgenn import modelfile
from edgenn.device.board_eval import golden_model_for_board, load_data_for, run_rows, summarize
from edgenn.device.client import add_port_arguments, client_from_args
from edgenn.errors import UserError

NAME = "eval-device"
HELP = "run a dataset through the board: accuracy, agreement with the golden model, latency, rows/s"
EXIT_DISAGREES = 1


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_port_arguments(parser)
    parser.add_argument("data", metavar="DATA", help="CSV file or bundled dataset name (e.g. iris)")
    parser.add_argument("--label", help="label column (default: the one column that is not a model input)")
    parser.add_argument(
        "--model",
        metavar="LOCAL.enn",
        help="the golden model to compare with; it must be the deployed one (checked by CRC32). "
        "Default: read the deployed model back from the board",
    )
    parser.add_argument("--limit", type=int, default=None, metavar="N", help="only the first N rows")
    parser.add_argument(
        "--codes",
        action="store_true",
        help="send the golden input codes (`q` requests): checks the integer network alone",
    )
    parser.add_argument("--reset", action="store_true", help="soft-reset the board first")
    parser.add_argument("--json", action="store_true", help="one JSON object on stdout")


def run(args: argparse.Namespace) -> int:
    if args.limit is not None and args.limit < 1:
        raise UserError("--limit must be at least 1")
    with client_from_args(args) as board:
        info = board.connect(reset=args.reset)
        model = golden_model_for_board(board, info, args.model)
        dataset = load_data_for(model, args.data, args.label)
        X, y = dataset.X, dataset.y
        if args.limit is not None:
            X, y = X[: args.limit], y[: args.limit]
        if len(X) == 0:
            raise UserError(f"{args.data}: no rows")
        progress = _Progress(len(X)) if sys.stderr.isatty() else None
        run_ = run_rows(board, model, X, codes=args.codes, progress=progress)
        if progress is not None:
            progress.done()
    result = summarize(run_, model, y, X)
    result.update(
        model=model.name,
        network=modelfile.describe(model),
        data=args.data,
        mode="codes" if args.codes else "features",
        board={k: info.get(k) for k in ("platform", "micropython", "kernel", "model_file", "model_crc32")},
    )
    if args.json:
        print(json.dumps(result))
    else:
        _print_report(result)
    if result["agreement"] < 1.0:
        _shout(result)
        return EXIT_DISAGREES
    return 0


def _print_report(r: dict[str, Any]) -> None:
    board = r["board"]
    where = f"{board['platform']}, MicroPython {board['micropython']}, {board['kernel']} kernel"
    print(f"model      {r['model']} ({r['network']}) on the board ({where})")
    print(f"data       {r['data']}: {r['n']} rows, {r['answered']} answered, {r['errors']} refused")
    if r["accuracy"] is not None:
        print(f"accuracy   {100 * r['accuracy']:.2f}%  (golden model: {100 * r['golden_accuracy']:.2f}%)")
    else:
        print(f"MAE        {r['mae']:.4g}  (golden model: {r['golden_mae']:.4g}); RMSE {r['rmse']:.4g}")
    print(f"agreement  {100 * r['agreement']:.2f}% of rows have int8 outputs identical to the golden model")
    lat = r["latency_us"]
    note = "  (virtual board: x86-64 timings, not an ESP32's)" if board["platform"] == "linux" else ""
    print(f"latency    p50 {lat['p50']:.0f} us, p95 {lat['p95']:.0f} us on the board{note}")
    per_row = r["bytes_per_row"]
    print(
        f"link       {r['rows_per_s']:.0f} rows/s ({per_row['request']:.0f} B request + "
        f"{per_row['reply']:.0f} B reply per row)"
    )


def _shout(r: dict[str, Any]) -> None:
    bad = r["n"] - round(r["agreement"] * r["n"])
    print(
        f"\nedgenn eval-device: DISAGREEMENT: {bad} of {r['n']} rows differ from the golden model. "
        "The board must compute exactly what edgenn.golden computes: this is a bug, please report it "
        "with the rows below.",
        file=sys.stderr,
    )
    for m in r["first_mismatches"]:
        print(f"  row {m['row']}: board {m['board']}  golden {m['golden']}", file=sys.stderr)
    for e in r["first_errors"]:
        print(f"  row {e['row']}: board refused it: {e['error']}", file=sys.stderr)


class _Progress:
    """A one-line progress bar on stderr (only when stderr is a terminal)."""

    WIDTH = 30

    def __init__(self, total: int) -> None:
        self.total = total
        self.shown = -1

    def __call__(self, done: int) -> None:
        filled = self.WIDTH * done // self.total
        if filled == self.shown and done != self.total:
            return
        self.shown = filled
        bar = "#" * filled + "." * (self.WIDTH - filled)
        sys.stderr.write(f"\r[{bar}] {done}/{self.total} rows")
        sys.stderr.flush()

    def done(self) -> None:
        sys.stderr.write("\n")
