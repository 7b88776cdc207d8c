"""The report's pictures, drawn with matplotlib and embedded as SVG data URIs (no files, no network).

Each function takes plain arrays and returns an `<img>` tag. matplotlib is an optional extra
(`pip install 'edgenn[report]'`); `require_matplotlib` turns its absence into one line.
"""

from __future__ import annotations

import base64
import html
import io
from typing import Any

import numpy as np

from edgenn.errors import UserError

# Colours per source, the same in every figure and table.
COLORS = {"float": "#1f77b4", "integer": "#d62728", "board": "#2ca02c"}
_plt: Any = None


def require_matplotlib() -> Any:
    """matplotlib.pyplot on the non-interactive Agg backend, or a UserError saying how to install it."""
    global _plt
    if _plt is None:
        try:
            import matplotlib
        except ImportError:
            raise UserError(
                "edgenn report draws its figures with matplotlib, which is not installed: "
                "pip install 'edgenn[report]' (or pip install matplotlib)"
            ) from None
        matplotlib.use("Agg", force=True)
        import matplotlib.pyplot as plt

        plt.rcParams.update(
            {
                "svg.fonttype": "none",  # text stays text: smaller files, selectable, the page's font
                "svg.hashsalt": "edgenn",  # deterministic ids: the same report twice is the same file
                "font.size": 9,
                "axes.titlesize": 10,
                "axes.spines.top": False,
                "axes.spines.right": False,
                "figure.dpi": 100,
            }
        )
        _plt = plt
    return _plt


def to_img(fig: Any, alt: str, css_class: str = "fig", png: bool = False) -> str:
    """Close `fig` and return it as an inline <img>: SVG (a data URI keeps each figure's ids apart),
    or a palette PNG at twice the screen resolution for figures of thousands of markers (smaller)."""
    plt = require_matplotlib()
    buf = io.BytesIO()
    if png:
        from PIL import Image  # matplotlib's own dependency

        raw = io.BytesIO()
        fig.savefig(raw, format="png", dpi=200, bbox_inches="tight", metadata={"Software": None})
        # a 32-colour palette: a figure has a handful of colours and their antialiased edges; ~8x smaller
        image = Image.open(raw).convert("RGB").quantize(colors=32, method=Image.Quantize.MEDIANCUT)
        image.save(buf, format="PNG", optimize=True)
    else:
        fig.savefig(buf, format="svg", bbox_inches="tight", metadata={"Date": None})
    width_px = int(round(fig.get_size_inches()[0] * 100))
    plt.close(fig)
    data = base64.b64encode(buf.getvalue()).decode("ascii")
    kind = "png" if png else "svg+xml"
    size = f' style="width:{width_px}px"' if png else ""
    return f'<img class="{css_class}"{size} alt="{html.escape(alt)}" src="data:image/{kind};base64,{data}">'


def class_balance(labels: list[str], counts: np.ndarray) -> str:
    plt = require_matplotlib()
    n = len(labels)
    fig, ax = plt.subplots(figsize=(5.0, 0.3 * n + 0.7))
    ypos = np.arange(n)
    ax.barh(ypos, counts, color="#7f7f7f")
    ax.set_yticks(ypos, labels)
    ax.invert_yaxis()
    for k, c in enumerate(counts):
        ax.text(c, k, f" {int(c)}", va="center", fontsize=8)
    ax.set_xlabel("rows")
    ax.set_xlim(0, max(1, counts.max()) * 1.15)
    return to_img(fig, "class balance: rows per class")


