"""`edgenn tune`: the same leaderboard on a quiet and a busy machine, and the front end search on a
6-axis motion set (issue 19, Build 2).

1. `tune iris --board esp32` twice, with the defaults: once on a quiet machine, once with two CPU hogs
   running beside it. The leaderboards (everything but the per-candidate seconds) must be identical.
2. A 6-axis motion set: two 3-axis accelerometers (bench/gestures.py windows, 32 samples, 5 gestures;
   the second sensor's windows from another seed, the same gestures), 30 windows per class to tune on and
   40 per class never seen. `tune DATA` (the raw values) against `tune DATA --axes 6` (which also tries
   the stats and spectral front ends); both best models are scored on the unseen windows.

`python -m bench.tune` prints the tables; `python -m bench.run tune` also writes bench/results/tune.json.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from bench.gestures import LABELS, generate

AXES = 6
WINDOW = 32


def _edgenn(*args: str) -> subprocess.CompletedProcess:
    proc = subprocess.run([sys.executable, "-m", "edgenn.cli", *args], capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"edgenn {' '.join(args)}: {proc.stderr.strip()}")
    return proc


def _tune(*args: str) -> tuple[dict, float]:
    t0 = time.perf_counter()
    result = json.loads(_edgenn("tune", *args, "--json").stdout)
    return result, time.perf_counter() - t0


def _leaderboard(result: dict) -> list[dict]:
    return [{k: v for k, v in c.items() if k != "seconds"} for c in result["leaderboard"]]


def _shape(c: dict) -> str:
    return f"{','.join(map(str, c['hidden']))} {c['activation']}"


def reproducibility(directory: Path) -> dict:
    out = str(directory / "iris_best.npz")
    quiet, quiet_s = _tune("iris", "--board", "esp32", "-o", out)
    hogs = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(2)]
    try:
        busy, busy_s = _tune("iris", "--board", "esp32", "-o", out)
    finally:
        for hog in hogs:
            hog.kill()
            hog.wait()
    runs = []
    for name, result, seconds in (("quiet", quiet, quiet_s), ("2 CPU hogs", busy, busy_s)):
        best = result["best"]
        runs.append(
            {
                "run": name,
                "candidates": result["candidates"],
                "seconds": round(seconds, 1),
                "best": _shape(best) + f" wd {best['weight_decay']:g}",
                "cv_accuracy": best["cv_mean"],
            }
        )
    return {"runs": runs, "identical_leaderboards": _leaderboard(quiet) == _leaderboard(busy)}


def _motion_csv(path: Path, n_per_class: int, seed: int) -> None:
    """Two 3-axis sensors side by side: axis-major windows a0..a31, b0.., ..., f0..f31 (6 axes)."""
    first, y = generate(n_per_class, seed)
    second, y2 = generate(n_per_class, seed + 1000)
    assert np.array_equal(y, y2)  # generate interleaves the classes in the same order for every seed
    X = np.hstack([first, second])
    names = [f"{axis}{t}" for axis in "abcdef" for t in range(WINDOW)]
    lines = [",".join([*names, "label"])]
    lines += [",".join([*map(str, row.tolist()), LABELS[k]]) for row, k in zip(X, y)]
    path.write_text("\n".join(lines) + "\n")


def _test_accuracy(model: Path, test: Path) -> float:
    return json.loads(_edgenn("evaluate", str(model), str(test), "--label", "label", "--json").stdout)[
        "accuracy"
    ]


def front_end_search(directory: Path) -> dict:
    train, test = directory / "motion6_train.csv", directory / "motion6_test.csv"
    _motion_csv(train, 30, seed=11)
    _motion_csv(test, 40, seed=12)
    rows = []
    for name, extra in (("tune DATA (raw values)", []), (f"tune DATA --axes {AXES}", ["--axes", str(AXES)])):
        out = directory / f"motion6_{len(rows)}.npz"
        result, seconds = _tune(str(train), "--label", "label", "--board", "esp32", "-o", str(out), *extra)
        best = result["best"]
        rows.append(
            {
                "command": name,
                "searched": "/".join(result["features_searched"]),
                "best": f"{best['features']} {_shape(best)}",
                "cv_accuracy": best["cv_mean"],
                "test_accuracy": _test_accuracy(out, test),
                "bytes": best["bytes"],
                "seconds": round(seconds, 1),
            }
        )
    return {"train_rows": 150, "test_rows": 200, "axes": AXES, "window": WINDOW, "rows": rows}


def run(results: Path | None = None) -> dict:
    with tempfile.TemporaryDirectory(prefix="edgenn-bench-tune-") as tmp:
        repro = reproducibility(Path(tmp))
        print("tune iris --board esp32 (defaults), quiet vs busy machine")
        print(f"{'run':<12} {'candidates':>10} {'seconds':>8}  {'best':<22} {'cv acc':>7}")
        for r in repro["runs"]:
            print(
                f"{r['run']:<12} {r['candidates']:>10} {r['seconds']:>8.1f}  {r['best']:<22} "
                f"{100 * r['cv_accuracy']:>6.2f}%"
            )
        print(f"identical leaderboards: {'yes' if repro['identical_leaderboards'] else 'NO'}")
        search = front_end_search(Path(tmp))
        print(f"\n6-axis motion set ({AXES} axes x {WINDOW} samples, 5 gestures; 150 rows tuned, 200 not)")
        print(
            f"{'command':<24} {'searched':<20} {'best':<26} {'cv acc':>7} {'test acc':>8} "
            f"{'bytes':>6} {'s':>6}"
        )
        for r in search["rows"]:
            print(
                f"{r['command']:<24} {r['searched']:<20} {r['best']:<26} {100 * r['cv_accuracy']:>6.2f}% "
                f"{100 * r['test_accuracy']:>7.2f}% {r['bytes']:>6} {r['seconds']:>6.1f}"
            )
    return {"reproducibility": repro, "front_end_search": search}


if __name__ == "__main__":
    run()
