"""`edgenn tune DATA --board B -o best.npz`: search hidden sizes, activation and weight decay (and, for
sensor windows given `--axes N`, the front end: raw, stats, spectral) by cross-validation among the
models whose integer form fits the board; print a leaderboard, save the best."""

from __future__ import annotations

import argparse
import sys
import time

from edgenn.boards import load_board
from edgenn.commands import anomaly_task
from edgenn.commands import train as train_cmd
from edgenn.commands.common import print_json
from edgenn.commands.train import add_sensor_arguments, make_front_end
from edgenn.data import load_dataset
from edgenn.errors import UserError
from edgenn.floatmodel import TASKS
from edgenn.frontend import KINDS, FrontEnd
from edgenn.outputs import output_file
from edgenn.tune import DEFAULT_CANDIDATES, Candidate, TuneResult, tune, tune_anomaly

NAME = "tune"
PROGRESS_WIDTH = 100
ESTIMATE_TOP = 5  # candidates whose latency is estimated in the emulator (about a second each)
HELP = "find the best model (by cross-validation) whose integer form fits a board, and save it as .npz"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("data", metavar="DATA", help="CSV file (header row) or bundled dataset name")
    parser.add_argument("--board", required=True, metavar="B", help="board profile (see `edgenn boards`)")
    parser.add_argument("--label", metavar="COL", help="label column (known for bundled datasets)")
    parser.add_argument(
        "--task",
        choices=TASKS,
        help="classify or regress (default: inferred), or anomaly: autoencoders on the normal rows, "
        "scored by the ROC AUC of their out-of-fold scores against DATA's other rows (--label/--normal), "
        "or, without any, against normal rows with every feature shuffled on its own",
    )
    anomaly_task.add_normal_argument(parser, "the others score the candidates, never fitted (--task anomaly)")
    parser.add_argument(
        "--candidates",
        type=int,
        default=DEFAULT_CANDIDATES,
        metavar="N",
        help=f"how many candidates to score, the defaults first (default {DEFAULT_CANDIDATES}): the same "
        "N, DATA and --seed give the same leaderboard on any machine",
    )
    parser.add_argument(
        "--budget-s",
        type=float,
        default=None,
        metavar="S",
        help="also stop starting new candidates after S seconds (default: no limit); the leaderboard then "
        "depends on the machine's speed, and tune says so",
    )
    parser.add_argument("--seed", type=int, default=0, help="seeds the search order, folds and training")
    parser.add_argument(
        "-o", "--output", required=True, metavar="BEST.npz", help="where to write the best model"
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object (the leaderboard)")
    add_sensor_arguments(parser)
    # tune: --axes N without --features searches every front end; neither means plain features
    parser.set_defaults(features=None, axes=None)


def _score(c: Candidate, metric: str) -> str:
    if c.cv_mean is None:
        return "-"
    if metric == "auc":  # one figure per candidate: out-of-fold normal scores vs the other rows
        return f"AUC {c.cv_mean:.4f}"
    if metric == "accuracy":
        return f"{100 * c.cv_mean:.2f}% ± {100 * c.cv_std:.1f}"
    return f"{c.cv_mean:.4g} ± {c.cv_std:.3g}"


def front_ends_to_search(args: argparse.Namespace, columns: list[str]) -> dict[str, FrontEnd | None]:
    """--features K: that front end only; --axes N alone: raw, stats and spectral (the windows' own
    values, or features computed from them); neither: DATA's values as they are."""
    if args.features is None and args.axes is None:
        return {"raw": None}
    kinds = KINDS if args.features is None else (args.features,)
    axes = 1 if args.axes is None else args.axes
    found: dict[str, FrontEnd | None] = {}
    for kind in kinds:
        one = argparse.Namespace(features=kind, axes=1 if kind == "raw" else axes, bands=args.bands)
        found[kind] = make_front_end(one, columns)
    return found


def run(args: argparse.Namespace) -> int:
    load_board(args.board)  # a wrong board name fails before any work
    if args.budget_s is not None and args.budget_s <= 0:
        raise UserError(f"--budget-s must be > 0, got {args.budget_s}")
    if args.candidates < 1:
        raise UserError(f"--candidates must be >= 1, got {args.candidates}")
    output = output_file(args.output, ".npz", (args.data,))
    if args.task == "anomaly":
        rows = anomaly_task.read_rows(args.data, args.label, anomaly_task.normal_values(args.normal))
        columns, name = rows.feature_names, rows.source
        normal = rows.X if rows.anomalous is None else rows.X[~rows.anomalous]
        anomalous = None if rows.anomalous is None else rows.X[rows.anomalous]
        n_rows, metric = len(normal), "auc"
    else:
        if args.normal:
            raise UserError("--normal names the normal rows for --task anomaly")
        dataset = load_dataset(args.data, args.label, args.task)
        columns, name, n_rows = dataset.feature_names, dataset.name, dataset.n_rows
        metric = "accuracy" if dataset.task == "classify" else "rmse"
    front_ends = front_ends_to_search(args, columns)

    on_terminal = not args.json and sys.stderr.isatty()
    tried: list[Candidate] = []
    started = time.perf_counter()
    last_line = [started]

    def show(text: str) -> None:
        if on_terminal:
            sys.stderr.write("\r" + text[:PROGRESS_WIDTH].ljust(PROGRESS_WIDTH))
            sys.stderr.flush()
        elif not args.json and time.perf_counter() - last_line[0] >= train_cmd.PROGRESS_EVERY_S:
            # off a terminal (a log, CI): a whole line now and then, so a long search is seen alive
            last_line[0] = time.perf_counter()
            print(text, file=sys.stderr, flush=True)

    def progress(c: Candidate, total: int) -> None:
        tried.append(c)
        scored = [t for t in tried if t.cv_mean is not None]
        best = ""
        if scored:
            pick = max if metric in ("accuracy", "auc") else min
            best = f"; best so far {_score(pick(scored, key=lambda t: t.cv_mean), metric)}"
        budget = "" if args.budget_s is None else f" of {args.budget_s:g}"
        show(
            f"tune: {len(tried)}/{total} candidates, {time.perf_counter() - started:.0f}{budget} s; "
            f"{c.features} {','.join(map(str, c.hidden))} {c.activation} wd {c.weight_decay:g}: "
            f"{_score(c, metric) if c.fits else 'does not fit'}{best}"
        )

    def stage(text: str) -> None:
        show(f"tune: {text}")

    common = dict(
        budget_s=args.budget_s,
        seed=args.seed,
        max_candidates=args.candidates,
        estimate_top=ESTIMATE_TOP,
        progress=progress,
        stage=stage,
        front_ends=front_ends,
    )
    result: TuneResult
    try:
        if args.task == "anomaly":
            result = tune_anomaly(normal, args.board, columns, anomalous, source=name, **common)
        else:
            result = tune(dataset, args.board, **common)
    finally:  # also on Ctrl-C and errors: their one line starts on a clean line
        if on_terminal:
            sys.stderr.write("\r" + " " * PROGRESS_WIDTH + "\r")
            sys.stderr.flush()
    if args.task == "anomaly":  # what `train --task anomaly` records: quantize calibrates on these rows
        result.model.meta["anomaly"].update(label_column=rows.label_column, normal=rows.normal)
        result.model.meta.update(dataset=name, source=name, label_column=rows.label_column)
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
                "candidates": len(result.candidates),
                "planned": result.planned,
                "features_searched": list(front_ends),
                "latency_note": result.latency_note or None,
                "best": result.best.as_dict(),
                "default": next(c.as_dict() for c in result.candidates if c.is_default),
                "leaderboard": [c.as_dict() for c in board],
            }
        )
        return 0
    fitting = sum(c.fits for c in result.candidates)
    searched = f", front ends {'/'.join(front_ends)}" if len(front_ends) > 1 else ""
    print(
        f"tune {name} for {args.board}: {len(result.candidates)} candidates{searched} in "
        f"{result.seconds:.1f} s ({fitting} fit the board), scored by {result.folds}-fold "
        f"cross-validated {result.metric}"
    )
    if metric == "auc":
        against = result.model.meta["tune"]["anomalies"]
        print(f"(ROC AUC of the normal rows' out-of-fold scores against the {against}, never fitted)")
    if result.stopped_by_budget:
        print(
            f"stopped by --budget-s {args.budget_s:g} after {len(result.candidates)} of {result.planned} "
            "candidates: on another machine, or under another load, the leaderboard may differ "
            "(leave out --budget-s for a reproducible one)"
        )
    print(
        f"{'rank':>4}  {'features':<9}{'hidden':<12} {'act':<5} {'wd':>6}  {'cv ' + result.metric:<18} "
        f"{'bytes':>6} {'MACs':>7} {'est. µs':>8}  fits"
    )
    for rank, c in enumerate(board[:15], 1):
        mark = " (default)" if c.is_default else ""
        print(
            f"{rank:>4}  {c.features:<9}{','.join(map(str, c.hidden)):<12} {c.activation:<5} "
            f"{c.weight_decay:>6g}  {_score(c, result.metric):<18} {c.model_bytes:>6} {c.macs:>7} "
            f"{'-' if c.latency_us is None else f'{c.latency_us:.0f}':>8}  "
            f"{'yes' if c.fits else 'NO'}{mark}"
        )
    if result.latency_note:  # say why the column is empty, and how to fill it
        print(f"est. µs: not estimated: {result.latency_note}")
    else:
        print(f"est. µs: the top {ESTIMATE_TOP}, the board's machine code in an emulator (edgenn estimate)")
    b = result.best
    fe = "" if b.features == "raw" else f"--features {b.features} --axes {args.axes or 1} "
    task = "--task anomaly " if metric == "auc" else ""
    print(
        f"best: {task}{fe}--hidden {','.join(map(str, b.hidden))} --activation {b.activation} "
        f"--weight-decay {b.weight_decay:g} ({_score(b, result.metric)}), trained on all {n_rows} "
        f"{'normal ' if metric == 'auc' else ''}rows; wrote {output}"
    )
    return 0