def feature_ranges(
    names: list[str], lo: np.ndarray, hi: np.ndarray, cal_lo: np.ndarray, cal_hi: np.ndarray
) -> str:
    """Each feature's seen range drawn on its calibrated range (0..1 = the 256 input codes): red where
    the data leaves the calibrated range, i.e. where the input codes saturate."""
    plt = require_matplotlib()
    n = len(names)
    width = np.where(cal_hi > cal_lo, cal_hi - cal_lo, 1.0)
    a, b = (lo - cal_lo) / width, (hi - cal_lo) / width
    fig, ax = plt.subplots(figsize=(6.0, (0.19 if n <= 20 else 0.12) * n + 0.9))
    ypos = np.arange(n)
    ax.barh(ypos, np.ones(n), left=0, color="#e8e8e8", height=0.8, label="calibrated range (codes 0..255)")
    outside = (a < 0) | (b > 1)
    ax.barh(
        ypos, b - a, left=a, height=0.45, color=np.where(outside, "#d62728", "#1f77b4"), label="seen in DATA"
    )
    ax.axvline(0, color="#555", lw=0.6)
    ax.axvline(1, color="#555", lw=0.6)
    ax.set_yticks(ypos, names, fontsize=6 if n > 20 else 8)
    ax.set_ylim(n - 0.5, -0.5)  # first feature on top, no empty rows at either end
    ax.set_xlim(min(-0.1, float(a.min()) - 0.05), max(1.1, float(b.max()) + 0.05))
    ax.set_xlabel("position in the calibrated range (0 = code 0, 1 = code 255)")
    ax.legend(loc="lower right", fontsize=7, frameon=False, bbox_to_anchor=(1.0, 1.0), ncol=2)
    return to_img(fig, "feature ranges seen against the calibrated input ranges")


def training_curves(runs: dict[str, list[dict]], metric_name: str) -> str:
    """Loss and metric per epoch, training solid and validation dashed; the final fit in black, each
    cross-validation fold in its own colour."""
    plt = require_matplotlib()
    fig, (ax_loss, ax_metric) = plt.subplots(1, 2, figsize=(10.0, 3.2))
    cmap = plt.get_cmap("tab10")
    for k, (name, history) in enumerate(runs.items()):
        final = name == "final fit"
        style = {"color": "black" if final else cmap(k % 10), "lw": 1.6 if final else 1.0}
        if not final:
            style["alpha"] = 0.75
        epochs = [h.get("epoch", i + 1) for i, h in enumerate(history)]
        for ax, train_key, val_key in (
            (ax_loss, "train_loss", "val_loss"),
            (ax_metric, "train_metric", "val_metric"),
        ):
            train = _nan([h.get(train_key) for h in history])
            val = _nan([h.get(val_key) for h in history])
            if np.isfinite(train).any():
                ax.plot(epochs, train, label=name, **style)
            if np.isfinite(val).any():
                ax.plot(epochs, val, ls="--", label=None if np.isfinite(train).any() else name, **style)
    ax_loss.set_title("loss (solid: training rows, dashed: validation rows)", fontsize=9)
    ax_loss.set_xlabel("epoch")
    ax_loss.set_yscale("log")
    ax_metric.set_title(f"{metric_name} (solid: training, dashed: validation)", fontsize=9)
    ax_metric.set_xlabel("epoch")
    ax_metric.legend(fontsize=7, frameon=False, loc="best")
    fig.tight_layout()
    return to_img(fig, "training curves: loss and metric per epoch")


def _nan(values: list) -> np.ndarray:
    return np.array([np.nan if v is None else float(v) for v in values], dtype=np.float64)


def confusion_matrices(matrices: dict[str, np.ndarray], labels: list[str]) -> str:
    """The confusion matrices side by side (rows true, columns predicted), coloured by the row's share
    so small classes read as clearly as big ones, each cell showing its count."""
    plt = require_matplotlib()
    n = len(labels)
    # the page is ~11 inches wide at 100 dpi: fit the row there so the browser does not shrink the text
    side = min(max(2.6, 0.38 * n + 1.4), 5.5, 10.4 / len(matrices))
    fig, axes = plt.subplots(1, len(matrices), figsize=(side * len(matrices) + 0.6, side), squeeze=False)
    small = n > 12
    for ax, (name, cm) in zip(axes[0], matrices.items()):
        cm = np.asarray(cm)
        support = cm.sum(axis=1, keepdims=True)
        share = np.divide(cm, support, out=np.zeros(cm.shape), where=support > 0)
        ax.imshow(share, cmap="Blues", vmin=0, vmax=1)
        for i in range(n):
            for j in range(n):
                if cm[i, j] or (i == j and not small):
                    color = "white" if share[i, j] > 0.6 else ("#b00" if i != j else "black")
                    ax.text(
                        j,
                        i,
                        str(int(cm[i, j])),
                        ha="center",
                        va="center",
                        fontsize=7 if small else 8,
                        color=color,
                    )
        ax.set_xticks(
            range(n),
            labels,
            rotation=45 if max(map(len, labels)) > 3 else 0,
            ha="right" if max(map(len, labels)) > 3 else "center",
            fontsize=7,
        )
        ax.set_yticks(range(n), labels, fontsize=7)
        acc = np.trace(cm) / cm.sum() if cm.sum() else 0.0
        ax.set_title(f"{name}: {100 * acc:.1f}%", color=COLORS.get(name, "black"))
        ax.set_xlabel("predicted")
        ax.spines[:].set_visible(False)
    axes[0][0].set_ylabel("true")
    fig.tight_layout()
    return to_img(fig, "confusion matrices: " + ", ".join(matrices))


