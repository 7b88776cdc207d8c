"""The `--task anomaly` side of `train`, `quantize` and `evaluate` (not a subcommand of its own): which
rows are normal (--label/--normal), the threshold, and what the commands print about scores.

Rows and labels: without --label every row is normal, except that a column named `label` (what
`edgenn record` writes) is never a feature: if it holds one value every row is normal, otherwise
--normal must say which values are. With --label COL, --normal V[,V...] names the normal values of COL;
the other rows are anomalous (never fitted: train uses them only for an estimate).
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass

import numpy as np

from edgenn import anomaly, frontend, modelfile
from edgenn.commands.common import print_json
from edgenn.data import (
    RECORDED_LABEL,
    _bundled_metadata,
    bundled_path,
    parse_numbers,
    read_table,
    resolve_data_path,
    sorted_labels,
)
from edgenn.errors import UserError
from edgenn.floatmodel import FloatModel
from edgenn.metrics import anomaly_summary, roc_auc
from edgenn.modelfile import QuantModel

DEFAULT_ACTIVATION = "tanh"  # measured on 11 one-class tasks: tanh 0.963 mean AUC, relu 0.960
DEFAULT_WEIGHT_DECAY = 1e-3


def add_normal_argument(parser: argparse.ArgumentParser, what: str) -> None:
    parser.add_argument(
        "--normal",
        metavar="V[,V...]",
        nargs="+",
        help=f"anomaly models: the values of the label column (--label) that mean normal; {what}",
    )


def normal_values(values: list[str] | None) -> list[str] | None:
    """--normal a,b c -> ['a', 'b', 'c']."""
    if not values:
        return None
    out = [v.strip() for item in values for v in item.split(",") if v.strip()]
    if not out:
        raise UserError("--normal: no value given (e.g. --normal ok or --normal ok,idle)")
    return out


@dataclass
class Rows:
    X: np.ndarray  # every row, float64 (n, d), in file order
    anomalous: np.ndarray | None  # bool (n,), None when DATA says nothing about it
    feature_names: list[str]
    label_column: str | None
    normal: list[str] | None
    source: str


def read_rows(
    data: str,
    label: str | None,
    normal: list[str] | None,
    feature_names: list[str] | None = None,
) -> Rows:
    """DATA's rows and which are normal. feature_names None (train): every column but the label;
    else exactly these columns must be there (any order; the label column besides)."""
    path = resolve_data_path(data)
    table = read_table(path)
    shown = data if bundled_path(data) else str(path)
    meta = _bundled_metadata().get(data) if bundled_path(data) else None
    if normal and label is None:
        label = meta["label"] if meta else RECORDED_LABEL if RECORDED_LABEL in table.header else None
        if label is None:
            raise UserError(f"{shown}: --normal needs --label COL: which column holds {normal[0]!r}?")
    if label is None and (meta or RECORDED_LABEL in table.header):
        label = meta["label"] if meta else RECORDED_LABEL
        if feature_names is not None and label in feature_names:
            label = None
    if label is not None and label not in table.header:
        columns = ", ".join(table.header)
        raise UserError(f"{shown}: no column named {label!r} for the label (columns: {columns})")
    present = [h for h in table.header if h != label]
    if feature_names is None:
        feature_names = present
        if not feature_names:
            raise UserError(f"{shown}: the label column {label!r} is the only column; there are no features")
    else:
        missing = [f for f in feature_names if f not in present]
        extra = [h for h in present if h not in feature_names]
        if missing or extra:
            parts = ([f"missing column(s) {', '.join(missing[:8])}"] if missing else []) + (
                [f"unexpected column(s) {', '.join(extra[:8])}"] if extra else []
            )
            raise UserError(
                f"{shown}: columns do not match the model: {'; '.join(parts)} (the model takes "
                f"{len(feature_names)} columns; a label column needs --label)"
            )
    X = parse_numbers(table, feature_names)
    anomalous = None
    if label is not None:
        values = table.column(label)
        present_labels = sorted_labels(values)
        if normal is None:
            if len(present_labels) > 1:
                raise UserError(
                    f"{shown}: column {label!r} holds {len(present_labels)} labels "
                    f"({', '.join(present_labels[:12])}); say which are normal with --normal V[,V...]"
                )
            normal = present_labels
        unknown = [v for v in normal if v not in present_labels]
        if unknown:
            raise UserError(
                f"{shown}: --normal {unknown[0]!r} is not a label of column {label!r} "
                f"(its labels: {', '.join(present_labels[:20])})"
            )
        anomalous = np.array([v not in normal for v in values], dtype=bool)
    return Rows(X, anomalous, list(feature_names), label, normal, shown)


# ---------------------------------------------------------------------------------------------------
# train


def train(args: argparse.Namespace, hidden: tuple[int, ...] | None, front_end_of) -> int:
    """`edgenn train DATA --task anomaly`: fit on the normal rows only; the rest, if any, estimate."""
    if args.test:
        raise UserError("--test is not used with --task anomaly (score a file with `edgenn evaluate`)")
    folds = args.folds if args.folds is not None else 5
    anomaly.check_options(args.threshold_quantile, folds)
    rows = read_rows(args.data, args.label, normal_values(args.normal))
    front_end = front_end_of(args, rows.feature_names)
    normal = rows.X if rows.anomalous is None else rows.X[~rows.anomalous]
    others = np.zeros((0, rows.X.shape[1])) if rows.anomalous is None else rows.X[rows.anomalous]
    if len(normal) == 0:
        raise UserError(f"{rows.source}: no normal rows (none labelled {', '.join(rows.normal or [])})")
    kwargs = dict(
        hidden=hidden,
        activation=args.activation or DEFAULT_ACTIVATION,
        max_epochs=args.epochs,
        patience=args.patience,
        seed=args.seed,
        threshold_quantile=args.threshold_quantile,
        folds=folds,
        weight_decay=args.weight_decay if args.weight_decay is not None else DEFAULT_WEIGHT_DECAY,
        source=rows.source,
    )
    if front_end is None:
        model = anomaly.train_anomaly(normal, feature_names=rows.feature_names, **kwargs)
    else:
        model = anomaly.train_anomaly_windows(normal, front_end, **kwargs)
    info = model.meta["anomaly"]
    oof = np.asarray(info["oof_scores"])
    estimate = None
    if len(others):  # never fitted: the other rows' scores against the normal rows' out-of-fold scores
        s_others = anomaly.float_scores(model, others)
        auc = roc_auc(np.r_[oof, s_others], np.r_[np.zeros(len(oof)), np.ones(len(others))])
        flagged = int(np.sum(s_others > model.threshold))
        estimate = {"auc": auc, "n_anomalous": int(len(others)), "flagged": flagged}
    info.update(
        label_column=rows.label_column,
        normal=rows.normal,
        estimate=estimate,
        normal_fingerprint=anomaly.rows_fingerprint(normal),
    )
    model.meta.update(dataset=rows.source, source=rows.source, label_column=rows.label_column)
    model.save(args.output_path)
    if args.json:
        print_json(
            {
                "model": str(args.output_path),
                "dataset": rows.source,
                "task": "anomaly",
                "layers": model.layer_sizes,
                "activation": model.activations[0],
                "n_normal": int(len(normal)),
                "n_anomalous": int(len(others)),
                "threshold": model.threshold,
                "threshold_quantile": info["threshold_quantile"],
                "folds": info["folds"],
                "epochs": model.meta["epochs"],
                "train_seconds": model.meta["train_seconds"],
                "estimate": estimate,
                "features": frontend.describe(front_end),
            }
        )
        return 0
    shape = " -> ".join(map(str, model.layer_sizes))
    print(
        f"trained {rows.source} (anomaly): {shape} ({model.activations[0]} autoencoder) on {len(normal)} "
        f"normal rows, {model.meta['epochs']} epochs, {model.meta['train_seconds']:.1f} s"
    )
    if front_end is not None:
        print(f"front end: {frontend.describe(front_end)}")
    over = int(np.sum(oof > model.threshold))
    print(
        f"threshold {model.threshold:.4g}: the {info['threshold_quantile']:g} quantile of the normal rows' "
        f"out-of-fold scores ({info['folds']} folds; {over} of {len(oof)} over it)"
    )
    if estimate is not None:
        print(
            f"estimate on the {len(others)} other rows (not normal, never fitted): ROC AUC "
            f"{estimate['auc']:.3f}, {estimate['flagged']} of them over the threshold"
        )
    print(f"wrote {args.output_path}")
    return 0


# ---------------------------------------------------------------------------------------------------
# quantize


def calibration_rows(fm: FloatModel, data: str, label: str | None, normal: list[str] | None) -> Rows:
    """DATA for quantize: the rows quantize's --normal names, else those named normal when the model
    was trained (its label column and --normal values are in the .npz)."""
    info = fm.meta.get("anomaly", {})
    label = label or (info.get("label_column") if not normal else None)
    return read_rows(data, label, normal or info.get("normal"), fm.input_names)


def compare(fm: FloatModel, qm: QuantModel, rows: Rows) -> dict:
    """Float vs integer on DATA: AUC of each (when DATA has anomalous rows), flag agreement, and how
    close the integer score is to the float one (score_closeness)."""
    s_f = anomaly.float_scores(fm, rows.X)
    s_i = anomaly.golden_scores(qm, rows.X)
    out = {
        "flag_agreement": float(np.mean((s_f > fm.threshold) == (s_i > qm.threshold))),
        "rank_correlation": float(np.corrcoef(np.argsort(np.argsort(s_f)), np.argsort(np.argsort(s_i)))[0, 1])
        if len(s_f) > 1
        else 1.0,
        "threshold": {"float": fm.threshold, "integer": int(qm.threshold)},
    }
    if rows.anomalous is not None and rows.anomalous.any() and (~rows.anomalous).any():
        out["float"] = {"auc": roc_auc(s_f, rows.anomalous)}
        out["integer"] = {"auc": roc_auc(s_i, rows.anomalous)}
    return out


def quantize(args: argparse.Namespace, fm: FloatModel, out_path, profile) -> int:
    """`edgenn quantize` of an anomaly model: calibrated on DATA's normal rows (QAT kept only when the
    integer scores then track the float scores more closely), then float vs integer on DATA (or --test)."""
    from edgenn import fit
    from edgenn.commands.quantize import _qat_line, qat_summary
    from edgenn.metrics import layer_error_lines, layer_errors
    from edgenn.qat import EPOCHS, fine_tune

    normal = normal_values(args.normal)
    rows = calibration_rows(fm, args.data, args.label, normal)
    calib = rows.X if rows.anomalous is None else rows.X[~rows.anomalous]
    if len(calib) == 0:
        raise UserError(f"{rows.source}: no normal rows to calibrate on")
    tuned = fine_tune(
        fm,
        calib,
        name=str(fm.meta.get("dataset") or rows.source),
        epochs=0 if args.qat == "off" else EPOCHS,
        force=args.qat == "on",
    )
    qm = tuned.model
    try:
        size = modelfile.save(qm, out_path)
    except OSError as exc:
        raise UserError(f"{out_path}: cannot write ({exc.strerror})") from None
    shown = rows
    if args.test:
        shown = calibration_rows(fm, args.test, args.label, normal)
    result = {
        "model": str(out_path),
        "source": str(args.model),
        "data": args.data,
        "task": "anomaly",
        "architecture": modelfile.describe(qm),
        "calibration_rows": int(len(calib)),
        "evaluated_on": "test_file" if args.test else "all",
        "n": int(len(shown.X)),
        "n_anomalous": int(shown.anomalous.sum()) if shown.anomalous is not None else 0,
        "qat": qat_summary(args.qat, tuned),
        **compare(fm, qm, shown),
        "bytes": size,
        "float32_bytes": modelfile.float32_bytes(qm),
        "warnings": list(tuned.warnings),
        "layers": [e.as_dict() for e in layer_errors(fm, qm, calib)],
    }
    fits = fit.check_fit(qm, profile) if profile is not None else None
    if fits is not None:
        result["board_fit"] = fits.as_dict()
    if args.json:
        print_json(result)
    else:
        for warning in result["warnings"]:
            print(f"edgenn quantize: warning: {warning}", file=sys.stderr)
        print(
            f"{result['source']} -> {result['model']}: {result['architecture']}, calibrated on "
            f"{result['calibration_rows']} normal rows"
        )
        print("  " + _qat_line(result).replace("RMS vs float", "score closeness"))
        print("\n".join(compare_lines(result)))
        print(f"  size: {size} bytes (.enn, everything included)")
        print(f"  per layer, integer vs float activations on the {len(calib)} normal rows:")
        print("\n".join(layer_error_lines(result["layers"])))
        if fits is not None:
            print(f"  board: {fits.summary()}")
    return 1 if fits is not None and not fits.fits else 0


def compare_lines(r: dict) -> list[str]:
    lines = []
    if "float" in r:
        lines.append(
            f"  ROC AUC on {r['n']} rows ({r['n_anomalous']} anomalous): float {r['float']['auc']:.4f}, "
            f"integer {r['integer']['auc']:.4f}"
        )
    lines.append(
        f"  integer vs float scores: flags agree on {100 * r['flag_agreement']:.2f}% of {r['n']} rows, "
        f"rank correlation {r['rank_correlation']:.4f}; threshold {r['threshold']['integer']} "
        f"(float {r['threshold']['float']:.4g})"
    )
    return lines


# ---------------------------------------------------------------------------------------------------
# evaluate


def evaluate(args: argparse.Namespace, model: FloatModel | QuantModel, path: str) -> int:
    """`edgenn evaluate MODEL DATA` for an anomaly model: with labels AUC/precision/recall/F1 and the
    confusion table, without them the score distribution and the count over the threshold."""
    if args.split != "all" or args.labels:
        raise UserError(
            "--split and --labels are for classifiers and regressors; an anomaly model scores every row"
        )
    names = model.input_names
    rows = read_rows(args.data, args.label, normal_values(args.normal), names)
    scores, threshold = anomaly.scores(model, rows.X)
    kind = "integer" if isinstance(model, QuantModel) else "float"
    flagged = scores > threshold
    n = len(scores)
    if rows.anomalous is not None:
        result = anomaly_summary(scores, rows.anomalous, threshold)
    else:
        result = {"threshold": threshold, "n_normal": None, "n_anomalous": None}
        result["flagged"] = int(flagged.sum())
    result.update(
        n=n,
        kind=kind,
        # "nearest": every figure is a score some row has (an integer for the integer model)
        score_quantiles={q: np.quantile(scores, q / 100, method="nearest") for q in (0, 50, 90, 99, 100)},
    )
    if args.json:
        if args.predictions:
            result["scores"] = [int(s) if kind == "integer" else float(s) for s in scores]
            result["anomalies"] = [bool(f) for f in flagged]
        result["score_quantiles"] = {f"p{q}": v for q, v in result["score_quantiles"].items()}
        print_json(result)
        return 0
    t = f"{int(threshold)}" if kind == "integer" else f"{threshold:.4g}"
    if rows.anomalous is None:
        print(
            f"{path} ({kind}) on {args.data}, {n} rows: {int(flagged.sum())} over the threshold {t} "
            f"({100 * flagged.mean():.1f}%)"
        )
    else:
        auc = "-" if result["auc"] is None else f"{result['auc']:.4f}"
        print(
            f"{path} ({kind}) on {args.data}, {n} rows ({result['n_normal']} normal, {result['n_anomalous']} "
            f"anomalous): ROC AUC {auc}"
        )
        print(
            f"at the threshold {t}: precision {100 * result['precision']:.1f}%, recall "
            f"{100 * result['recall']:.1f}%, F1 {result['f1']:.3f}"
        )
        (tn, fp), (fn, tp) = result["confusion"]
        w = max(11, len(str(n)) + 2)
        head = "true \\ flagged"
        print(f"{head:<16}{'normal':>{w}}{'anomalous':>{w}}")
        print(f"{'normal':<16}{tn:>{w}}{fp:>{w}}")
        print(f"{'anomalous':<16}{fn:>{w}}{tp:>{w}}")
    qs = result["score_quantiles"]
    fmt = (lambda v: f"{int(v)}") if kind == "integer" else (lambda v: f"{v:.4g}")
    print(
        f"scores: min {fmt(qs[0])}, median {fmt(qs[50])}, 90% {fmt(qs[90])}, 99% {fmt(qs[99])}, "
        f"max {fmt(qs[100])}"
    )
    if args.predictions:
        for s, f in zip(scores, flagged):
            print(f"{fmt(s)} {'anomalous' if f else 'normal'}")
    return 0


def load_anomaly_model(path: str) -> FloatModel | QuantModel | None:
    """The model at `path` if it is an anomaly model (.npz or .enn), else None."""
    with open(path, "rb") as fh:
        magic = fh.read(4)
    if magic.startswith(b"PK"):
        fm = FloatModel.load(path)
        return fm if fm.task == "anomaly" else None
    if magic == modelfile.MAGIC:
        qm = modelfile.load(path)
        return qm if qm.task == "anomaly" else None
    return None
