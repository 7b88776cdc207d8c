"""Sensor front end benchmark (`make bench`, or `python -m bench.frontend`).

Accuracy: the gesture set of bench/gestures.py (3 axes x 32 samples, 5 classes, random orientation,
amplitude, speed, noise; 400 windows per class), seeds 0, 1, 2, the same stratified split for every
model. Our MLP (hidden 32,16, ReLU, `edgenn.nn` defaults) on raw windows, on `stats` and on `spectral`
features, float (the .npz model) and integer (quantized, calibrated on the training rows, run by the
golden model on the test rows, i.e. what the board computes); scikit-learn's MLPClassifier (32,16,
standardized raw windows, max_iter 500) beside them. Goal: spectral integer >= 95% and >= 25 points
above raw integer.

Cost: microseconds per window of the integer front end (`net.features`) for 3x32 and 3x128 windows
against the network of a 96-32-16-5 model (`forward_q`), both kernels, in the MicroPython unix port
(x86-64 timings, not ESP32 timings); and the ESP32 proxy: xtensa instructions of the viper kernels,
from the disassembled .mpy (per loop pass, times the passes a window needs).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

from bench import gestures
from bench.runtime import FIRMWARE, LOOP_COST, _tool, compile_runtime
from edgenn import frontend, golden, modelfile, zoo
from edgenn.data import Dataset, fit_scaling, stratified_split
from edgenn.nn import TrainConfig, accuracy, train, train_windows
from edgenn.quantize import quantize

SEEDS = (0, 1, 2)
PER_CLASS = 400
HIDDEN = (32, 16)
KINDS = ("raw", "stats", "spectral")
GOAL_SPECTRAL = 0.95
GOAL_POINTS_ABOVE_RAW = 25.0
MP_SCRIPT = Path(__file__).resolve().parent / "mp" / "bench_frontend.py"


def _dataset(seed: int, window: int = gestures.WINDOW, per_class: int = PER_CLASS) -> Dataset:
    X, y = gestures.generate(per_class, seed=seed, window=window)
    cols = gestures.columns(window)
    return Dataset(
        "gestures", "bench", X.astype(np.float64), y, cols, "label", "classify", list(gestures.LABELS)
    )


def _fit(ds: Dataset, kind: str, config: TrainConfig):
    if kind == "raw":
        return train(ds, config)
    return train_windows(ds, frontend.make(kind, len(gestures.AXES), ds.feature_names), config)


def accuracy_table() -> dict:
    results: dict = {k: {"float": [], "integer": [], "agreement": []} for k in KINDS}
    results["sklearn_raw"] = {"float": []}
    for seed in SEEDS:
        ds = _dataset(seed)
        config = TrainConfig(hidden=HIDDEN, seed=seed)
        split = stratified_split(ds, config.test_fraction, config.val_fraction, seed=seed)
        train_rows = np.concatenate([split.train, split.val])
        X_test, y_test = ds.X[split.test], ds.y[split.test]
        for kind in KINDS:
            fm = _fit(ds, kind, config)
            qm, _ = quantize(fm, ds.X[split.train])
            p_float, p_int = fm.predict(X_test), golden.predict(qm, X_test)
            results[kind]["float"].append(accuracy(p_float, y_test))
            results[kind]["integer"].append(accuracy(p_int, y_test))
            results[kind]["agreement"].append(accuracy(p_int, p_float))
        from sklearn.neural_network import MLPClassifier

        mean, std = fit_scaling(ds.X[train_rows])
        clf = MLPClassifier(HIDDEN, max_iter=500, random_state=seed)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # ConvergenceWarning
            clf.fit((ds.X[train_rows] - mean) / std, ds.y[train_rows])
        results["sklearn_raw"]["float"].append(accuracy(clf.predict((X_test - mean) / std), y_test))
    return {name: {k: float(np.mean(v)) for k, v in r.items()} for name, r in results.items()}


def _cost_models(directory: Path) -> list[dict]:
    """Spectral and stats front ends on 3x32 and 3x128 windows (small trained networks), and the
    96-32-16-5 network on raw windows."""
    jobs = []
    for window in (32, 128):
        ds = _dataset(0, window=window, per_class=60)
        row = directory / f"row{window}.txt"
        row.write_text(",".join(str(int(v)) for v in ds.X[1]) + "\n")
        for kind in ("stats", "spectral"):
            fm = _fit(ds, kind, TrainConfig(hidden=(16,), epochs=20))
            path = directory / f"{kind}_{window}.enn"
            modelfile.save(quantize(fm, ds.X)[0], path)
            jobs.append(
                {"name": f"{kind} 3x{window}", "path": path, "row": row, "window": window, "kind": kind}
            )
    rng = np.random.default_rng(96)
    net = zoo.random_model(rng, 96, [32, 16], ["relu", "relu"], 5, "classify")
    path = directory / "net_96_32_16_5.enn"
    modelfile.save(net, path)
    jobs.append({"name": "network 96-32-16-5", "path": path, "row": directory / "row32.txt", "window": 0})
    return jobs


def _xtensa_loops() -> dict | None:
    if not LOOP_COST.exists():
        return None
    proc = subprocess.run(
        [
            sys.executable,
            str(LOOP_COST),
            str(FIRMWARE / "edgenn_viper.py"),
            "--mpy-cross",
            _tool("mpy-cross"),
            "--json",
        ],
        capture_output=True,
        text=True,
    )
    if proc.returncode:
        return None
    return {f["function"]: f["loops"] for f in json.loads(proc.stdout)["functions"]}


def xtensa_estimate(loops: dict, axes: int, window: int, kind: str, n_bands: int = 8) -> int | None:
    """Instructions per window from the viper loops' per-pass counts (loop bodies only, the way the
    network's figure counts its MAC loop alone: per-series set-up and calls are left out). fe_series'
    innermost loops in source order: pass 1 (per sample), zero padding, bit length, pass 2 (per
    sample), isqrt x2, FFT stage 1 (per 2 points), stage 2 (per 4), the butterfly, band sums (per
    bin), isqrt x2; an isqrt of a value below 2**26 takes ~13 passes."""
    s = [lp["insns"] for lp in loops.get("fe_series", [])]
    if len(s) != 12 or "fe_load" not in loops:
        return None  # the kernel changed shape: the mapping above no longer holds
    per_series = (s[0] + s[3]) * window + 12 * s[2] + 13 * s[5]
    total = axes * (loops["fe_load"][0]["insns"] * window + per_series) + (per_series if axes > 1 else 0)
    if kind == "spectral":
        p = 1 << (window - 1).bit_length()
        general = (p // 2) * (p.bit_length() - 3)  # butterflies after stages 1 and 2
        fft = s[1] * (p - window) + s[6] * p // 2 + s[7] * p // 4 + s[8] * general
        total += axes * (fft + s[9] * (p // 2) + n_bands * 13 * s[11])
    return int(total)


def cost_table() -> dict:
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        jobs = _cost_models(tmp)
        compile_runtime(tmp / "x64", "x64")
        job_file = tmp / "job.txt"
        job_file.write_text("".join(f"{j['path']} {j['row']}\n" for j in jobs))
        proc = subprocess.run(
            [_tool("micropython"), "-X", "heapsize=4M", str(MP_SCRIPT), str(job_file)],
            capture_output=True,
            text=True,
            env=dict(os.environ, MICROPYPATH=str(tmp / "x64")),
            timeout=600,
        )
        if proc.returncode:
            raise RuntimeError(f"MicroPython front end benchmark failed: {proc.stderr.strip()}")
        timings = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    loops = _xtensa_loops()
    rows = []
    for job, t in zip(jobs, timings, strict=True):
        row = {"name": job["name"]}
        key = "frontend" if job["window"] else "network"
        for kernel in ("viper", "portable"):
            row[f"{kernel}_us"] = t[f"{kernel}_{key}_us"]  # the front end alone, or the network alone
            row[f"{kernel}_predict_us"] = t[f"{kernel}_predict_us"]  # predict() on a raw window
            if job["window"]:
                row[f"{kernel}_features_us"] = t[f"{kernel}_features_us"]
        if loops and job["window"]:
            row["xtensa_insns"] = xtensa_estimate(loops, 3, job["window"], job["kind"])
        elif loops:
            main = max(loops["layer"], key=lambda lp: lp["mul"])
            row["xtensa_insns"] = int(main["insns"] / main["mul"] * (96 * 32 + 32 * 16 + 16 * 5))
        rows.append(row)
    return {"rows": rows}


def run(results_dir: Path | None = None) -> dict:
    started = time.perf_counter()
    acc = accuracy_table()
    cost = cost_table()
    raw_int, spectral_int = acc["raw"]["integer"], acc["spectral"]["integer"]
    result = {
        "data": f"bench/gestures.py: 3 axes x 32 samples, {len(gestures.LABELS)} classes, "
        f"{PER_CLASS} per class",
        "seeds": list(SEEDS),
        "accuracy": acc,
        "cost": cost,
        "goal": {
            "spectral_integer": spectral_int,
            "points_above_raw": 100 * (spectral_int - raw_int),
            "met": spectral_int >= GOAL_SPECTRAL and 100 * (spectral_int - raw_int) >= GOAL_POINTS_ABOVE_RAW,
        },
        "seconds": round(time.perf_counter() - started, 1),
    }
    print_tables(result)
    return result


def print_tables(result: dict) -> None:
    print(f"{result['data']}; mean test accuracy over seeds {result['seeds']}")
    print(f"{'features':>12} {'float':>8} {'integer':>8} {'int=float':>10}")
    for kind in KINDS:
        r = result["accuracy"][kind]
        print(
            f"{kind:>12} {100 * r['float']:>7.2f}% {100 * r['integer']:>7.2f}% {100 * r['agreement']:>9.2f}%"
        )
    print(f"{'sklearn raw':>12} {100 * result['accuracy']['sklearn_raw']['float']:>7.2f}%")
    g = result["goal"]
    print(
        f"goal: spectral integer {100 * g['spectral_integer']:.2f}% (>= 95%), "
        f"{g['points_above_raw']:.1f} points above raw integer (>= 25): {'met' if g['met'] else 'NOT met'}"
    )
    print()
    print("cost per window: MicroPython unix port, x86-64 (not ESP32 timings); xtensa: viper loop bodies")
    print("  front end = net.features without the copy of the readings; network = forward_q on codes;")
    print("  predict = net.predict(raw window): copy + front end (or input scaling) + network")
    head = f"{'viper us':>9} {'portable us':>11} {'predict viper':>13} {'predict port':>12} {'xtensa':>8}"
    print(f"{'':>20} {head}")
    for r in result["cost"]["rows"]:
        xt = r.get("xtensa_insns")
        print(
            f"{r['name']:>20} {r['viper_us']:>9.1f} {r['portable_us']:>11.1f} {r['viper_predict_us']:>13.1f} "
            f"{r['portable_predict_us']:>12.1f} {xt if xt is not None else 'n/a':>8}"
        )


if __name__ == "__main__":
    run(Path("bench/results"))