def regression_plots(y: np.ndarray, predictions: dict[str, np.ndarray], target: str) -> str:
    """Predicted against true (the diagonal is perfect) and the residuals against true. The board
    computes the integer model exactly, so its points are drawn only where they differ from it."""
    plt = require_matplotlib()
    fig, (ax_p, ax_r) = plt.subplots(1, 2, figsize=(9.0, 3.6))
    lo, hi = float(np.min(y)), float(np.max(y))
    styles = {
        "float": {"s": 22, "marker": "o", "facecolors": "none", "edgecolors": COLORS["float"], "lw": 0.7},
        "integer": {"s": 10, "marker": "x", "color": COLORS["integer"], "lw": 0.8},
        "board": {"s": 40, "marker": "+", "color": COLORS["board"], "lw": 1.0},
    }
    for name, pred in predictions.items():
        ok = np.isfinite(pred)
        label = name
        if name == "board" and "integer" in predictions:
            ok &= ~np.isclose(pred, predictions["integer"], rtol=0, atol=1e-9 * max(1.0, abs(hi)))
            label = f"board, where it differs from integer ({int(ok.sum())} rows)"
        style = styles.get(name, {"s": 10})
        ax_p.scatter(y[ok], pred[ok], label=label, **style)
        ax_r.scatter(y[ok], pred[ok] - y[ok], **style)
        if ok.any():
            lo, hi = min(lo, float(np.min(pred[ok]))), max(hi, float(np.max(pred[ok])))
    ax_p.plot([lo, hi], [lo, hi], color="#555", lw=0.8)
    ax_p.set_xlabel(f"true {target}")
    ax_p.set_ylabel(f"predicted {target}")
    ax_p.set_title("predicted vs true")
    ax_r.axhline(0, color="#555", lw=0.8)
    ax_r.set_xlabel(f"true {target}")
    ax_r.set_ylabel("residual (predicted - true)")
    ax_r.set_title("residuals")
    ax_p.legend(fontsize=7, frameon=False)
    fig.tight_layout()
    return to_img(fig, "predicted vs true and residual plots", png=True)


def layer_histograms(rows: list[tuple[str, np.ndarray | None, np.ndarray, tuple[int, int]]]) -> str:
    """Per tensor: its int8 weights (left) and its integer activation codes on DATA (right).
    rows: (name, weights or None, codes, (code_min, code_max))."""
    plt = require_matplotlib()
    fig, axes = plt.subplots(len(rows), 2, figsize=(8.0, 1.45 * len(rows) + 0.3), squeeze=False)
    for (name, weights, codes, (cmin, cmax)), (ax_w, ax_a) in zip(rows, axes):
        if weights is None:
            ax_w.axis("off")
            ax_w.text(
                0.5,
                0.5,
                "raw features -> input codes\n(no weights)",
                ha="center",
                va="center",
                transform=ax_w.transAxes,
                color="#666",
            )
        else:
            ax_w.hist(
                np.asarray(weights).ravel(),
                bins=np.arange(-128, 129, 4),
                color="#7f7f7f",
                histtype="stepfilled",
            )
            ax_w.set_xlim(-130, 130)
            ax_w.set_title(f"{name}: int8 weights", fontsize=8, loc="left")
        ax_a.hist(
            np.asarray(codes).ravel(),
            bins=np.arange(cmin, cmax + 2, 4),
            color="#d62728",
            histtype="stepfilled",
        )
        ax_a.set_xlim(cmin - 2, cmax + 3)
        ax_a.set_yscale("log")
        ax_a.set_title(f"{name}: activation codes on DATA (log count)", fontsize=8, loc="left")
        for ax in (ax_w, ax_a):
            ax.tick_params(labelsize=7)
    fig.tight_layout()
    return to_img(fig, "weight and activation histograms per layer")


