"""Sensor front end benchmark (`make bench`, or `python -m bench.frontend`).

Accuracy: the gesture set of bench/gestures.py (3 axes x 32 samples, 5 classes, random orientation,
amplitude, speed, start, noise; 400 windows per class), seeds 0, 1, 2; 20% of the rows held out
(stratified, seeded), the same for every model. Our MLP (hidden 32,16, ReLU, `edgenn.nn` defaults but
3-fold cross-validation) on raw windows, on `stats` and on `spectral` features, float (the .npz model)
and integer (quantized, calibrated on the training rows, run by the golden model on the test rows, i.e.
what the board computes); scikit-learn's MLPClassifier (32,16, standardized raw windows, max_iter 500)
beside them. Goal: spectral integer >= 95% and >= 25 points
above raw integer.

Cost: microseconds per window of the integer front end (`net.features`) for 3x32 and 3x128 windows
against the network of a 96-32-16-5 model (`forward_q`), both kernels, in the MicroPython unix port
(x86-64 timings, not ESP32 timings); and on the ESP32 (xtensawin) and ESP32-C3 (rv32imc): the front
end's viper machine code run in the emulator (`edgenn.machinecode.frontend`, bit-exact with golden),
instructions counted exactly and time estimated by `edgenn estimate`'s cycle model, beside the
network's count for every registered kernel.
"""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

from bench import gestures
from bench.runtime import _tool, compile_runtime
from edgenn import frontend, golden, modelfile, zoo
from edgenn.data import Dataset, fit_scaling, stratified_split
from edgenn.errors import UserError
from edgenn.machinecode import KERNELS, MachineCodeError
from edgenn.machinecode.estimate import CORES, estimate
from edgenn.machinecode.frontend import estimate_frontend
from edgenn.nn import TrainConfig, accuracy, train, train_windows
from edgenn.quantize import quantize

SEEDS = (0, 1, 2)
PER_CLASS = 400
HIDDEN = (32, 16)
TEST_FRACTION = 0.2  # stratified, seeded: every model is scored on the same held-out rows
FOLDS = 3  # edgenn train's cross-validation picks the epochs (3 folds, not the CLI's 5: bench time)
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
        split = stratified_split(ds, TEST_FRACTION, 0.0, seed=seed)
        train_ds = ds.subset(split.train)
        X_test, y_test = ds.X[split.test], ds.y[split.test]
        config = TrainConfig(hidden=HIDDEN, seed=seed, folds=FOLDS)
        for kind in KINDS:
            fm = _fit(train_ds, kind, config)
            qm, _ = quantize(fm, train_ds.X)
            p_float, p_int = fm.predict(X_test), golden.predict(qm, X_test)
            results[kind]["float"].append(accuracy(p_float, y_test))
            results[kind]["integer"].append(accuracy(p_int, y_test))
            results[kind]["agreement"].append(accuracy(p_int, p_float))
        from sklearn.neural_network import MLPClassifier

        mean, std = fit_scaling(train_ds.X)
        clf = MLPClassifier(HIDDEN, max_iter=500, random_state=seed)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # ConvergenceWarning
            clf.fit((train_ds.X - mean) / std, train_ds.y)
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


def machine_code(jobs: list[dict]) -> dict:
    """Per board: the front end's instructions and estimated us per window (its viper machine code,
    bit-exact with golden, in qemu-xtensa / unicorn) and the 96-32-16-5 network's per kernel."""
    out = {}
    for board, arch in (("esp32", "xtensawin"), ("esp32c3", "rv32imc")):
        core = CORES[board]
        rows = {}
        try:
            for job in jobs:
                if job["window"]:
                    fe = modelfile.load(job["path"]).frontend
                    rows[job["name"]] = estimate_frontend(fe, arch, core.cycles, core.mhz)
                else:
                    net = modelfile.load(job["path"])
                    for kernel in KERNELS:
                        try:
                            r = estimate(net, board, kernel)
                        except (MachineCodeError, UserError):
                            continue  # a kernel without this arch
                        rows[f"{job['name']} ({kernel})"] = {"instructions": r["instructions"], "us": r["us"]}
        except (MachineCodeError, UserError) as exc:
            rows = {"error": str(exc)}
        out[board] = rows
    return out


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
        counted = machine_code(jobs)
    rows = []
    for job, t in zip(jobs, timings, strict=True):
        row = {"name": job["name"]}
        key = "frontend" if job["window"] else "network"
        for kernel in ("viper", "portable"):
            row[f"{kernel}_us"] = t[f"{kernel}_{key}_us"]  # the front end alone, or the network alone
            row[f"{kernel}_predict_us"] = t[f"{kernel}_predict_us"]  # predict() on a raw window
            if job["window"]:
                row[f"{kernel}_features_us"] = t[f"{kernel}_features_us"]
        rows.append(row)
    return {"rows": rows, "machine_code": counted}


def cost_goal(machine_code: dict) -> dict:
    """Issue 11's speed goal per board: the spectral 3x32 front end costs fewer instructions than the
    96-32-16-5 network with the viper kernel."""
    out = {}
    for board, rows in machine_code.items():
        fe, net = rows.get("spectral 3x32"), rows.get("network 96-32-16-5 (viper)")
        if fe and net:
            ratio = round(fe["instructions"] / net["instructions"], 3)
            out[board] = {"frontend": fe["instructions"], "network": net["instructions"], "ratio": ratio}
    return out


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
        "cost_goal": cost_goal(cost["machine_code"]),
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
    print("cost per window, MicroPython unix port (x86-64 time, not ESP32 time; a shared machine):")
    print("  front end = net.features without copying the readings in; network = forward_q on codes;")
    print("  predict = net.predict(raw window): copy + front end (or input scaling) + network")
    head = f"{'viper us':>9} {'portable us':>11} {'predict viper':>13} {'predict port':>12}"
    print(f"{'':>20} {head}")
    for r in result["cost"]["rows"]:
        print(
            f"{r['name']:>20} {r['viper_us']:>9.1f} {r['portable_us']:>11.1f} {r['viper_predict_us']:>13.1f} "
            f"{r['portable_predict_us']:>12.1f}"
        )
    print()
    print("the board's own machine code (front end: viper; counted exactly, us from the cycle model):")
    for board, rows in result["cost"]["machine_code"].items():
        if "error" in rows:
            print(f"  {board}: unavailable ({rows['error']})")
            continue
        for name, r in rows.items():
            print(f"  {board:>8} {name:>28} {r['instructions']:>9} instructions {r['us']:>8.1f} us")
    goal = result["cost_goal"]
    if goal:
        parts = [f"{b} {g['frontend']} vs {g['network']} ({g['ratio']:.2f}x)" for b, g in goal.items()]
        met = all(g["ratio"] < 1 for g in goal.values())
        verdict = "met" if met else "NOT met"
        print(f"goal: spectral 3x32 below the 96-32-16-5 network (viper): {', '.join(parts)}: {verdict}")


if __name__ == "__main__":
    run(Path("bench/results"))
