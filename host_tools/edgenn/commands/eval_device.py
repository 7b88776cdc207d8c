"""`edgenn eval-device --port P DATA`: stream a dataset through the board, check it against the golden model.

Exit status: 0 when every row's int8 outputs equal the golden model's; 1 when any row disagrees or the
board refused a row (a bug: the report says which rows); 2 for a user mistake (bad port, data, model).
"""

from __future__ import annotations

import argparse
import sys

from edgenn import modelfile
from edgenn.commands import anomaly_task
from edgenn.commands.common import print_json
from edgenn.device.board_eval import (
    disagreement_lines,
    golden_model_for_board,
    load_data_for,
    report_lines,
    run_rows,
    summarize,
)
from edgenn.device.client import DEFAULT_WINDOW_BYTES, add_port_arguments, client_from_args
from edgenn.errors import UserError

NAME = "eval-device"
HELP = "run a dataset through the board: accuracy, agreement with the golden model, latency, rows/s"
EXIT_DISAGREES = 1


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.epilog = (
        "Exit status: 0 when every row's int8 outputs equal the golden model's; 1 when any row differs "
        "or is refused (a bug: the rows are listed on stderr); 2 for a usage problem."
    )
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
    parser.add_argument(
        "--window",
        type=int,
        default=DEFAULT_WINDOW_BYTES,
        metavar="BYTES",
        help=f"pipelining: at most this many unanswered request bytes in flight (default "
        f"{DEFAULT_WINDOW_BYTES}, below an ESP32's 256-byte receive buffer; 0 = one row at a time)",
    )
    parser.add_argument("--reset", action="store_true", help="soft-reset the board first")
    parser.add_argument("--json", action="store_true", help="one JSON object on stdout")
    anomaly_task.add_normal_argument(parser, "the board's scores then give ROC AUC, precision, recall")


def run(args: argparse.Namespace) -> int:
    if args.limit is not None and args.limit < 1:
        raise UserError("--limit must be at least 1")
    if args.window < 0:
        raise UserError("--window must be 0 or more")
    dataset = None
    if args.model is not None:  # a local model: check DATA against it before talking to the board
        dataset = _load_data(modelfile.load(args.model), args)
    with client_from_args(args) as board:
        board.window_bytes = args.window
        info = board.connect(reset=args.reset)
        model = golden_model_for_board(board, info, args.model)
        dataset = dataset or _load_data(model, args)
        X, y = dataset
        if args.limit is not None:
            X, y = X[: args.limit], None if y is None else y[: args.limit]
        if len(X) == 0:
            raise UserError(f"{args.data}: no rows")
        progress = _Progress(len(X)) if sys.stderr.isatty() else None
        float_bits = int(info.get("float_bits", 64))
        run_ = run_rows(board, model, X, codes=args.codes, progress=progress, float_bits=float_bits)
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
        print_json(result)
    else:
        print("\n".join(report_lines(result)))
    if result["agreement"] < 1.0:
        print("\n" + "\n".join(disagreement_lines(result)), file=sys.stderr)
        return EXIT_DISAGREES
    return 0


def _load_data(model: modelfile.QuantModel, args: argparse.Namespace):
    """(X, y) of DATA for the model: labelled rows, or for an anomaly model its rows and (with a label
    column and --normal) which are anomalous (y: bool, or None)."""
    if model.task != "anomaly":
        if args.normal:
            raise UserError(f"--normal is for anomaly models; the board's model is a {model.task} model")
        dataset = load_data_for(model, args.data, args.label)
        return dataset.X, dataset.y
    normal = anomaly_task.normal_values(args.normal)
    rows = anomaly_task.read_rows(args.data, args.label, normal, model.input_names)
    return rows.X, rows.anomalous


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
