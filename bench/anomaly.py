"""Anomaly benchmark (`make bench`, or `python -m bench.anomaly [SET...]`): edgenn's anomaly detector
against scikit-learn's on the anomaly suite (bench/anomaly_suite.py), float and integer, and the board.

Per set, everything is fitted on the train file (normal rows only) and scored on the test file (normal
and anomalous rows), ROC AUC with "anomalous" as the positive class:

- scikit-learn: `IsolationForest`, `OneClassSVM` and `LocalOutlierFactor(novelty=True)` with their
  defaults on standardized inputs (`StandardScaler` fitted on the train rows), the score being minus
  `score_samples`; the same inputs edgenn's network sees: the raw columns, or for the vibration set the
  front end's float features of each window (and, printed below the table, on the raw windows, where
  a stalled motor looks quieter than normal, not stranger). IsolationForest's mean over the seeds;
- edgenn float: `edgenn.anomaly.train_anomaly` with its defaults (what `edgenn train --task anomaly`
  runs), mean over seeds 0, 1, 2, and the worst seed;
- edgenn integer: the float model quantized as `edgenn quantize` does (`edgenn.qat.fine_tune`: plain
  quantization calibrated on the train rows, fine-tuned when that brings the integer scores closer to
  the float ones), its integer score computed by the golden model: exactly what the board computes;
- tuned: `edgenn.tune.tune_anomaly` (`tune --task anomaly --candidates 8 --board esp32`, seed 0) on the
  train file, which has no anomalies, so its yardstick is normal rows with shuffled features: the test
  AUC of the float model it picks;
- board: the integer models of seed 0 loaded by the device runtime in the MicroPython unix port,
  `net.score(row)` on every test row with each kernel (viper, portable), against the golden scores:
  the number of rows whose score differs (the goal is 0).

Goals (issue 17): edgenn integer mean AUC >= the best scikit-learn detector's mean AUC; the vibration
set >= 0.95 with the front end; integer AUC within 0.01 of float on every set; scores bit-exact.
"""

from __future__ import annotations

import json
import os
import pathlib
import subprocess
import tempfile
import time
import warnings
from dataclasses import dataclass, replace

import numpy as np

from bench.anomaly_suite import AnomalyTask, build
from bench.runtime import _tool, compile_runtime
from bench.suite import LABEL
from edgenn import anomaly, frontend, modelfile
from edgenn.data import parse_numbers, read_table
from edgenn.floatmodel import FloatModel
from edgenn.metrics import roc_auc
from edgenn.modelfile import QuantModel
from edgenn.qat import fine_tune
from edgenn.tune import tune_anomaly

SEEDS = (0, 1, 2)
DETECTORS = ("isolation_forest", "one_class_svm", "lof")
VIBRATION_FRONT_END = "spectral"  # the vibration set's front end (`--axes 3 --features spectral`)
EXTRA_FRONT_ENDS = ("stats",)  # also shown for the vibration set, outside the means
TUNE_CANDIDATES = 8  # tune --task anomaly --candidates 8 (seed 0) on every set
TUNE_BOARD = "esp32"
GOALS = {
    "integer_minus_best_sklearn_mean": 0.0,  # >= this
    "vibration_integer_auc": 0.95,  # >= this, with the front end
    "integer_float_gap_max": 0.01,  # |integer - float| AUC <= this on every set
    "board_mismatches": 0,
}
MP_SCRIPT = pathlib.Path(__file__).resolve().parent / "mp" / "bench_anomaly.py"


@dataclass
class Inputs:
    """One set read for the benchmark: raw rows (windows or features) and what the network sees."""

    name: str
    task: AnomalyTask
    front_end: str  # "raw" or the front end's kind
    X_train: np.ndarray  # raw rows: what the model (and the board) takes
    X_test: np.ndarray
    F_train: np.ndarray  # the float features the network sees (X itself without a front end)
    F_test: np.ndarray
    anomalous: np.ndarray  # bool per test row
    kinds: np.ndarray  # the test rows' labels
    columns: list[str]
    fe: frontend.FrontEnd | None


