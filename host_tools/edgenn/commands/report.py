"""`edgenn report MODEL DATA -o report.html`: one self-contained HTML page about a model."""

from __future__ import annotations

import argparse
import os
import sys
import time

from edgenn.commands import anomaly_task
from edgenn.commands.common import print_json
from edgenn.device.client import DEFAULT_BAUD

NAME = "report"
HELP = (
    "write one self-contained HTML page: data, training curves, confusion matrices (anomaly models: score "
    "histograms, ROC curve, the highest-scoring rows), quantization, board"
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "model", metavar="MODEL", help=".enn (integer) or .npz (float; quantized in memory for the report)"
    )
    parser.add_argument("data", metavar="DATA", help="CSV file (header row) or bundled dataset name")
    parser.add_argument(
        "-o", "--output", required=True, metavar="REPORT.html", help="where to write the page"
    )
    parser.add_argument(
        "--float",
        dest="float_model",
        metavar="MODEL.npz",
        help="the float model the .enn was quantized from: adds float predictions, training curves and "
        "the per-layer quantization error",
    )
    parser.add_argument("--label", metavar="COL", help="label column (default: as for `edgenn evaluate`)")
    anomaly_task.add_normal_argument(
        parser, "the other rows are anomalous (default: those the model was trained with)"
    )
    parser.add_argument(
        "--port",
        help="also run DATA on the board on this serial port (deployed with `edgenn deploy`): agreement "
        "with golden, latency, heap. Not read from $EDGENN_PORT: a report only talks to a board you name",
    )
    parser.add_argument(
        "--baud", type=int, default=DEFAULT_BAUD, help="baud rate with --port (default 115200)"
    )
    parser.add_argument("--timeout", type=float, default=5.0, help="seconds per board reply (default 5)")
    parser.add_argument(
        "--board",
        metavar="B",
        help="board profile (`edgenn boards`) to check the model's size and load peak against its heap "
        "and flash, with the emulated latency of its machine code for ESP32 chips (`edgenn estimate`); "
        "default with --port: the board's own profile",
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object (path, bytes, seconds)")


def run(args: argparse.Namespace) -> int:
    from edgenn.report import build_report

    def progress(message: str) -> None:
        if not args.json:
            print(f"edgenn report: {message}", file=sys.stderr)

    start = time.perf_counter()
    report = build_report(
        args.model,
        args.data,
        args.output,
        float_model=args.float_model,
        label=args.label,
        port=args.port,
        board=args.board,
        baud=args.baud,
        timeout=args.timeout,
        progress=progress,
        normal=anomaly_task.normal_values(args.normal),
    )
    seconds = time.perf_counter() - start
    size = os.path.getsize(args.output)
    if args.json:
        print_json(
            {
                "report": args.output,
                "bytes": size,
                "seconds": round(seconds, 3),
                "rows": report.dataset.n_rows,
                "compared": list(report.predictions) or list(report.anomaly.scores if report.anomaly else []),
                "sections": {k: round(v, 3) for k, v in report.seconds.items()},
            }
        )
    else:
        compared = " + ".join(report.predictions or (report.anomaly.scores if report.anomaly else []))
        print(
            f"{args.output}: {size // 1024} KB, {report.dataset.n_rows} rows, {compared}, "
            f"in {seconds:.1f} s; open it in a browser"
        )
    return 0
