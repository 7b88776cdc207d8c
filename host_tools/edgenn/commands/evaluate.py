"""`edgenn evaluate MODEL DATA`: accuracy (or RMSE) of a float .npz or integer .enn model on DATA."""

from __future__ import annotations

import argparse

from edgenn.commands import anomaly_task
from edgenn.commands.common import print_json
from edgenn.errors import UserError
from edgenn.evaluation import SPLITS, evaluate, load_model, training_rows_note
from edgenn.metrics import confusion_lines

NAME = "evaluate"
HELP = "score a .npz (float) or .enn (integer, golden) model on a CSV file or bundled dataset"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "model", metavar="MODEL", help=".npz from `edgenn train` or .enn from `edgenn quantize`"
    )
    parser.add_argument("data", metavar="DATA", help="CSV file (header row) or bundled dataset name")
    parser.add_argument(
        "--label",
        metavar="COL",
        help="label column (default: the bundled one, the one the model was trained with, "
        "or the only non-feature column)",
    )
    parser.add_argument(
        "--split",
        choices=SPLITS,
        default="all",
        help="rows to score: all (default) or a part of the split `train` made "
        "(needs the .npz and the same data)",
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument(
        "--predictions",
        action="store_true",
        help="include each row's prediction (class id or value; anomaly models: score and flag, JSON keys "
        "scores and anomalies), in file order",
    )
    anomaly_task.add_normal_argument(parser, "the other rows are anomalous (ROC AUC, precision, recall)")
    parser.add_argument(
        "--labels",
        action="store_true",
        help="with --predictions --json: class names instead of class ids (the text output always "
        "shows names)",
    )


def run(args: argparse.Namespace) -> int:
    model = load_model(args.model)
    if model.task == "anomaly":
        return anomaly_task.evaluate(args, anomaly_task.load_anomaly_model(args.model), args.model)
    if args.normal:
        raise UserError(f"--normal names the normal rows of an anomaly model; this is a {model.task} model")
    if args.labels and model.task != "classify":
        raise UserError("--labels names the classes of a classifier; this is a regression model")
    result = evaluate(model, args.data, args.label, args.split)
    predictions = result.pop("predictions")
    if args.json:
        if args.predictions:
            result["predictions"] = [model.labels[p] for p in predictions] if args.labels else predictions
        print_json(result)
        return 0
    rows = f"{result['n']} rows" + ("" if args.split == "all" else f" ({args.split} split)")
    if "accuracy" in result:
        print(
            f"{args.model} ({model.kind}) on {args.data}, {rows}: accuracy {100 * result['accuracy']:.2f}% "
            f"({result['correct']}/{result['n']})"
        )
    else:
        print(
            f"{args.model} ({model.kind}) on {args.data}, {rows}: RMSE {result['rmse']:.4g}, "
            f"MAE {result['mae']:.4g}"
        )
    if "confusion" in result:
        print("\n".join(confusion_lines(result["confusion"], model.labels)))
    if "includes_training_rows" in result:
        print("note: " + training_rows_note(model.trained_as, result["n"], result["includes_training_rows"]))
    if args.predictions:
        for p in predictions:
            print(model.labels[p] if model.task == "classify" else p)
    return 0