def read(task: AnomalyTask, front_end: str = "raw") -> Inputs:
    train, test = read_table(task.train), read_table(task.test)
    columns = [c for c in train.header if c != LABEL]
    X_train, X_test = parse_numbers(train, columns), parse_numbers(test, columns)
    kinds = np.array(test.column(LABEL))
    fe = frontend.make(front_end, task.axes, columns) if task.axes else None
    if fe is None:
        F_train, F_test = X_train, X_test
    else:
        F_train, F_test = frontend.features_float(fe, X_train), frontend.features_float(fe, X_test)
    name = task.name if not task.axes or front_end == VIBRATION_FRONT_END else f"{task.name} ({front_end})"
    return Inputs(
        name,
        task,
        front_end if task.axes else "raw",
        X_train,
        X_test,
        F_train,
        F_test,
        kinds != task.normal,
        kinds,
        columns,
        fe,
    )


def sklearn_scores(inputs: Inputs, seeds=SEEDS) -> dict[str, list[np.ndarray]]:
    """Anomaly scores (minus score_samples) of each scikit-learn detector on the test rows, defaults on
    standardized inputs: one array per seed for IsolationForest, one for the deterministic others."""
    from sklearn.ensemble import IsolationForest
    from sklearn.neighbors import LocalOutlierFactor
    from sklearn.preprocessing import StandardScaler
    from sklearn.svm import OneClassSVM

    scaler = StandardScaler().fit(inputs.F_train)
    a, b = scaler.transform(inputs.F_train), scaler.transform(inputs.F_test)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # LOF on tiny sets warns about n_neighbors
        return {
            "isolation_forest": [-IsolationForest(random_state=s).fit(a).score_samples(b) for s in seeds],
            "one_class_svm": [-OneClassSVM().fit(a).score_samples(b)],
            "lof": [-LocalOutlierFactor(novelty=True).fit(a).score_samples(b)],
        }


def sklearn_aucs(scores: dict[str, list[np.ndarray]], inputs: Inputs) -> dict[str, float]:
    return {d: float(np.mean([roc_auc(s, inputs.anomalous) for s in runs])) for d, runs in scores.items()}


def per_kind(scores: np.ndarray, inputs: Inputs) -> dict[str, float]:
    """AUC of each kind of anomaly alone against the normal rows."""
    kinds = sorted(set(inputs.kinds[inputs.anomalous]))
    return {
        str(k): roc_auc(scores[mask], inputs.anomalous[mask])
        for k in kinds
        for mask in [(inputs.kinds == k) | ~inputs.anomalous]
    }


def train_edgenn(inputs: Inputs, seed: int) -> FloatModel:
    """What `edgenn train --task anomaly` fits: the autoencoder on the front end's float features of
    the normal windows (the model keeps the front end and takes raw windows), or on the raw rows."""
    if inputs.fe is not None:
        return anomaly.train_anomaly_windows(inputs.X_train, inputs.fe, seed=seed)
    return anomaly.train_anomaly(inputs.X_train, seed=seed, feature_names=inputs.columns)


