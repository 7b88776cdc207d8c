"""`edgenn record --port P --label L (--seconds S | --samples N) [--window W [--stride K]] [--reset]
-o OUT.csv [--append]`: samples the board's own program prints, one per line, into labelled CSV rows."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from edgenn.cli import EXIT_INTERRUPTED
from edgenn.commands.common import print_json
from edgenn.device.client import DEFAULT_BAUD, BoardClient, add_port_argument, require_port
from edgenn.device.record import ProgressLine, format_summary, record

NAME = "record"
HELP = "record the samples the board's program prints (one per line) as labelled CSV rows or windows"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.epilog = (
        "The board prints one sample per line: numbers separated by commas, spaces or tabs, the same "
        "count on every line, optionally after a header line `# x,y,z` naming the axes. Other lines are "
        "skipped and counted. Example: edgenn record --port PORT --label wave --seconds 10 --window 32 "
        "-o gestures.csv --append"
    )
    add_port_argument(parser)
    parser.add_argument("--label", required=True, help="the label column's value for every row, e.g. wave")
    how_long = parser.add_mutually_exclusive_group(required=True)
    how_long.add_argument("--seconds", type=float, metavar="S", help="record for S seconds")
    how_long.add_argument("--samples", type=int, metavar="N", help="record N samples (sample lines)")
    parser.add_argument(
        "--window",
        type=int,
        metavar="W",
        help="one row per W consecutive samples, axis-major (x0..x{W-1}, y0.., ..., label) instead of one "
        "row per sample (t_ms, axes, label)",
    )
    parser.add_argument(
        "--stride",
        type=int,
        metavar="K",
        help="with --window: a window every K samples (default W: back to back; K < W overlaps)",
    )
    parser.add_argument(
        "--reset", action="store_true", help="soft-reset the board first so its program starts clean"
    )
    parser.add_argument("-o", "--output", required=True, metavar="OUT.csv", help="the CSV file to write")
    parser.add_argument(
        "--append",
        action="store_true",
        help="add rows to OUT.csv (same columns; refuses a different layout) instead of replacing it",
    )
    parser.add_argument("--baud", type=int, default=DEFAULT_BAUD, help="baud rate (default 115200)")
    parser.add_argument(
        "--timeout",
        type=float,
        default=5.0,
        metavar="S",
        help="give up when no sample arrives for S seconds (default 5); rows recorded are kept",
    )
    parser.add_argument(
        "--json", action="store_true", help="print one JSON object (the summary) on stdout, no progress"
    )


def run(args: argparse.Namespace) -> int:
    progress = (
        ProgressLine(windows=args.window is not None) if not args.json and sys.stderr.isatty() else None
    )
    board = BoardClient(require_port(args.port), baud=args.baud, timeout=args.timeout)
    try:
        result = record(
            board,
            Path(args.output),
            args.label,
            seconds=args.seconds,
            samples=args.samples,
            window=args.window,
            stride=args.stride,
            reset=args.reset,
            append=args.append,
            stall_timeout=args.timeout,
            progress=progress,
        )
    finally:
        board.close()
        if progress is not None:
            progress.done()
    if args.json:
        print_json(result.as_dict())
    else:
        print(format_summary(result))
    if result.interrupted:
        print(
            f"edgenn record: interrupted; kept the {result.rows} row(s) recorded in {result.file}",
            file=sys.stderr,
        )
        return EXIT_INTERRUPTED
    return 0
