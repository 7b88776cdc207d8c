"""`edgenn train DATA -o model.npz`: fit a float MLP with NumPy on every row; cross-validation says how
well it will do on rows it has not seen (or `--test FILE` does)."""

from __future__ import annotations

import argparse
import sys
import time

from edgenn import frontend
from edgenn.anomaly import DEFAULT_QUANTILE
from edgenn.commands import anomaly_task
from edgenn.commands.common import print_json
from edgenn.data import load_dataset, load_for_model
from edgenn.errors import UserError
from edgenn.floatmodel import ACTIVATIONS, TASKS, FloatModel
from edgenn.nn import OPTIMIZERS, EpochReport, TrainConfig, metric_name, train, train_windows
from edgenn.outputs import output_file

NAME = "train"
HELP = "train a float MLP on a CSV file or bundled dataset and save it as .npz"
PROGRESS_EVERY_S = 10.0  # off a terminal: one progress line this often (a short training prints none)


def parse_hidden(text: str) -> tuple[int, ...]:
    """'32,16' -> (32, 16); '' or 'none' -> () (a linear model)."""
    if text.strip().lower() in ("", "none"):
        return ()
    try:
        sizes = tuple(int(part) for part in text.split(","))
    except ValueError:
        raise UserError(f"--hidden {text!r}: expected layer sizes separated by commas, e.g. 32,16") from None
    if any(s < 1 for s in sizes):
        raise UserError(f"--hidden {text!r}: every layer needs at least 1 neuron")
    return sizes