def bench_inputs(
    inputs: Inputs, seeds=SEEDS, tune_candidates: int = TUNE_CANDIDATES
) -> tuple[dict, QuantModel | None]:
    """The row of one set: scikit-learn, edgenn float and integer per seed, tune's pick; and seed 0's
    integer model."""
    row: dict = {
        "source": inputs.task.source,
        "front_end": inputs.front_end,
        "n_train": int(len(inputs.X_train)),
        "n_test_normal": int(np.sum(~inputs.anomalous)),
        "n_test_anomalous": int(np.sum(inputs.anomalous)),
        "n_features": int(inputs.F_train.shape[1]),
    }
    started = time.perf_counter()
    row["sklearn"] = sklearn_aucs(sklearn_scores(inputs, seeds), inputs)
    row["sklearn_seconds"] = time.perf_counter() - started
    if inputs.fe is not None:
        raw = replace(inputs, F_train=inputs.X_train, F_test=inputs.X_test)
        raw_scores = sklearn_scores(raw, seeds)
        row["sklearn_raw_windows"] = sklearn_aucs(raw_scores, raw)
        row["sklearn_raw_windows_per_kind"] = {d: per_kind(runs[0], raw) for d, runs in raw_scores.items()}
    per_seed = []
    first: QuantModel | None = None
    for seed in seeds:
        started = time.perf_counter()
        fm = train_edgenn(inputs, seed)
        seconds = time.perf_counter() - started
        tuned = fine_tune(fm, inputs.X_train, name=inputs.task.name, seed=seed)
        qm = tuned.model
        s_float = anomaly.float_scores(fm, inputs.X_test)
        s_int = anomaly.golden_scores(qm, inputs.X_test)
        per_seed.append(
            {
                "seed": seed,
                "float": roc_auc(s_float, inputs.anomalous),
                "integer": roc_auc(s_int, inputs.anomalous),
                "hidden": list(fm.meta["config"]["hidden"]),
                "epochs": int(fm.meta["epochs"]),
                "seconds": seconds,
                "qat_used": bool(tuned.used),
                # the flag at the stored threshold (a quantile of out-of-fold normal scores)
                "normal_flagged": float(np.mean(s_int[~inputs.anomalous] > qm.threshold)),
                "anomalous_flagged": float(np.mean(s_int[inputs.anomalous] > qm.threshold)),
                "per_kind": per_kind(s_int, inputs),
            }
        )
        if first is None:
            first = qm

    def mean(key: str) -> float:
        return float(np.mean([r[key] for r in per_seed]))

    row.update(
        {
            "float": mean("float"),
            "integer": mean("integer"),
            "worst_seed_integer": float(min(r["integer"] for r in per_seed)),
            "integer_float_gap": float(max(abs(r["integer"] - r["float"]) for r in per_seed)),
            "normal_flagged": mean("normal_flagged"),
            "anomalous_flagged": mean("anomalous_flagged"),
            "seconds": mean("seconds"),
            "qat_used": int(sum(r["qat_used"] for r in per_seed)),
            "seeds": per_seed,
        }
    )
    if tune_candidates:
        row["tune"] = bench_tune(inputs, tune_candidates)
    return row, first


def bench_tune(inputs: Inputs, candidates: int) -> dict:
    """`tune --task anomaly` on the train file (normal rows only, so its yardstick is normal rows with
    shuffled features), seed 0: the test AUC of its best float model, and what it picked."""
    started = time.perf_counter()
    front_ends = {inputs.front_end: inputs.fe} if inputs.fe is not None else None
    result = tune_anomaly(
        inputs.X_train, TUNE_BOARD, inputs.columns, front_ends=front_ends, max_candidates=candidates
    )
    b = result.best
    assert b is not None and result.model is not None
    return {
        "auc": roc_auc(anomaly.float_scores(result.model, inputs.X_test), inputs.anomalous),
        "best": b.as_dict(),
        "default_is_best": b.is_default,
        "candidates": len(result.candidates),
        "seconds": time.perf_counter() - started,
    }


def _value(v: float) -> str:
    """A CSV value as the board gets it: an integer reading as an int, anything else as a float."""
    return str(int(v)) if float(v).is_integer() else repr(float(v))


