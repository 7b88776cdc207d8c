"""Training benchmark: our NumPy MLP against scikit-learn, and the integer model against the float one.

For every bundled dataset and seeds 0, 1, 2: the same stratified split and the same input scaling
(fitted on the training rows) for both trainers; hidden layers 32,16 with ReLU. scikit-learn's
MLPClassifier / MLPRegressor run with their defaults (adam, lr 1e-3, batch min(200, n), max_iter 200,
no early stopping) on the training rows; ours runs `edgenn.nn.train` with its defaults (which hold the
validation rows out for early stopping). Integer = `edgenn.quantize.quantize` calibrated on the training
rows, run by the golden model `edgenn.golden.predict`. Accuracy/RMSE are on the test rows; "agreement"
is the fraction of test rows where the integer argmax equals the float argmax. Train-time ratio =
our fit time / scikit-learn's fit time (summed over the seeds; < 1 means we are faster).

Run standalone: `python -m bench.training` (writes nothing); `make bench` calls `run(results_dir)`.
"""

from __future__ import annotations

import pathlib
import time
import warnings

import numpy as np

from edgenn.data import fit_scaling, list_datasets, load_dataset, stratified_split
from edgenn.nn import TrainConfig, accuracy, rmse, train

SEEDS = (0, 1, 2)
HIDDEN = (32, 16)
TARGETS = {
    "float_vs_sklearn_points": 1.5,  # float accuracy at most this many points below scikit-learn
    "int_vs_float_points": 0.5,  # integer accuracy at most this many points below float
    "agreement": 0.99,
    "int_rmse_ratio": 1.02,
    "time_ratio": 1.0,
}


def _integer_tools():
    """(quantize, golden.predict) if the integer side is importable, else None (reported as n/a)."""
    try:
        from edgenn import golden
        from edgenn.quantize import quantize
    except ImportError:
        return None
    return quantize, golden.predict


