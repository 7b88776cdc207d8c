"""HTML tables for the report: one generic builder and the tables the sections show."""

from __future__ import annotations

import html
from collections.abc import Sequence
from typing import Any

import numpy as np

from edgenn.metrics import LayerError, confusion_matrix, per_class

Cell = Any  # str (escaped), or a (text, css_class) pair


def table(header: Sequence[str] | None, rows: Sequence[Sequence[Cell]], css: str = "") -> str:
    """A plain <table> (no header row when `header` is None): numbers right-aligned by the stylesheet
    (class "num"), text escaped."""

    def cell(tag: str, value: Cell) -> str:
        cls = ""
        if isinstance(value, tuple):
            value, cls = value
        elif isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool):
            cls = "num"
        attr = f' class="{cls}"' if cls else ""
        return f"<{tag}{attr}>{html.escape(str(value))}</{tag}>"

    head = "" if header is None else "<thead><tr>" + "".join(cell("th", h) for h in header) + "</tr></thead>"
    body = "".join("<tr>" + "".join(cell("td", v) for v in row) + "</tr>" for row in rows)
    cls = f' class="{css}"' if css else ""
    return f"<table{cls}>{head}<tbody>{body}</tbody></table>"


def pct(value: float | None, digits: int = 1) -> Cell:
    return ("-", "num") if value is None else (f"{100 * value:.{digits}f}%", "num")


def num(value: float | None, fmt: str = ".4g") -> Cell:
    return ("-", "num") if value is None or not np.isfinite(value) else (f"{value:{fmt}}", "num")


def per_class_table(y: np.ndarray, predictions: dict[str, np.ndarray], labels: list[str]) -> str:
    """Per class: support, then precision / recall / F1 for each source side by side."""
    stats = {name: per_class(confusion_matrix(y, p, len(labels)), labels) for name, p in predictions.items()}
    header = ["class", "rows"]
    for name in stats:
        header += [f"{name} precision", f"{name} recall", f"{name} F1"]
    rows = []
    for k, label in enumerate(labels):
        row: list[Cell] = [label, int(np.sum(y == k))]
        for s in stats.values():
            c = s[k]
            recall_cls = "num bad" if c["support"] and c["recall"] < 0.8 else "num"
            row += [pct(c["precision"]), (pct(c["recall"])[0], recall_cls), pct(c["f1"])]
        rows.append(row)
    return table(header, rows, "per-class")


def disagreement_table(
    y: np.ndarray, predictions: dict[str, np.ndarray], labels: list[str] | None, limit: int = 40
) -> tuple[str, int]:
    """Rows where the integer model's class differs from the float model's (classify) -> (html, count)."""
    f, q = predictions["float"], predictions["integer"]
    rows_idx = np.flatnonzero(f != q)
    names = list(predictions)

    def show(v: Any) -> str:
        if labels is None:
            return f"{v:.4g}"
        return labels[int(v)] if 0 <= v < len(labels) else "(refused)"

    rows = []
    for i in rows_idx[:limit]:
        row: list[Cell] = [int(i), show(y[i])]
        for name in names:
            v = predictions[name][i]
            cls = "ok" if labels is not None and v == y[i] else "bad"
            row.append((show(v), cls))
        rows.append(row)
    more = f"<p class='note'>... and {len(rows_idx) - limit} more.</p>" if len(rows_idx) > limit else ""
    header = ["row", "true"] + names
    return table(header, rows) + more, int(len(rows_idx))


def layer_table(layers: list[LayerError]) -> str:
    rows = []
    for e in layers:
        snr = "exact" if not np.isfinite(e.snr_db) else f"{e.snr_db:.1f}"
        snr_cls = "num bad" if np.isfinite(e.snr_db) and e.snr_db < 20 else "num"
        clip_cls = "num bad" if e.clipped_fraction > 0.01 else "num"
        rows.append(
            [
                e.name,
                e.activation,
                e.width,
                (snr, snr_cls),
                num(e.rms_error),
                (f"{e.clipped} of {e.values} ({100 * e.clipped_fraction:.2f}%)", clip_cls),
            ]
        )
    return table(["tensor", "activation", "width", "SNR (dB)", "RMS error", "clipped values"], rows)