def board_scores(jobs: list[tuple[str, QuantModel, np.ndarray]]) -> dict[str, dict]:
    """`net.score` of every row on the device runtime in the MicroPython unix port, per kernel, against
    the golden scores: {name: {kernel: mismatching rows, "rows": n}}; {} when the runtime cannot."""
    out: dict[str, dict] = {}
    with tempfile.TemporaryDirectory(prefix="edgenn-bench-anomaly-") as tmp_name:
        tmp = pathlib.Path(tmp_name)
        compile_runtime(tmp / "x64", "x64")
        lines = []
        for k, (_name, qm, X) in enumerate(jobs):
            path, rows = tmp / f"m{k}.enn", tmp / f"m{k}.txt"
            modelfile.save(qm, path)
            rows.write_text("".join(",".join(_value(v) for v in x) + "\n" for x in X))
            lines.append(f"{path} {rows}\n")
        (tmp / "jobs.txt").write_text("".join(lines))
        proc = subprocess.run(
            [_tool("micropython"), "-X", "heapsize=8M", str(MP_SCRIPT), str(tmp / "jobs.txt")],
            capture_output=True,
            text=True,
            env=dict(os.environ, MICROPYPATH=str(tmp / "x64")),
            timeout=1200,
        )
        if proc.returncode:
            raise RuntimeError(f"MicroPython anomaly scores failed: {proc.stderr.strip()[-400:]}")
        results = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    for (name, qm, X), result in zip(jobs, results, strict=True):
        golden = anomaly.golden_scores(qm, X)
        entry: dict = {"rows": int(len(X))}
        for kernel, scores in result["scores"].items():
            entry[kernel] = int(np.sum(np.asarray(scores, dtype=np.int64) != golden))
        out[name] = entry
    return out


def goals(results: dict) -> dict:
    sets = results["datasets"]
    main = {k: s for k, s in sets.items() if not s.get("extra")}
    sklearn_means = {d: float(np.mean([s["sklearn"][d] for s in main.values()])) for d in DETECTORS}
    best = max(sklearn_means, key=sklearn_means.__getitem__)
    integer_mean = float(np.mean([s["integer"] for s in main.values()]))
    float_mean = float(np.mean([s["float"] for s in main.values()]))
    gap = float(max(s["integer_float_gap"] for s in sets.values()))
    board = results.get("board") or {}
    mismatches = sum(v for b in board.values() for k, v in b.items() if k != "rows") if board else None
    figures = {
        "sets": len(main),
        "sklearn_means": sklearn_means,
        "best_sklearn": best,
        "best_sklearn_mean": sklearn_means[best],
        "float_mean": float_mean,
        "integer_mean": integer_mean,
        "integer_minus_best_sklearn_mean": integer_mean - sklearn_means[best],
        "vibration_integer_auc": sets["vibration"]["integer"] if "vibration" in sets else None,
        "integer_float_gap_max": gap,
        "board_mismatches": mismatches,
        "board_rows": sum(b["rows"] for b in board.values()) if board else 0,
        "tuned_mean": float(np.mean([s["tune"]["auc"] for s in main.values()]))
        if all("tune" in s for s in main.values())
        else None,
    }
    met = {
        "integer_mean_at_least_best_sklearn": figures["integer_minus_best_sklearn_mean"]
        >= GOALS["integer_minus_best_sklearn_mean"],
        "vibration_at_least_0.95": figures["vibration_integer_auc"] is not None
        and figures["vibration_integer_auc"] >= GOALS["vibration_integer_auc"],
        "integer_within_0.01_of_float": gap <= GOALS["integer_float_gap_max"],
        "board_bit_exact": mismatches == GOALS["board_mismatches"],
    }
    return {"figures": figures, "met": met}


def _auc(v: float | None) -> str:
    return "n/a" if v is None else f"{v:.3f}"


def table_lines(results: dict) -> list[str]:
    """The per-set table as Markdown (printed by `make bench`, pasted into docs/anomaly-bench.md)."""
    header = (
        "set",
        "train",
        "test n/a",
        "IForest",
        "OC-SVM",
        "LOF",
        "float",
        "integer",
        "worst seed",
        "|int-float|",
        "flagged n/a",
        "board",
        "tuned",
    )
    board = results.get("board") or {}
    rows = [header]
    for name, s in results["datasets"].items():
        b = board.get(name)
        on_board = "-" if b is None else f"{sum(v for k, v in b.items() if k != 'rows')}/{b['rows']}"
        rows.append(
            (
                name,
                str(s["n_train"]),
                f"{s['n_test_normal']}/{s['n_test_anomalous']}",
                *(_auc(s["sklearn"][d]) for d in DETECTORS),
                _auc(s["float"]),
                _auc(s["integer"]),
                _auc(s["worst_seed_integer"]),
                f"{s['integer_float_gap']:.3f}",
                f"{100 * s['normal_flagged']:.0f}%/{100 * s['anomalous_flagged']:.0f}%",
                on_board,
                _auc(s["tune"]["auc"]) if "tune" in s else "-",
            )
        )
    f = results["goals"]["figures"]
    means = ["mean", "", "", *(_auc(f["sklearn_means"][d]) for d in DETECTORS)]
    tuned = _auc(f["tuned_mean"]) if f.get("tuned_mean") is not None else ""
    rows.append((*means, _auc(f["float_mean"]), _auc(f["integer_mean"]), "", "", "", "", tuned))
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    lines = ["| " + " | ".join(c.ljust(w) for c, w in zip(r, widths)) + " |" for r in rows]
    lines.insert(1, "|" + "|".join("-" * (w + 2) for w in widths) + "|")
    return lines


