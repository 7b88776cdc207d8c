"""`edgenn train DATA -o model.npz`: fit a float MLP with NumPy and report its held-out test metric."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from edgenn import frontend
from edgenn.data import load_dataset
from edgenn.errors import UserError
from edgenn.floatmodel import ACTIVATIONS, TASKS
from edgenn.nn import OPTIMIZERS, EpochReport, TrainConfig, train, train_windows

NAME = "train"
HELP = "train a float MLP on a CSV file or bundled dataset and save it as .npz"


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
    parser.add_argument("--hidden", default="32,16", help="hidden layer sizes (default 32,16)")
    parser.add_argument("--activation", choices=ACTIVATIONS, default=defaults.activation)
    parser.add_argument(
        "--task", choices=TASKS, help="default: bundled metadata, else inferred from the label"
    )
    parser.add_argument(
        "--epochs", type=int, default=defaults.epochs, help=f"maximum (default {defaults.epochs})"
    )
    parser.add_argument("--seed", type=int, default=defaults.seed, help="seeds the split, init and batches")
    parser.add_argument("--optimizer", choices=OPTIMIZERS, default=defaults.optimizer)
    parser.add_argument("--lr", type=float, help="learning rate (default adam 0.01, sgd 0.05)")
    parser.add_argument("--batch-size", type=int, default=defaults.batch_size)
    parser.add_argument("--weight-decay", type=float, default=defaults.weight_decay, help="L2 on weights")
    parser.add_argument(
        "--patience",
        type=int,
        default=defaults.patience,
        help="stop after this many epochs without a better validation loss (0: never)",
    )
    parser.add_argument("--test-fraction", type=float, default=defaults.test_fraction)
    parser.add_argument("--val-fraction", type=float, default=defaults.val_fraction)
    parser.add_argument("--json", action="store_true", help="print one JSON object, no progress")
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
        text = f"epoch {report.epoch}/{report.epochs}  loss {report.train_loss:.4f}"
        if report.val_metric is not None:
            value = (
                f"{100 * report.val_metric:.1f}%"
                if report.metric_name == "accuracy"
                else f"{report.val_metric:.4f}"
            )
            text += f"  val {report.metric_name} {value}  best epoch {report.best_epoch}"
        self.width = max(self.width, len(text))
        self.stream.write("\r" + text.ljust(self.width))
        self.stream.flush()

    def close(self) -> None:
        if self.width:
            self.stream.write("\r" + " " * self.width + "\r")
            self.stream.flush()


def run(args: argparse.Namespace) -> int:
    config = TrainConfig(
        hidden=parse_hidden(args.hidden),
        activation=args.activation,
        optimizer=args.optimizer,
        lr=args.lr,
        batch_size=args.batch_size,
        epochs=args.epochs,
        weight_decay=args.weight_decay,
        patience=args.patience,
        seed=args.seed,
        test_fraction=args.test_fraction,
        val_fraction=args.val_fraction,
    )
    config.check()
    output = Path(args.output)
    if output.is_dir():
        raise UserError(f"-o {output}: is a directory; give a file name such as {output / 'model.npz'}")
    if not output.parent.exists():
        raise UserError(f"-o {output}: directory {output.parent} does not exist")
    dataset = load_dataset(args.data, args.label, args.task)
    front_end = make_front_end(args, dataset.feature_names)
    progress = ProgressLine(sys.stderr) if not args.json and sys.stderr.isatty() else None
    try:
        if front_end is None:
            model = train(dataset, config, progress)
        else:
            model = train_windows(dataset, front_end, config, progress)
    finally:
        if progress is not None:
            progress.close()
    model.save(output)
    meta = model.meta
    test = meta["metrics"].get("test", {})
    if args.json:
        summary = {
            "model": str(output),
            "dataset": dataset.name,
            "task": dataset.task,
            "label_column": dataset.label_column,
            "labels": model.labels,
            "layers": model.layer_sizes,
            "activation": config.activation,
            "epochs_run": meta["epochs_run"],
            "best_epoch": meta["best_epoch"],
            "train_seconds": meta["train_seconds"],
            "metrics": meta["metrics"],
            "split": meta["split"],
            "features": frontend.describe(front_end),
        }
        summary.update({f"test_{k}": v for k, v in test.items() if k != "n"})
        print(json.dumps(summary))
        return 0
    sizes = " -> ".join(map(str, model.layer_sizes))
    counts = " / ".join(
        f"{meta['metrics'][p]['n']} {p}" for p in ("train", "val", "test") if p in meta["metrics"]
    )
    print(
        f"trained {dataset.name} ({dataset.task}): {sizes} ({config.activation}), {config.optimizer} "
        f"lr {config.learning_rate:g}, {meta['epochs_run']} epochs (best {meta['best_epoch']}), "
        f"{meta['train_seconds']:.2f} s"
    )
    if front_end is not None:
        print(f"front end: {frontend.describe(front_end)}")
    print(f"rows: {counts} (stratified, seed {config.seed})")
    if "accuracy" in test:
        print(f"test accuracy: {100 * test['accuracy']:.2f}% on {test['n']} held-out rows")
    elif "rmse" in test:
        print(
            f"test RMSE: {test['rmse']:.4g} on {test['n']} held-out rows "
            f"(target std {float(model.target_std[0]):.4g})"
        )
    else:
        print("no test rows (--test-fraction 0)")
    print(f"wrote {output}")
    return 0


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