def latency_histogram(latency_us: np.ndarray) -> str:
    plt = require_matplotlib()
    fig, ax = plt.subplots(figsize=(5.0, 2.2))
    ax.hist(latency_us, bins=40, color=COLORS["board"], histtype="stepfilled")
    for q, ls in ((50, "-"), (95, "--")):
        ax.axvline(np.percentile(latency_us, q), color="black", lw=0.8, ls=ls, label=f"p{q}")
    ax.set_xlabel("inference time on the board (us)")
    ax.set_ylabel("rows")
    ax.legend(fontsize=7, frameon=False)
    fig.tight_layout()
    return to_img(fig, "latency histogram measured on the board")


def score_histograms(panels: dict[str, tuple[np.ndarray, np.ndarray | None, float]]) -> str:
    """Anomaly scores, one panel per source (the float and integer scores have their own units):
    normal rows and anomalous rows as two histograms on the same bins (log-spaced when the scores span
    decades, as reconstruction errors do), and the model's threshold as a vertical line: what lies right
    of it is flagged. panels: name -> (scores of normal rows, scores of anomalous rows or None when
    DATA has no labels, threshold)."""
    plt = require_matplotlib()
    fig, axes = plt.subplots(1, len(panels), figsize=(4.8 * len(panels) + 0.4, 2.8), squeeze=False)
    for ax, (name, (normal, anomalous, threshold)) in zip(axes[0], panels.items()):
        parts = [np.asarray(normal, np.float64)]
        if anomalous is not None:
            parts.append(np.asarray(anomalous, np.float64))
        values = np.concatenate([*parts, [threshold]])
        lo, hi = float(values.min()), float(values.max())
        log = lo > 0 and hi / lo > 100
        if log:
            bins = np.geomspace(lo, hi * 1.0001, 41)
            ax.set_xscale("log")
        else:
            bins = np.linspace(lo, hi if hi > lo else lo + 1, 41)
        ax.hist(parts[0], bins=bins, color="#7f7f7f", alpha=0.75, label=f"normal ({len(parts[0])})")
        if anomalous is not None:
            ax.hist(parts[1], bins=bins, color="#d62728", alpha=0.55, label=f"anomalous ({len(parts[1])})")
        ax.axvline(threshold, color="black", lw=1.0, ls="--", label=f"threshold {threshold:.4g}")
        ax.set_title(f"{name} score", color=COLORS.get(name, "black"))
        ax.set_xlabel("anomaly score" + (" (log scale)" if log else ""))
        ax.set_ylabel("rows")
        ax.legend(fontsize=7, frameon=False)
    fig.tight_layout()
    return to_img(fig, "anomaly score histograms: normal vs anomalous rows, with the threshold")


def roc_curves(curves: dict[str, tuple[np.ndarray, np.ndarray, float, tuple[float, float]]]) -> str:
    """ROC curves (rate of anomalous rows flagged against rate of normal rows flagged, as the threshold
    sweeps), one per source, each with the point its stored threshold picks.
    curves: name -> (false positive rates, true positive rates, AUC, (fpr, tpr) at the threshold)."""
    plt = require_matplotlib()
    fig, ax = plt.subplots(figsize=(4.2, 3.8))
    ax.plot([0, 1], [0, 1], color="#aaa", lw=0.8, ls=":", label="chance (AUC 0.5)")
    for name, (fpr, tpr, auc, (px, py)) in curves.items():
        color = COLORS.get(name, "black")
        ax.plot(fpr, tpr, color=color, lw=1.4, label=f"{name}: AUC {auc:.3f}", drawstyle="steps-post")
        ax.plot([px], [py], marker="o", color=color, ms=6, mfc="white", mew=1.5)
    ax.set_xlim(-0.01, 1.01)
    ax.set_ylim(-0.01, 1.01)
    ax.set_xlabel("normal rows flagged (false positive rate)")
    ax.set_ylabel("anomalous rows flagged (recall)")
    ax.set_title("ROC curve (circle: the stored threshold)")
    ax.legend(fontsize=7, frameon=False, loc="lower right")
    fig.tight_layout()
    return to_img(fig, "ROC curve of the anomaly scores")
