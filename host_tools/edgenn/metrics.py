"""The numbers every scoring step shares: confusion matrices, per-class precision/recall/F1, and what
quantization did to each layer (SNR of the integer activations against the float ones, clipped codes).

`evaluate`, `eval-device`, `quantize` and `edgenn report` all call these, so a figure printed in the
terminal and the same figure in the HTML report are one computation.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from edgenn import golden
from edgenn.floatmodel import FloatModel
from edgenn.modelfile import QuantModel
from edgenn.quantize import LUT_OUTPUT

# ---------------------------------------------------------------------------------------------------
# Classification


def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int) -> np.ndarray:
    """cm[i, j] = rows of true class i predicted as class j (scikit-learn's orientation). Predictions
    outside 0..n_classes-1 (a board that refused a row says -1) are left out of the matrix."""
    t = np.asarray(y_true, dtype=np.int64)
    p = np.asarray(y_pred, dtype=np.float64)
    valid = np.isfinite(p) & (p >= 0) & (p < n_classes)
    cm = np.zeros((n_classes, n_classes), dtype=np.int64)
    np.add.at(cm, (t[valid], p[valid].astype(np.int64)), 1)
    return cm


def per_class(cm: np.ndarray, labels: list[str]) -> list[dict]:
    """Precision, recall and F1 of each class from a confusion matrix (0 where undefined, as sklearn's
    `zero_division=0`), and its support (true rows)."""
    cm = np.asarray(cm, dtype=np.float64)
    tp = np.diag(cm)
    support = cm.sum(axis=1)
    predicted = cm.sum(axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        precision = np.where(predicted > 0, tp / predicted, 0.0)
        recall = np.where(support > 0, tp / support, 0.0)
        f1 = np.where(precision + recall > 0, 2 * precision * recall / (precision + recall), 0.0)
    return [
        {
            "label": label,
            "support": int(support[k]),
            "precision": float(precision[k]),
            "recall": float(recall[k]),
            "f1": float(f1[k]),
        }
        for k, label in enumerate(labels)
    ]


def classification_summary(y_true: np.ndarray, y_pred: np.ndarray, labels: list[str]) -> dict:
    """The JSON keys `--json` adds: `confusion` (rows = true class, columns = predicted) and `per_class`."""
    cm = confusion_matrix(y_true, y_pred, len(labels))
    return {"confusion": cm.tolist(), "per_class": per_class(cm, labels)}


def confusion_lines(cm: np.ndarray | list, labels: list[str], max_label: int = 12) -> list[str]:
    """A compact text confusion matrix (rows true, columns predicted) with each class's recall at the
    end of its row. Columns are numbered; the row names say which number is which class."""
    cm = np.asarray(cm, dtype=np.int64)
    names = [_short(label, max_label) for label in labels]
    name_w = max([len(n) for n in names] + [len("true \\ predicted")]) + 5
    cell_w = max(len(str(int(cm.max()))) if cm.size else 1, len(str(len(labels) - 1))) + 1
    head = "true \\ predicted".ljust(name_w) + "".join(f"{k:>{cell_w}}" for k in range(len(labels)))
    lines = [head + "   recall"]
    for k, row in enumerate(cm):
        support = int(row.sum())
        recall = f"{100 * row[k] / support:6.1f}%" if support else "     -"
        label = f"{k:>2} {names[k]}".ljust(name_w)
        lines.append(label + "".join(f"{int(v):>{cell_w}}" for v in row) + "  " + recall)
    return lines


def _short(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "~"


# ---------------------------------------------------------------------------------------------------
# Regression


def regression_summary(predicted: np.ndarray, y_true: np.ndarray) -> dict:
    """RMSE and MAE of the first output against the target."""
    p = np.asarray(predicted, dtype=np.float64).reshape(len(y_true), -1)[:, 0]
    err = p - np.asarray(y_true, dtype=np.float64)
    return {"rmse": float(np.sqrt(np.mean(err**2))), "mae": float(np.mean(np.abs(err)))}


# ---------------------------------------------------------------------------------------------------
# Quantization, layer by layer


@dataclass
class LayerError:
    """How far one tensor of the integer pipeline is from the float model's, on some rows."""

    name: str  # "input", "layer 0", ..., "output"
    activation: str
    width: int
    snr_db: float  # 10 log10(sum float^2 / sum (integer - float)^2); inf when equal
    rms_error: float  # in the tensor's real units
    clipped: int  # values that hit the end of the code range (the integer value saturates)
    values: int  # rows * width
    codes: np.ndarray  # the integer tensor (uint8 / int8), (rows, width)
    weights: np.ndarray | None  # int8 weights of the layer producing this tensor (None for the input)

    @property
    def clipped_fraction(self) -> float:
        return self.clipped / self.values if self.values else 0.0

    def as_dict(self) -> dict:
        return {
            "name": self.name,
            "activation": self.activation,
            "width": self.width,
            "snr_db": None if not np.isfinite(self.snr_db) else round(self.snr_db, 2),
            "rms_error": self.rms_error,
            "clipped": self.clipped,
            "values": self.values,
        }


def snr_db(reference: np.ndarray, approximation: np.ndarray) -> float:
    signal = float(np.sum(np.asarray(reference, np.float64) ** 2))
    noise = float(np.sum((np.asarray(approximation, np.float64) - reference) ** 2))
    if noise == 0.0:
        return float("inf")
    if signal == 0.0:
        return float("-inf")
    return 10.0 * np.log10(signal / noise)


def input_tensor(qm: QuantModel, fm: FloatModel) -> tuple[np.ndarray, np.ndarray]:
    """(scale, zero) of the input codes in the float model's standardized units: code u on feature d
    means (u - zero[d]) * scale[d]. From u = x * in_scale + in_offset and s = (x - mean) / std."""
    a = np.asarray(qm.in_scale, np.float32).astype(np.float64)
    c = np.asarray(qm.in_offset, np.float32).astype(np.float64)
    return 1.0 / (a * fm.input_std), c + fm.input_mean * a


def _accumulator_unit(w_real: np.ndarray, scale_in: np.ndarray, w_q: np.ndarray) -> np.ndarray:
    """Per neuron, the real value of one accumulator step: the least-squares s in w_real*scale_in ~ s*w_q
    (the quantizer's per-neuron weight scale, recovered from the file; the file does not store it)."""
    w_u = (np.asarray(w_real, np.float64) * scale_in[:, None]).T  # (n_out, n_in)
    q = np.asarray(w_q, np.float64)
    denom = np.sum(q * q, axis=1)
    return np.where(denom > 0, np.sum(w_u * q, axis=1) / np.where(denom > 0, denom, 1.0), 1.0)


def layer_errors(fm: FloatModel, qm: QuantModel, x_raw: np.ndarray) -> list[LayerError]:
    """Run both pipelines on the same raw rows and compare every tensor in real units.

    The integer codes are mapped back to real values with the scales the quantizer chose: the input's
    from the file's input scaling, a ReLU layer's from its weights and requantization multiplier
    (output step = accumulator step * 2**shift / mult), a sigmoid/tanh layer's fixed table scale, and
    the output's from the file's out_scale/out_zero_point. `clipped` counts values whose integer form
    hit the end of its range before the clamp (inputs outside the calibrated range, ReLU outputs above
    the top code, pre-activations beyond the int8 output's range or beyond a table's range where the
    function has not flattened out yet), by more than one code (one code is rounding noise)."""
    x = np.asarray(x_raw, dtype=np.float64)
    floats = fm.forward_layers(x)
    # the input scaling's own inputs: the raw features, or a sensor front end's integer features
    feats = np.asarray(golden.features(qm, x), dtype=np.float64)
    codes_f = feats * np.asarray(qm.in_scale, np.float32).astype(np.float64)
    codes_f = np.floor(codes_f + np.asarray(qm.in_offset, np.float32).astype(np.float64) + 0.5)
    u = golden.quantize_input(qm, x)
    scale, zero = input_tensor(qm, fm)
    a_ref = fm.standardize(x)
    a_int = (u.astype(np.float64) - zero) * scale
    out = [
        LayerError(
            "input",
            "-",
            fm.n_inputs,
            snr_db(a_ref, a_int),
            float(np.sqrt(np.mean((a_int - a_ref) ** 2))),
            int(np.sum((codes_f < 0) | (codes_f > 255))),
            int(u.size),
            u,
            None,
        )
    ]
    last = len(qm.layers) - 1
    for i, (layer, w_real, (_, a_float)) in enumerate(zip(qm.layers, fm.weights, floats)):
        acc = golden.accumulate(layer, u)
        v = golden.requant_golden(acc, layer.mult, layer.shift) + int(layer.out_zero)
        s_acc = _accumulator_unit(w_real, scale, layer.weights)
        u = golden.layer_forward(layer, u)
        q = u.astype(np.float64)
        if layer.activation == "relu":
            scale = s_acc * np.exp2(layer.shift.astype(np.float64)) / layer.mult
            zero = np.zeros(layer.n_out)
            clipped = int(np.sum(v > 256))
        elif layer.activation in LUT_OUTPUT:
            s, z = LUT_OUTPUT[layer.activation]
            scale, zero = np.full(layer.n_out, s), np.full(layer.n_out, float(z))
            # beyond the table's ends only counts when the table has not reached (within a code) the
            # function's limit there: the quantizer stops the range where sigmoid/tanh flatten out
            table = np.frombuffer(bytes(layer.lut), dtype=np.uint8)
            clipped = int(np.sum((v < -129) & (table[0] > 1)) + np.sum((v > 128) & (table[255] < 254)))
        else:  # identity: the network's output, dequantized as the file says
            clipped = int(np.sum((v < -129) | (v > 128)))
        if i == last:
            real_int = golden.dequantize(qm, u)
            real_float = a_float
            if fm.task == "regress":
                real_float = fm.target_mean + fm.target_std * a_float
        else:
            real_int = (q - zero) * scale
            real_float = a_float
        out.append(
            LayerError(
                "output" if i == last else f"layer {i}",
                layer.activation,
                layer.n_out,
                snr_db(real_float, real_int),
                float(np.sqrt(np.mean((real_int - real_float) ** 2))),
                clipped,
                int(u.size),
                u,
                np.asarray(layer.weights),
            )
        )
    return out


def layer_error_lines(errors: list[LayerError] | list[dict]) -> list[str]:
    """The per-layer summary `quantize` prints: one short table (from LayerErrors or their as_dict)."""
    lines = [f"  {'tensor':<9}{'act':<9}{'width':>6}{'SNR dB':>9}{'clipped':>16}"]
    for e in errors:
        d = e.as_dict() if isinstance(e, LayerError) else e
        snr = "exact" if d["snr_db"] is None else f"{d['snr_db']:.1f}"
        share = d["clipped"] / d["values"] if d["values"] else 0.0
        clipped = f"{d['clipped']} ({100 * share:.1f}%)"
        lines.append(f"  {d['name']:<9}{d['activation']:<9}{d['width']:>6}{snr:>9}{clipped:>16}")
    return lines


# ---------------------------------------------------------------------------------------------------
# Anomaly detection: the positive class is "anomalous"


def roc_auc(scores: np.ndarray, anomalous: np.ndarray) -> float:
    """Area under the ROC curve: the probability that a random anomalous row scores higher than a random
    normal one, ties counting one half (the Mann-Whitney U statistic over the average ranks). NaN when
    either class is missing."""
    s = np.asarray(scores, dtype=np.float64)
    pos = np.asarray(anomalous, dtype=bool)
    n_pos, n_neg = int(pos.sum()), int((~pos).sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    order = np.argsort(s, kind="mergesort")
    ranks = np.empty(len(s), dtype=np.float64)
    sorted_s = s[order]
    # average rank (1-based) of each run of equal scores
    starts = np.flatnonzero(np.r_[True, sorted_s[1:] != sorted_s[:-1]])
    ends = np.r_[starts[1:], len(s)]
    for a, b in zip(starts, ends):
        ranks[order[a:b]] = 0.5 * (a + 1 + b)
    u = ranks[pos].sum() - n_pos * (n_pos + 1) / 2.0
    return float(u / (n_pos * n_neg))


def roc_curve(scores: np.ndarray, anomalous: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(false positive rate, true positive rate, threshold) at every distinct score, flagging s > t;
    starts at (0, 0) with t = max score and ends at (1, 1)."""
    s = np.asarray(scores, dtype=np.float64)
    pos = np.asarray(anomalous, dtype=bool)
    thresholds = np.r_[np.unique(s)[::-1], -np.inf]
    tpr = np.array([np.sum(pos & (s > t)) for t in thresholds]) / max(1, int(pos.sum()))
    fpr = np.array([np.sum(~pos & (s > t)) for t in thresholds]) / max(1, int((~pos).sum()))
    return fpr, tpr, thresholds


def anomaly_summary(scores: np.ndarray, anomalous: np.ndarray, threshold: float) -> dict:
    """AUC, and precision/recall/F1 of the flag s > threshold (0 where undefined); `confusion` is
    [[normal kept, normal flagged], [anomalous missed, anomalous flagged]] (rows true, columns flag)."""
    s = np.asarray(scores, dtype=np.float64)
    pos = np.asarray(anomalous, dtype=bool)
    flag = s > threshold
    tp, fp = int(np.sum(flag & pos)), int(np.sum(flag & ~pos))
    fn, tn = int(np.sum(~flag & pos)), int(np.sum(~flag & ~pos))
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    auc = roc_auc(s, pos)
    return {
        "auc": None if np.isnan(auc) else auc,
        "threshold": threshold,
        "precision": precision,
        "recall": recall,
        "f1": f1,
        "n_normal": tn + fp,
        "n_anomalous": tp + fn,
        "flagged": tp + fp,
        "confusion": [[tn, fp], [fn, tp]],
    }