def print_table(results: dict) -> None:
    print(
        f"Anomaly detection: test-file ROC AUC; edgenn = mean of seeds {', '.join(map(str, SEEDS))} "
        "(train_anomaly defaults); scikit-learn defaults on standardized inputs (the vibration set: the "
        "front end's features); rows marked (stats) are outside the means; flagged = share of normal / "
        "anomalous test rows over the integer threshold; board = rows whose net.score differs from golden "
        f"(viper + portable kernels, unix port); tuned = float AUC of `tune --task anomaly --candidates "
        f"{TUNE_CANDIDATES}` on the train file (seed 0)"
    )
    print("\n".join(table_lines(results)))
    vib = results["datasets"].get("vibration")
    if vib:
        kinds = vib["seeds"][0]["per_kind"]
        print(
            "vibration per fault (integer AUC, seed 0): "
            + ", ".join(f"{k} {v:.3f}" for k, v in kinds.items())
        )
        for d, per in vib["sklearn_raw_windows_per_kind"].items():
            print(
                f"  {d} on the raw windows (no front end): {vib['sklearn_raw_windows'][d]:.3f}; per fault "
                + ", ".join(f"{k} {v:.3f}" for k, v in per.items())
            )
    f, met = results["goals"]["figures"], results["goals"]["met"]
    print(
        f"edgenn integer mean AUC {f['integer_mean']:.3f} vs best scikit-learn ({f['best_sklearn']}) "
        f"{f['best_sklearn_mean']:.3f}: {f['integer_minus_best_sklearn_mean']:+.3f}; vibration "
        f"{_auc(f['vibration_integer_auc'])}; largest |integer - float| {f['integer_float_gap_max']:.3f}; "
        f"board: {f['board_mismatches']} of {f['board_rows']} scores differ from golden"
    )
    missed = [k for k, ok in met.items() if not ok]
    print("goals: " + ("all met" if not missed else "MISSED " + ", ".join(missed)))


def run(results_dir: pathlib.Path | None = None, names: list[str] | None = None) -> dict:
    data_dir = (results_dir / "anomaly_data") if results_dir else pathlib.Path(tempfile.mkdtemp())
    tasks = build(data_dir, names)
    results: dict = {"seeds": list(SEEDS), "goal_targets": GOALS, "datasets": {}}
    jobs = []
    for task in tasks:
        variants = [VIBRATION_FRONT_END, *EXTRA_FRONT_ENDS] if task.axes else ["raw"]
        for k, front_end in enumerate(variants):
            started = time.perf_counter()
            inputs = read(task, front_end)
            row, qm = bench_inputs(inputs)
            row["extra"] = k > 0
            results["datasets"][inputs.name] = row
            if qm is not None and k == 0:
                jobs.append((inputs.name, qm, inputs.X_test))
            print(f"  {inputs.name}: {time.perf_counter() - started:.1f} s", flush=True)
    try:
        results["board"] = board_scores(jobs)
    except (RuntimeError, subprocess.SubprocessError) as exc:  # the figures above still stand
        print(f"  board scores not measured: {exc}")
        results["board"] = {}
    results["goals"] = goals(results)
    print_table(results)
    return results


if __name__ == "__main__":
    import sys

    run(names=sys.argv[1:] or None)
