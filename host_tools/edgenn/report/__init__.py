"""`edgenn report`: one self-contained HTML page about a model on a dataset (and on a board).

collect.py computes the numbers, figures.py draws them (matplotlib, an optional extra), tables.py and
page.py lay out the page. `build_report` is the one call the command and notebooks need.
"""

from __future__ import annotations

import time
from pathlib import Path

from edgenn.outputs import output_file, write_atomic
from edgenn.report.collect import Progress, ReportData, collect


def build_report(
    model: str,
    data: str,
    output: str | Path,
    float_model: str | None = None,
    label: str | None = None,
    port: str | None = None,
    board: str | None = None,
    baud: int = 115200,
    timeout: float = 5.0,
    progress: Progress | None = None,
    normal: list[str] | None = None,
) -> ReportData:
    """Compute every section, draw the page and write it to `output`; returns the numbers."""
    from edgenn.report import figures, page

    figures.require_matplotlib()  # before any slow work: a missing extra is one line, at once
    # before any slow work; never over a model or one of the page's own inputs
    output = output_file(output, ".html", (model, data, float_model))
    report = collect(model, data, float_model, label, port, board, baud, timeout, progress, normal)
    if progress is not None:
        progress("drawing the figures")
    t = time.perf_counter()
    text = page.render(report)
    report.seconds["page"] = time.perf_counter() - t
    write_atomic(output, text.encode("utf-8"))
    return report


__all__ = ["ReportData", "build_report", "collect"]
