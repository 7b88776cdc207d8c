"""The sensor front end on the board is bit-exact with the golden model, allocates nothing, and
Window(net, stride) predicts every stride samples what predict() does on the same window.

Inside the unix port (viper and portable kernels, 64-bit) and the 32-bit WebAssembly build (portable,
31-bit small ints like an ESP32), on trained stats and spectral models, with windows that are random,
constant, saturated (beyond int16 too), alternating in sign, tiny, and gesture-like."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from mpy_helpers import WasmPort, need_wasm

from edgenn import data, frontend, golden, modelfile, nn, quantize, zoo

AXES, WINDOW = 3, 32
STRIDE = 7


def waves(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Three classes of 3-axis windows: still, slow wave, fast wave (random axis mix, phase, amplitude)."""
    rng = np.random.default_rng(seed)
    t = np.arange(WINDOW)
    y = np.arange(n) % 3
    freq = np.array([0.0, 0.2, 0.9])[y] * rng.uniform(0.8, 1.2, n)
    amp = rng.uniform(500, 6000, n)
    mix = rng.normal(size=(n, AXES, 1))
    wave = np.sin(freq[:, None] * t[None, :] + rng.uniform(0, 6.3, (n, 1)))
    x = amp[:, None, None] * mix * wave[:, None, :] + rng.normal(0, 60, (n, AXES, WINDOW))
    x += rng.integers(-3000, 3000, (n, AXES, 1))
    return np.round(x).reshape(n, -1), y


def hard_rows(seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    n = AXES * WINDOW
    alternating = np.tile([32767, -32768], n // 2)
    rows = [
        *rng.integers(-32768, 32768, (12, n)),
        *rng.integers(-(2**20), 2**20, (3, n)),  # saturates to int16
        *rng.integers(-4, 5, (4, n)),  # tiny signals: the normalization shifts left
        np.zeros(n),
        np.full(n, 32767),
        np.full(n, -32768),
        np.full(n, 40000),
        np.full(n, 1234),
        alternating,
        -alternating,
        np.tile([1, -1], n // 2),
        np.concatenate([np.full(WINDOW, 32767), np.full(WINDOW, -32768), np.tile([32767, -32768], WINDOW // 2)]),
    ]
    return np.array(rows, dtype=np.int64)


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> dict:
    directory = tmp_path_factory.mktemp("frontend")
    X, y = waves(240, seed=3)
    columns = [f"{a}{t}" for a in "xyz" for t in range(WINDOW)]
    ds = data.Dataset("waves", "waves", X, y, columns, "label", "classify", ["still", "slow", "fast"])
    rows = np.vstack([hard_rows(5), waves(24, seed=9)[0]]).astype(np.int64)
    (directory / "rows.txt").write_text("\n".join(",".join(str(int(v)) for v in r) for r in rows) + "\n")
    out = {"dir": directory, "rows": rows}
    for kind in ("stats", "spectral"):
        fe = frontend.make(kind, AXES, columns)
        fm = nn.train_windows(ds, fe, nn.TrainConfig(hidden=(16,), epochs=40, seed=1))
        qm, _ = quantize.quantize(fm, X)
        modelfile.save(qm, directory / f"{kind}.enn")
        out[kind] = qm
    return out


def expected_pushes(qm: modelfile.QuantModel, rows: np.ndarray) -> list[dict]:
    """What Window(net, STRIDE) must return, streaming every row's samples in order."""
    samples = rows.reshape(len(rows), AXES, WINDOW).transpose(0, 2, 1).reshape(-1, AXES)
    out = []
    for i in range(WINDOW - 1, len(samples), STRIDE):
        window = samples[i - WINDOW + 1 : i + 1].T.reshape(1, -1)
        out.append({"push": i, "class": int(golden.predict(qm, window)[0])})
    return out


def check(result, qm: modelfile.QuantModel, rows: np.ndarray) -> dict:
    assert result.returncode == 0, result.stderr
    lines = result.json_lines()
    head = lines[0]
    assert head["n_raw"] == AXES * WINDOW and head["n_inputs"] == qm.n_inputs
    feats = np.array([line["f"] for line in lines if "f" in line], dtype=np.int64)
    codes = np.array([list(bytes.fromhex(line["x"])) for line in lines if "x" in line], dtype=np.uint8)
    np.testing.assert_array_equal(feats, golden.features(qm, rows))
    np.testing.assert_array_equal(codes, golden.quantize_input(qm, rows))
    assert [line for line in lines if "push" in line] == expected_pushes(qm, rows)
    return lines[-1]


@pytest.mark.parametrize("kind", ["stats", "spectral"])
@pytest.mark.parametrize("kernel", ["viper", "portable"])
def test_front_end_is_bit_exact_and_allocation_free_unix(unix_py, models, kind, kernel):
    qm, rows = models[kind], models["rows"]
    d = models["dir"]
    result = unix_py.run("check_frontend.py", d / f"{kind}.enn", d / "rows.txt", kernel, STRIDE, "lock")
    alloc = check(result, qm, rows)
    assert alloc == {"alloc_features": 0, "alloc_predict": 0, "alloc_push": 0}


@pytest.mark.parametrize("kind", ["stats", "spectral"])
def test_front_end_is_bit_exact_and_allocation_free_wasm(runtime_py, models, kind):
    need_wasm()
    qm, rows = models[kind], models["rows"]
    d: Path = models["dir"]
    port = WasmPort(runtime_py, {d: "/fe"})
    result = port.run("check_frontend.py", f"/fe/{kind}.enn", "/fe/rows.txt", "portable", str(STRIDE), "count")
    alloc = check(result, qm, rows)
    assert alloc == {"alloc_features": 0, "alloc_predict": 0, "alloc_push": 0}


def test_golden_checks_every_intermediate_and_float_features_track_integer_ones(models):
    qm, rows = models["spectral"], models["rows"]
    fe = qm.frontend
    ints = frontend.features_int(fe, rows).astype(np.float64)  # raises if anything reaches 2**30
    floats = frontend.features_float(fe, rows)
    scale = np.maximum(np.abs(floats).max(axis=0), 1.0)
    assert np.max(np.abs(ints - floats) / scale) < 0.01
    print(json.dumps({"max_relative_difference": float(np.max(np.abs(ints - floats) / scale))}))


def test_front_end_modules_are_imported_only_for_a_model_with_a_front_end(unix_py, models, tmp_path):
    rng = np.random.default_rng(0)
    raw = zoo.random_model(rng, 8, [4], ["relu"], 3, "classify")
    modelfile.save(raw, tmp_path / "raw.enn")
    result = unix_py.run("check_fe_import.py", tmp_path / "raw.enn", models["dir"] / "spectral.enn")
    assert result.returncode == 0, result.stderr
    out = result.json_lines()[-1]
    assert "edgenn_fe" not in out["after_raw"] and "edgenn_fe_viper" not in out["after_raw"]
    assert {"edgenn_fe", "edgenn_fe_viper"} <= set(out["after_frontend"])
    assert out["viper_front_end"] is True
