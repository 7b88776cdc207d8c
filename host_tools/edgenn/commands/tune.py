"""`edgenn tune DATA --board B -o best.npz`: search hidden sizes, activation and weight decay by
cross-validation among the models whose integer form fits the board; print a leaderboard, save the best."""

from __future__ import annotations

import argparse
import sys
import time

from edgenn.boards import load_board
from edgenn.commands.common import print_json
from edgenn.commands.train import add_sensor_arguments, make_front_end
from edgenn.data import load_dataset
from edgenn.errors import UserError
from edgenn.floatmodel import TASKS
from edgenn.outputs import output_file
from edgenn.tune import DEFAULT_BUDGET_S, Candidate, tune

NAME = "tune"
PROGRESS_WIDTH = 100
ESTIMATE_TOP = 5  # candidates whose latency is estimated in the emulator (about a second each)
HELP = "find the best model (by cross-validation) whose integer form fits a board, and save it as .npz"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("data", metavar="DATA", help="CSV file (header row) or bundled dataset name")
    parser.add_argument("--board", required=True, metavar="B", help="board profile (see `edgenn boards`)")
    parser.add_argument("--label", metavar="COL", help="label column (known for bundled datasets)")
    parser.add_argument("--task", choices=TASKS, help="classify or regress (default: inferred)")
    parser.add_argument(
        "--budget-s",
        type=float,
        default=DEFAULT_BUDGET_S,
        metavar="S",
        help=f"start no new candidate after this many seconds (default {DEFAULT_BUDGET_S:g})",
    )
    parser.add_argument("--seed", type=int, default=0, help="seeds the search order, folds and training")
    parser.add_argument(
        "-o", "--output", required=True, metavar="BEST.npz", help="where to write the best model"
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object (the leaderboard)")
    add_sensor_arguments(parser)


def _score(c: Candidate, metric: str) -> str:
    if c.cv_mean is None:
        return "-"
    if metric == "accuracy":
        return f"{100 * c.cv_mean:.2f}% ± {100 * c.cv_std:.1f}"
    return f"{c.cv_mean:.4g} ± {c.cv_std:.3g}"


def run(args: argparse.Namespace) -> int:
    load_board(args.board)  # a wrong board name fails before any work
    if args.budget_s <= 0:
        raise UserError(f"--budget-s must be > 0, got {args.budget_s}")
    output = output_file(args.output, ".npz", (args.data,))
    dataset = load_dataset(args.data, args.label, args.task)
    front_end = make_front_end(args, dataset.feature_names)

    on_terminal = not args.json and sys.stderr.isatty()
    metric = "accuracy" if dataset.task == "classify" else "rmse"
    tried: list[Candidate] = []
    started = time.perf_counter()

    def show(text: str) -> None:
        if on_terminal:
            sys.stderr.write("\r" + text[:PROGRESS_WIDTH].ljust(PROGRESS_WIDTH))
            sys.stderr.flush()

    def progress(c: Candidate, total: int) -> None:
        tried.append(c)
        scored = [t for t in tried if t.cv_mean is not None]
        best = ""
        if scored:
            pick = max if dataset.task == "classify" else min
            best = f"; best so far {_score(pick(scored, key=lambda t: t.cv_mean), metric)}"
        show(
            f"tune: {len(tried)}/{total} candidates, {time.perf_counter() - started:.0f} of "
            f"{args.budget_s:g} s; {','.join(map(str, c.hidden))} {c.activation} wd {c.weight_decay:g}: "
            f"{_score(c, metric) if c.fits else 'does not fit'}{best}"
        )

    def stage(text: str) -> None:
        show(f"tune: {text}")

    try:
        result = tune(
            dataset,
            args.board,
            budget_s=args.budget_s,
            seed=args.seed,
            estimate_top=ESTIMATE_TOP,
            progress=progress,
            stage=stage,
            front_end=front_end,
        )
    finally:  # also on Ctrl-C and errors: their one line starts on a clean line
        if on_terminal:
            sys.stderr.write("\r" + " " * PROGRESS_WIDTH + "\r")
            sys.stderr.flush()
    result.model.save(output)
    board = result.leaderboard()
    if args.json:
        print_json(
            {
                "model": str(output),
                "board": args.board,
                "metric": result.metric,
                "folds": result.folds,
                "seconds": round(result.seconds, 2),
                "stopped_by_budget": result.stopped_by_budget,
                "best": result.best.as_dict(),
                "default": next(c.as_dict() for c in result.candidates if c.is_default),
                "leaderboard": [c.as_dict() for c in board],
            }
        )
        return 0
    fitting = sum(c.fits for c in result.candidates)
    print(
        f"tune {dataset.name} for {args.board}: {len(result.candidates)} candidates in "
        f"{result.seconds:.1f} s ({fitting} fit the board), scored by {result.folds}-fold "
        f"cross-validated {result.metric}"
    )
    print(
        f"{'rank':>4}  {'hidden':<12} {'act':<5} {'wd':>6}  {'cv ' + result.metric:<18} "
        f"{'bytes':>6} {'MACs':>7} {'est. µs':>8}  fits"
    )
    for rank, c in enumerate(board[:15], 1):
        mark = " (default)" if c.is_default else ""
        print(
            f"{rank:>4}  {','.join(map(str, c.hidden)):<12} {c.activation:<5} {c.weight_decay:>6g}  "
            f"{_score(c, result.metric):<18} {c.model_bytes:>6} {c.macs:>7} "
            f"{'-' if c.latency_us is None else f'{c.latency_us:.0f}':>8}  "
            f"{'yes' if c.fits else 'NO'}{mark}"
        )
    b = result.best
    print(
        f"best: --hidden {','.join(map(str, b.hidden))} --activation {b.activation} --weight-decay "
        f"{b.weight_decay:g} ({_score(b, result.metric)}), trained on all {dataset.n_rows} rows; "
        f"wrote {output}"
    )
    return 0
