"""Report benchmark: how long `edgenn report` takes, and how big the page is, against scoring alone.

For each case (a bundled dataset, or its first N rows written to a CSV), one model is trained (hidden
32,16 relu, seed 0) and quantized; then, on the same rows:
- baseline: `edgenn.evaluation.evaluate` of the float and the integer model (the text-only scoring the
  report also does, predictions included);
- report: `edgenn.report.build_report(MODEL.enn, DATA, --float MODEL.npz, --board esp32)`, everything
  but the board run (tests/e2e/test_report_board.py covers `--port`).
Ratio = report seconds / baseline seconds (best of 3 each); "cpu s" is the report's CPU time in this
process (the emulated estimate runs in a qemu child and is not in it), steadier than wall time on a
shared machine. The goal is seconds, not minutes, for a
1,000-row dataset: the time is almost all matplotlib drawing the figures.

Run standalone: `python -m bench.report` (writes nothing); `make bench` calls `run(results_dir)`.
"""

from __future__ import annotations

import pathlib
import tempfile
import time

import numpy as np

from edgenn import modelfile
from edgenn.data import load_dataset
from edgenn.evaluation import evaluate, load_model
from edgenn.nn import TrainConfig, train
from edgenn.quantize import quantize

CASES = [("iris", None), ("diabetes", None), ("digits", 1000), ("digits", None)]
REPEATS = 3
TARGET_SECONDS_1000_ROWS = 10.0


def _write_rows(name: str, n: int, path: pathlib.Path) -> str:
    ds = load_dataset(name)
    with open(path, "w") as fh:
        fh.write(",".join([*ds.feature_names, ds.label_column]) + "\n")
        for x, y in zip(ds.X[:n], ds.y[:n]):
            label = ds.labels[int(y)] if ds.task == "classify" else repr(float(y))
            fh.write(",".join(repr(float(v)) for v in x) + f",{label}\n")
    return str(path)


def _best(fn, repeats: int = REPEATS) -> tuple[float, float, object]:
    """Best wall time of `repeats` runs, its CPU time in this process (a shared machine's load inflates
    wall time, not CPU time), and its result."""
    best, best_cpu, best_out = float("inf"), 0.0, None
    for _ in range(repeats):
        started, cpu = time.perf_counter(), time.process_time()
        out = fn()
        seconds = time.perf_counter() - started
        if seconds < best:
            best, best_cpu, best_out = seconds, time.process_time() - cpu, out
    return best, best_cpu, best_out


def run(results_dir: pathlib.Path | None = None) -> dict:
    from edgenn.report import build_report

    rows_out = []
    with tempfile.TemporaryDirectory(prefix="edgenn-bench-report-") as tmp:
        tmp_path = pathlib.Path(tmp)
        for name, n in CASES:
            ds = load_dataset(name)
            fm = train(ds, TrainConfig(seed=0, folds=0, val_fraction=0.15))  # the report times, not CV
            npz, enn = tmp_path / f"{name}.npz", tmp_path / f"{name}.enn"
            fm.save(npz)
            modelfile.save(quantize(fm, ds.X)[0], enn)
            data = name if n is None else _write_rows(name, n, tmp_path / f"{name}{n}.csv")
            label = None if n is None else ds.label_column
            float_model, int_model = load_model(npz), load_model(enn)

            def baseline(data=data, label=label, float_model=float_model, int_model=int_model):
                return evaluate(float_model, data, label), evaluate(int_model, data, label)

            out = tmp_path / f"{name}{n or ''}.html"

            def report(data=data, label=label, enn=enn, npz=npz, out=out):
                return build_report(str(enn), data, out, float_model=str(npz), label=label, board="esp32")

            base_s, _, (scores, _) = _best(baseline)
            report_s, report_cpu, rep = _best(report)
            rows_out.append(
                {
                    "case": name if n is None else f"{name}[:{n}]",
                    "rows": int(scores["n"]),
                    "features": ds.n_features,
                    "baseline_s": base_s,
                    "report_s": report_s,
                    "report_cpu_s": report_cpu,
                    "ratio": report_s / base_s if base_s > 0 else None,
                    "page_s": rep.seconds.get("page"),
                    "bytes": out.stat().st_size,
                }
            )
    head = ("case", "rows", "feat", "evaluate s", "report s", "cpu s", "ratio", "drawing s", "KB")
    print("{:<14}{:>6}{:>6}{:>12}{:>10}{:>8}{:>8}{:>11}{:>7}".format(*head))
    for r in rows_out:
        print(
            f"{r['case']:<14}{r['rows']:>6}{r['features']:>6}{r['baseline_s']:>12.3f}{r['report_s']:>10.2f}"
            f"{r['report_cpu_s']:>8.2f}{r['ratio']:>7.0f}x{r['page_s']:>11.2f}{r['bytes'] // 1024:>7}"
        )
    thousand = next(r for r in rows_out if r["rows"] == 1000)
    ok = thousand["report_s"] < TARGET_SECONDS_1000_ROWS
    print(
        f"1,000 rows: {thousand['report_s']:.1f} s (target under {TARGET_SECONDS_1000_ROWS:.0f} s: "
        f"{'met' if ok else 'MISSED'})"
    )
    return {
        "cases": rows_out,
        "target_seconds_1000_rows": TARGET_SECONDS_1000_ROWS,
        "met": ok,
        "report_seconds_1000_rows": thousand["report_s"],
        "median_ratio": float(np.median([r["ratio"] for r in rows_out])),
    }


if __name__ == "__main__":
    run()