def _sklearn_fit(task: str, seed: int, x: np.ndarray, y: np.ndarray):
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.neural_network import MLPClassifier, MLPRegressor

    estimator = (MLPClassifier if task == "classify" else MLPRegressor)(
        hidden_layer_sizes=HIDDEN, random_state=seed
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        started = time.perf_counter()
        estimator.fit(x, y)
        return estimator, time.perf_counter() - started


def bench_dataset(name: str, seeds=SEEDS) -> dict:
    ds = load_dataset(name)
    tools = _integer_tools()
    per_seed = []
    for seed in seeds:
        split = stratified_split(ds, seed=seed)
        mean, std = fit_scaling(ds.X[split.train])
        x_train, x_test = (ds.X[split.train] - mean) / std, (ds.X[split.test] - mean) / std
        y_train, y_test = ds.y[split.train], ds.y[split.test]
        row: dict = {"seed": seed}
        if ds.task == "classify":
            sk, row["sklearn_seconds"] = _sklearn_fit(ds.task, seed, x_train, y_train)
            row["sklearn"] = accuracy(sk.predict(x_test), y_test)
        else:  # standardized targets for scikit-learn too, as ours
            t_mean, t_std = y_train.mean(), y_train.std()
            sk, row["sklearn_seconds"] = _sklearn_fit(ds.task, seed, x_train, (y_train - t_mean) / t_std)
            row["sklearn"] = rmse(t_mean + t_std * sk.predict(x_test), y_test)
        model = train(ds, TrainConfig(hidden=HIDDEN, activation="relu", seed=seed))
        row["seconds"] = model.meta["train_seconds"]
        row["epochs"] = model.meta["epochs_run"]
        float_pred = model.predict(ds.X[split.test])
        row["float"] = accuracy(float_pred, y_test) if ds.task == "classify" else rmse(float_pred, y_test)
        if tools is not None:
            quantize, golden_predict = tools
            quant, _warnings = quantize(model, ds.X[split.train], name=name)
            int_pred = golden_predict(quant, ds.X[split.test])
            if ds.task == "classify":
                row["integer"] = accuracy(int_pred, y_test)
                row["agreement"] = float(np.mean(int_pred == float_pred))
                row["agreement_all_rows"] = float(np.mean(golden_predict(quant, ds.X) == model.predict(ds.X)))
            else:
                row["integer"] = rmse(int_pred, y_test)
        per_seed.append(row)

    def mean_of(key: str) -> float | None:
        values = [r[key] for r in per_seed if key in r]
        return float(np.mean(values)) if values else None

    summary = {
        "task": ds.task,
        "metric": "accuracy" if ds.task == "classify" else "rmse",
        "n_test": int(len(stratified_split(ds, seed=seeds[0]).test)),
        "sklearn": mean_of("sklearn"),
        "float": mean_of("float"),
        "integer": mean_of("integer"),
        "agreement": mean_of("agreement"),
        "agreement_all_rows": mean_of("agreement_all_rows"),
        "sklearn_seconds": float(sum(r["sklearn_seconds"] for r in per_seed)),
        "seconds": float(sum(r["seconds"] for r in per_seed)),
        "seeds": per_seed,
    }
    summary["time_ratio"] = summary["seconds"] / summary["sklearn_seconds"]
    summary["checks"] = _checks(summary)
    return summary


def _checks(s: dict) -> dict:
    checks = {"time": s["time_ratio"] <= TARGETS["time_ratio"]}
    if s["task"] == "classify":
        checks["float_vs_sklearn"] = 100 * (s["sklearn"] - s["float"]) <= TARGETS["float_vs_sklearn_points"]
        if s["integer"] is not None:
            checks["int_vs_float"] = 100 * (s["float"] - s["integer"]) <= TARGETS["int_vs_float_points"]
            checks["agreement"] = s["agreement"] >= TARGETS["agreement"]
    elif s["integer"] is not None:
        checks["int_rmse"] = s["integer"] <= TARGETS["int_rmse_ratio"] * s["float"]
    return checks


def _fmt(value: float | None, metric: str) -> str:
    if value is None:
        return "n/a"
    return f"{100 * value:.2f}%" if metric == "accuracy" else f"{value:.2f}"


def print_table(results: dict) -> None:
    header = ("dataset", "sklearn", "float", "integer", "agreement", "train-time ratio", "targets")
    rows = [header]
    for name, s in results["datasets"].items():
        m = s["metric"]
        label = name if m == "accuracy" else f"{name} (RMSE)"
        agreement = (
            _fmt(s["agreement"], "accuracy")
            if m == "accuracy"
            else (f"int/float {s['integer'] / s['float']:.4f}" if s["integer"] is not None else "n/a")
        )
        failed = [k for k, ok in s["checks"].items() if not ok]
        rows.append(
            (
                label,
                _fmt(s["sklearn"], m),
                _fmt(s["float"], m),
                _fmt(s["integer"], m),
                agreement,
                f"{s['time_ratio']:.2f} ({s['seconds']:.2f}s / {s['sklearn_seconds']:.2f}s)",
                "ok" if not failed else "MISSED " + ",".join(failed),
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    lines = ["| " + " | ".join(c.ljust(w) for c, w in zip(r, widths)) + " |" for r in rows]
    lines.insert(1, "|" + "|".join("-" * (w + 2) for w in widths) + "|")
    print(
        f"Training: hidden {','.join(map(str, HIDDEN))} relu, mean of seeds {', '.join(map(str, SEEDS))}; "
        "test rows of the same stratified splits; ratio = ours / scikit-learn fit time"
    )
    print("\n".join(lines))
    if results["integer_missing"]:
        print("integer columns n/a: edgenn.quantize is not available")


def run(results_dir: pathlib.Path | None = None) -> dict:
    names = [d["name"] for d in sorted(list_datasets(), key=lambda d: (d["task"] != "classify", d["name"]))]
    results = {
        "seeds": list(SEEDS),
        "hidden": list(HIDDEN),
        "targets": TARGETS,
        "integer_missing": _integer_tools() is None,
        "datasets": {name: bench_dataset(name) for name in names},
    }
    results["all_targets_met"] = all(all(s["checks"].values()) for s in results["datasets"].values())
    print_table(results)
    return results


if __name__ == "__main__":
    run()
