"""`edgenn quantize model.npz --data DATA -o model.enn`: calibrate, build the integer model, write it,
and say what quantization cost (float vs integer accuracy or RMSE, argmax agreement, bytes)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from edgenn import fit, golden, modelfile
from edgenn.boards import load_board
from edgenn.commands import anomaly_task
from edgenn.commands.common import print_json
from edgenn.data import load_for_model
from edgenn.errors import UserError
from edgenn.evaluation import load_model, resolve_label_column
from edgenn.metrics import layer_error_lines, layer_errors
from edgenn.nn import accuracy, rmse, split_for_model
from edgenn.outputs import output_file
from edgenn.qat import EPOCHS as QAT_EPOCHS
from edgenn.qat import QATResult, fine_tune

NAME = "quantize"
MIN_CALIBRATION_ROWS = 20
HELP = "turn a trained .npz into an integer .enn model (calibrated on DATA) and report what it cost"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", metavar="MODEL.npz", help="float model written by `edgenn train`")
    parser.add_argument(
        "--data",
        required=True,
        metavar="DATA",
        help="CSV file or bundled dataset to calibrate on (the model's training rows are used when it "
        "is the data the model was trained on; otherwise all rows)",
    )
    parser.add_argument(
        "--label",
        metavar="COL",
        help="label column (default: as for `edgenn evaluate`; anomaly models: the one they were trained "
        "with, whose --normal rows calibrate)",
    )
    parser.add_argument(
        "-o", "--output", metavar="MODEL.enn", help="where to write the integer model (default: MODEL.enn)"
    )
    parser.add_argument(
        "--board",
        metavar="B",
        help="also say whether the model fits board B's memory (see `edgenn boards`), with the arithmetic "
        "deploy uses; exit status 1 when it does not (the .enn is written either way)",
    )
    parser.add_argument(
        "--test",
        metavar="FILE",
        help="score float and integer on this CSV (rows the model never saw) instead of DATA",
    )
    anomaly_task.add_normal_argument(
        parser, "only those rows calibrate (default: the label and values the model was trained with)"
    )
    qat = parser.add_mutually_exclusive_group()
    qat.add_argument(
        "--qat",
        dest="qat",
        action="store_const",
        const="on",
        default="auto",
        help="always use quantization-aware fine-tuning (default: used when the integer model then agrees "
        "with the float model more often on the calibration rows, or as often with closer outputs)",
    )
    qat.add_argument(
        "--no-qat",
        dest="qat",
        action="store_const",
        const="off",
        help="plain post-training quantization only",
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object")


def _output_path(model_path: Path, output: str | None, data: str) -> Path:
    path = Path(output) if output else model_path.with_suffix(".enn")
    if path.resolve() == model_path.resolve():
        raise UserError(f"{path}: the output would overwrite the float model; choose another -o")
    return output_file(str(path), ".enn", (model_path, data))


def _compare(task: str, y: np.ndarray, float_pred: np.ndarray, int_pred: np.ndarray) -> dict:
    if task == "classify":
        return {
            "float": {"accuracy": accuracy(float_pred, y)},
            "integer": {"accuracy": accuracy(int_pred, y)},
            "agreement": float(np.mean(float_pred == int_pred)),
        }
    float_rmse, int_rmse = rmse(float_pred, y), rmse(int_pred, y)
    return {
        "float": {"rmse": float_rmse},
        "integer": {"rmse": int_rmse},
        "rmse_change": (int_rmse / float_rmse - 1.0) if float_rmse > 0 else 0.0,
        "float_vs_integer_rmse": rmse(int_pred[:, 0], float_pred[:, 0]),
    }


def run(args: argparse.Namespace) -> int:
    model_path = Path(args.model)
    profile = load_board(args.board) if args.board else None  # an unknown board fails before any work
    loaded = load_model(model_path)
    if loaded.float_model is None:
        raise UserError(
            f"{model_path}: is already an integer model; quantize takes the .npz from `edgenn train`"
        )
    fm = loaded.float_model
    out_path = _output_path(model_path, args.output, args.data)
    if fm.task == "anomaly":
        return anomaly_task.quantize(args, fm, out_path, profile)
    if args.normal:
        raise UserError(f"--normal names the normal rows of an anomaly model; this is a {fm.task} model")
    label = resolve_label_column(loaded, args.data, args.label)
    dataset, _ = load_for_model(args.data, fm.feature_names, label, fm.task, fm.labels)

    split = split_for_model(fm, dataset)  # the rows `train` used, when DATA is the training data
    if split is not None and len(split.test):
        calib_rows, eval_rows, eval_part = split.train, split.test, "test"
    else:
        calib_rows = eval_rows = np.arange(dataset.n_rows)
        eval_part = "all"
    name = str(fm.meta.get("dataset") or dataset.name)
    epochs = 0 if args.qat == "off" else QAT_EPOCHS
    on_terminal = not args.json and sys.stderr.isatty()

    def progress(epoch: int, score: float) -> None:
        shown = f"agreement {100 * score:.2f}%" if fm.task == "classify" else f"RMS vs float {-score:.4g}"
        sys.stderr.write(f"\rquantization-aware fine-tuning: epoch {epoch}/{epochs}, {shown}".ljust(70))
        sys.stderr.flush()

    try:
        tuned = fine_tune(
            fm,
            dataset.X[calib_rows],
            name=name,
            epochs=epochs,
            force=args.qat == "on",
            progress=progress if on_terminal else None,
        )
    finally:  # the result (or Ctrl-C's line) starts on a clean line
        if on_terminal:
            sys.stderr.write("\r" + " " * 70 + "\r")
            sys.stderr.flush()
    qm, warnings = tuned.model, list(tuned.warnings)
    if len(calib_rows) < MIN_CALIBRATION_ROWS:
        # Ranges seen in a handful of rows are narrower than what the model meets: new rows clip.
        warnings.append(
            f"calibrated on only {len(calib_rows)} row(s) of {args.data}: each input's and layer's range "
            f"comes from these rows, so other rows clip at the range ends; calibrate on the training "
            f"data (--data, at least {MIN_CALIBRATION_ROWS} rows) and score new rows with --test"
        )
    try:
        size = modelfile.save(qm, out_path)
    except OSError as exc:
        raise UserError(f"{out_path}: cannot write ({exc.strerror})") from None

    x_eval, y_eval = dataset.X[eval_rows], dataset.y[eval_rows]
    if args.test:
        test, _ = load_for_model(args.test, fm.feature_names, label, fm.task, fm.labels)
        x_eval, y_eval, eval_part = test.X, test.y, "test_file"
    layers = layer_errors(fm, qm, x_eval)
    result = {
        "model": str(out_path),
        "source": str(model_path),
        "data": args.data,
        "task": fm.task,
        "architecture": modelfile.describe(qm),
        "calibration_rows": int(len(calib_rows)),
        "calibrated_on": "train" if split is not None and len(split.test) else "all",
        "evaluated_on": eval_part,
        "n": int(len(y_eval)),
        "trained_on_evaluated_rows": eval_part == "all" and split is not None,
        "qat": qat_summary(args.qat, tuned),
        **_compare(fm.task, y_eval, fm.predict(x_eval), golden.predict(qm, x_eval)),
        "bytes": size,
        "float32_bytes": modelfile.float32_bytes(qm),
        "warnings": warnings,
        "layers": [e.as_dict() for e in layers],  # integer vs float activations per tensor
    }
    fits = None
    if profile is not None:
        fits = fit.check_fit(qm, profile)
        result["board_fit"] = fits.as_dict()
    if args.json:
        print_json(result)
    else:
        for warning in warnings:
            print(f"edgenn quantize: warning: {warning}", file=sys.stderr)
        _print_human(result)
        if fits is not None:
            print(f"  board: {fits.summary()}")
    return 1 if fits is not None and not fits.fits else 0


def qat_summary(mode: str, tuned: QATResult) -> dict:
    """The `qat` object of quantize's --json (what _qat_line prints)."""
    return {
        "mode": mode,
        "used": tuned.used,
        "epoch": tuned.epoch,
        "epochs_run": tuned.epochs_run,
        "calibration_score_plain": tuned.plain_score,
        "calibration_score_qat": tuned.qat_score,
    }