def add_arguments(parser: argparse.ArgumentParser) -> None:
    defaults = TrainConfig()
    parser.add_argument("data", metavar="DATA", help="CSV file (header row) or bundled dataset name")
    parser.add_argument("--label", metavar="COL", help="label column (known for bundled datasets)")
    parser.add_argument("-o", "--output", required=True, metavar="MODEL.npz", help="where to write the model")
    parser.add_argument(
        "--hidden",
        help="hidden layer sizes, comma-separated (default 32,16; anomaly: wide-narrow-wide from the "
        "number of inputs, e.g. 26,3,26 for 13); 'none' for a linear model",
    )
    parser.add_argument(
        "--activation",
        choices=ACTIVATIONS,
        help=f"hidden-layer activation (default {defaults.activation}; anomaly: "
        f"{anomaly_task.DEFAULT_ACTIVATION})",
    )
    parser.add_argument(
        "--task",
        choices=TASKS,
        help="classify, regress (default: bundled metadata, else inferred from the label) or anomaly "
        "(an autoencoder on normal rows only; docs/anomaly.md)",
    )
    anomaly_task.add_normal_argument(parser, "only those rows are trained on (the others give an estimate)")
    parser.add_argument(
        "--threshold-quantile",
        type=float,
        default=DEFAULT_QUANTILE,
        metavar="Q",
        help=f"anomaly: the threshold is this quantile of the normal rows' out-of-fold scores (default "
        f"{DEFAULT_QUANTILE}: about 1 in 100 normal rows is flagged)",
    )
    parser.add_argument(
        "--test",
        metavar="FILE",
        help="score the final model on this CSV (same columns as DATA); skips cross-validation unless "
        "--folds is given",
    )
    parser.add_argument(
        "--folds",
        type=int,
        help=f"cross-validation folds that pick the epochs and estimate the score (default {defaults.folds}, "
        "or 0 with --test; 0: none, train --epochs epochs)",
    )
    parser.add_argument(
        "--epochs",
        type=int,
        default=defaults.epochs,
        help=f"most epochs per fold, or the epochs of the one fit without folds (default {defaults.epochs})",
    )
    parser.add_argument(
        "--seed",
        type=int,
        default=defaults.seed,
        help="seeds the folds, splits, init and batches (default 0)",
    )
    parser.add_argument(
        "--optimizer",
        choices=OPTIMIZERS,
        default=defaults.optimizer,
        help=f"adam, or sgd with momentum 0.9 (default {defaults.optimizer})",
    )
    parser.add_argument("--lr", type=float, help="learning rate (default adam 0.01, sgd 0.05)")
    parser.add_argument(
        "--batch-size",
        type=int,
        default=defaults.batch_size,
        help=f"rows per step (default {defaults.batch_size})",
    )
    parser.add_argument(
        "--weight-decay",
        type=float,
        help=f"L2 penalty on weights (default {defaults.weight_decay:g}; anomaly: "
        f"{anomaly_task.DEFAULT_WEIGHT_DECAY:g})",
    )
    parser.add_argument(
        "--patience",
        type=int,
        default=defaults.patience,
        help=f"a fold stops after this many epochs without a better validation loss (default "
        f"{defaults.patience}; 0: never)",
    )
    parser.add_argument(
        "--test-fraction",
        type=float,
        default=defaults.test_fraction,
        help="hold this fraction of DATA out as test rows (default 0: every row trains; prefer --test)",
    )
    parser.add_argument(
        "--val-fraction",
        type=float,
        default=defaults.val_fraction,
        help="with --folds 0: hold this fraction out for early stopping (default 0)",
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object, no progress")
    add_sensor_arguments(parser)


def add_sensor_arguments(parser: argparse.ArgumentParser) -> None:
    """--features/--axes/--bands (train and tune alike); make_front_end reads them."""
    sensor = parser.add_argument_group(
        "sensor windows",
        "DATA rows are windows of raw readings, axis-major (all samples of axis 0, then axis 1, ...); "
        "the model computes its features itself, on the host and on the board (docs/model-format.md)",
    )
    sensor.add_argument(
        "--features",
        choices=frontend.KINDS,
        default="raw",
        help="raw: the values are the features (default); stats: per axis (and the magnitude "
        "|x|+|y|+... if --axes > 1) mean, std, min, max, mean |change| after mean removal; "
        "spectral: stats plus FFT band amplitudes per axis",
    )
    sensor.add_argument(
        "--axes", type=int, default=1, metavar="N", help="axes per window (with --features stats|spectral)"
    )
    sensor.add_argument(
        "--bands",
        type=int,
        default=frontend.DEFAULT_BANDS,
        metavar="K",
        help=f"spectral: equal-width frequency bands per axis (default {frontend.DEFAULT_BANDS})",
    )


def progress_text(report: EpochReport) -> str:
    stage = f"{report.stage}: " if report.stage else ""
    text = f"{stage}epoch {report.epoch}/{report.epochs}  loss {report.train_loss:.4f}"
    if report.val_metric is not None:
        value = (
            f"{100 * report.val_metric:.1f}%"
            if report.metric_name == "accuracy"
            else f"{report.val_metric:.4f}"
        )
        text += f"  val {report.metric_name} {value}  best epoch {report.best_epoch}"
    return text


class ProgressLog:
    """Off a terminal (a log file, CI, a pipe): a whole progress line every PROGRESS_EVERY_S seconds,
    so a long training is seen to be alive, and a short one prints nothing."""

    def __init__(self, stream) -> None:
        self.stream = stream
        self.last = time.monotonic()

    def __call__(self, report: EpochReport) -> None:
        now = time.monotonic()
        if now - self.last < PROGRESS_EVERY_S:
            return
        self.last = now
        self.stream.write(f"train: {progress_text(report)}\n")
        self.stream.flush()

    def close(self) -> None:
        pass


class ProgressLine:
    """One status line on a terminal, rewritten in place at most ~20 times a second."""

    def __init__(self, stream) -> None:
        self.stream = stream
        self.last = 0.0
        self.width = 0

    def __call__(self, report: EpochReport) -> None:
        now = time.monotonic()
        if now - self.last < 0.05 and report.epoch != report.epochs:
            return
        self.last = now
        text = progress_text(report)
        self.width = max(self.width, len(text))
        self.stream.write("\r" + text.ljust(self.width))
        self.stream.flush()

    def close(self) -> None:
        if self.width:
            self.stream.write("\r" + " " * self.width + "\r")
            self.stream.flush()


def run(args: argparse.Namespace) -> int:
    if args.task == "anomaly":
        args.output_path = output_file(args.output, ".npz")
        return anomaly_task.train(args, parse_hidden(args.hidden) if args.hidden else None, make_front_end)
    if args.normal:
        raise UserError("--normal names the normal rows of --task anomaly")
    defaults = TrainConfig()
    if args.folds is None:
        args.folds = 0 if args.test else defaults.folds
    config = TrainConfig(
        hidden=parse_hidden(args.hidden if args.hidden is not None else "32,16"),
        activation=args.activation or defaults.activation,
        optimizer=args.optimizer,
        lr=args.lr,
        batch_size=args.batch_size,
        epochs=args.epochs,
        weight_decay=args.weight_decay if args.weight_decay is not None else defaults.weight_decay,
        patience=args.patience,
        folds=args.folds,
        seed=args.seed,
        test_fraction=args.test_fraction,
        val_fraction=args.val_fraction,
    )
    config.check()
    output = output_file(args.output, ".npz", (args.data, args.test))
    dataset = load_dataset(args.data, args.label, args.task)
    front_end = make_front_end(args, dataset.feature_names)
    test = None
    if args.test:
        test, _ = load_for_model(
            args.test, dataset.feature_names, dataset.label_column, dataset.task, dataset.labels
        )
    progress = None
    if not args.json:
        progress = ProgressLine(sys.stderr) if sys.stderr.isatty() else ProgressLog(sys.stderr)
    try:
        if front_end is None:
            model = train(dataset, config, progress, test=test)
        else:
            model = train_windows(dataset, front_end, config, progress, test=test)
    finally:
        if progress is not None:
            progress.close()
    model.save(output)
    meta = model.meta
    metrics = meta["metrics"]
    if args.json:
        summary = {
            "model": str(output),
            "dataset": dataset.name,
            "task": dataset.task,
            "label_column": dataset.label_column,
            "labels": model.labels,
            "layers": model.layer_sizes,
            "activation": config.activation,
            "epochs": meta["epochs"],
            "epochs_run": meta["epochs_run"],
            "best_epoch": meta["best_epoch"],
            "train_seconds": meta["train_seconds"],
            "train": metrics["train"],
            "cv": meta["cv"],
            "test": metrics.get("test_file", metrics.get("test")),
            "metrics": metrics,
            "split": meta["split"],
            "notes": meta["notes"],
            "warnings": meta["warnings"],
            "features": frontend.describe(front_end),
        }
        summary.update({f"test_{k}": v for k, v in metrics.get("test", {}).items() if k != "n"})
        print_json(summary)
        return 0
    lines = summary_lines(model, config)
    if front_end is not None:
        lines.insert(1, f"front end: {frontend.describe(front_end)}")
    for line in lines:
        print(line)
    print(f"wrote {output}")
    return 0


def _value(task: str, value: float) -> str:
    return f"{100 * value:.2f}%" if task == "classify" else f"{value:.4g}"


def summary_lines(model: FloatModel, config: TrainConfig) -> list[str]:
    """What happened, for people: the network, the estimate, the final fit, notes and warnings."""
    meta, task = model.meta, model.task
    metrics, cv = meta["metrics"], meta["cv"]
    name = "accuracy" if task == "classify" else "RMSE"
    key = metric_name(task)
    shape = " -> ".join(map(str, model.layer_sizes))
    kind = f"{config.activation}" if config.hidden else "a linear model, no hidden layer"
    lines = [
        f"trained {meta['dataset']} ({task}): {shape} ({kind}), {config.optimizer} "
        f"lr {config.learning_rate:g}, batch {config.batch_size}, weight decay {config.weight_decay:g}, "
        f"seed {config.seed}"
    ]
    lines += [f"note: {n}" for n in meta["notes"]]
    if cv is not None:
        spread = f"{100 * cv['std']:.2f}" if task == "classify" else f"{cv['std']:.4g}"
        lines.append(
            f"cross-validated {name}: {_value(task, cv['mean'])} ± {spread} over {cv['k']} folds "
            f"(best epochs {', '.join(map(str, cv['best_epochs']))} -> {cv['epochs']} epochs)"
        )
    train_rows = metrics["train"]["n"]
    lines.append(
        f"final fit: all {train_rows} training rows, {meta['epochs']} epochs, {meta['train_seconds']:.2f} s; "
        f"{name} on those rows {_value(task, metrics['train'][key])}"
    )
    for part, what in (("test", "held-out rows of DATA"), ("test_file", "rows of the --test file")):
        if part in metrics:
            lines.append(f"test {name}: {_value(task, metrics[part][key])} on {metrics[part]['n']} {what}")
    if "val" in metrics:
        lines.append(f"validation {name}: {_value(task, metrics['val'][key])} on {metrics['val']['n']} rows")
    if cv is None and "test" not in metrics and "test_file" not in metrics:
        lines.append(
            "no estimate of unseen-data performance (no folds, no test rows); try --folds 5 or --test FILE"
        )
    lines += [f"warning: {w}" for w in meta["warnings"]]
    return lines


def make_front_end(args: argparse.Namespace, columns: list[str]) -> frontend.FrontEnd | None:
    """--features/--axes/--bands over DATA's value columns; a UserError says what does not fit."""
    if args.features == "raw":
        if args.axes != 1:
            raise UserError("--axes needs --features stats or spectral (raw windows need no axes)")
        return None
    if args.bands < 1:
        raise UserError(f"--bands {args.bands}: need at least 1 band")
    if args.axes < 1 or len(columns) % args.axes:
        raise UserError(
            f"--axes {args.axes}: DATA has {len(columns)} value columns, which do not split into "
            f"{args.axes} axes of equal length (rows are axis-major windows: x0..xW-1, y0.., ...)"
        )
    try:
        return frontend.make(args.features, args.axes, columns, args.bands)
    except ValueError as exc:
        raise UserError(f"--features {args.features} --axes {args.axes}: {exc}") from None