def _rows_text(r: dict) -> str:
    return {"test": f"{r['n']} held-out test rows", "test_file": f"{r['n']} rows of the --test file"}.get(
        r["evaluated_on"], f"all {r['n']} rows"
    )


def _print_human(r: dict) -> None:
    rows = _rows_text(r)
    calib = "training rows" if r["calibrated_on"] == "train" else "rows"
    print(
        f"{r['source']} -> {r['model']}: {r['architecture']}, calibrated on {r['calibration_rows']} {calib}"
    )
    print("  " + _qat_line(r))
    if r["trained_on_evaluated_rows"]:
        print(
            "  (these are the rows the model was trained on: float vs integer compares the two models, "
            "not how either does on new rows; add --test FILE for that)"
        )
    if r["task"] == "classify":
        agree = r["agreement"]
        print(
            f"  accuracy on {rows}: float {100 * r['float']['accuracy']:.2f}%, "
            f"integer {100 * r['integer']['accuracy']:.2f}%"
        )
        print(f"  argmax agreement integer vs float: {100 * agree:.2f}% ({round(agree * r['n'])}/{r['n']})")
    else:
        print(
            f"  RMSE on {rows}: float {r['float']['rmse']:.4g}, integer {r['integer']['rmse']:.4g} "
            f"({100 * r['rmse_change']:+.2f}%); integer vs float RMS {r['float_vs_integer_rmse']:.4g}"
        )
    ratio = r["float32_bytes"] / r["bytes"]
    print(
        f"  size: {r['bytes']} bytes (.enn, everything included) vs {r['float32_bytes']} bytes of float32 "
        f"weights and biases ({ratio:.1f}x)"
    )
    print(f"  per layer, integer vs float activations on {rows} (SNR; values clipped at a range end):")
    print("\n".join(layer_error_lines(r["layers"])))


def _qat_line(r: dict) -> str:
    q = r["qat"]
    what = "agreement" if r["task"] == "classify" else "RMS vs float"

    def shown(score: float) -> str:
        return f"{100 * score:.2f}%" if r["task"] == "classify" else f"{-score:.4g}"

    if q["mode"] == "off":
        return "quantization-aware fine-tuning: off (--no-qat)"
    if q["epochs_run"] == 0:
        return (
            f"quantization-aware fine-tuning: not needed ({what} on the calibration rows already "
            f"{shown(q['calibration_score_plain'])})"
        )
    verdict = "used" if q["used"] else "not used, plain quantization kept"
    if q["used"] and q["calibration_score_qat"] == q["calibration_score_plain"]:
        verdict = "used: same agreement, outputs closer to the float model's"
    return (
        f"quantization-aware fine-tuning: {verdict} ({what} on the calibration rows: plain "
        f"{shown(q['calibration_score_plain'])}, fine-tuned {shown(q['calibration_score_qat'])}"
        + (f" after {q['epoch']} epoch(s))" if q["used"] else ")")
    )
