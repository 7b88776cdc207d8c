"""The golden forward pass against a plain-Python, one-neuron-at-a-time reading of docs/model-format.md."""

from __future__ import annotations

import math
import struct

import numpy as np
import pytest

from edgenn import golden
from edgenn import modelfile as mf
from edgenn.zoo import build_zoo, edge_inputs, export_fixtures

ZOO = build_zoo(seed=1)


def f32(x: float) -> float:
    return struct.unpack("<f", struct.pack("<f", x))[0]


def reference_layers(model: mf.QuantModel, codes: list[int]) -> list[list[int]]:
    """docs/model-format.md step 2-3, written out with Python ints and the device's requant form."""
    outputs = []
    u = list(codes)
    for layer in model.layers:
        out = []
        for c in range(layer.n_out):
            acc = int(layer.bias[c]) + sum(int(layer.weights[c, d]) * u[d] for d in range(layer.n_in))
            assert abs(acc) < 2**29
            m, t = int(layer.mult[c]), int(layer.shift[c])
            r_lo, r_hi = (2**14, 0) if t == 15 else (0, 2 ** (t - 16))
            y = ((acc >> 15) * m + (((acc & 0x7FFF) * m + r_lo) >> 15) + r_hi) >> (t - 15)
            v = y + layer.out_zero
            if layer.activation == "relu":
                out.append(min(max(v, 0), 255))
            elif layer.activation in ("sigmoid", "tanh"):
                out.append(layer.lut[min(max(v, -128), 127) + 128])
            else:
                out.append(min(max(v, -128), 127))
        outputs.append(out)
        u = out
    return outputs


@pytest.mark.parametrize("name", sorted(ZOO))
def test_golden_equals_the_plain_python_reference(name: str) -> None:
    model = ZOO[name]
    rows = edge_inputs(model, n_random=20, seed=5)
    rows = rows[np.random.default_rng(0).permutation(len(rows))[:24]]  # keep big models quick
    layers = golden.forward_layers_q(model, rows)
    assert [out.dtype for out in layers] == [np.uint8] * (len(layers) - 1) + [np.int8]
    for i, row in enumerate(rows):
        expected = reference_layers(model, [int(v) for v in row])
        for k, out in enumerate(layers):
            assert out[i].tolist() == expected[k], (name, i, k)


def test_quantize_input_is_the_documented_formula() -> None:
    model = ZOO["relu_2"]
    rng = np.random.default_rng(2)
    x = rng.normal(0.0, 3.0, size=(200, model.n_inputs)) * rng.uniform(0.1, 10, model.n_inputs)
    codes = golden.quantize_input(model, x)
    assert codes.dtype == np.uint8
    for r in range(0, 200, 7):
        for d in range(model.n_inputs):
            a, c = f32(float(model.in_scale[d])), f32(float(model.in_offset[d]))
            expected = min(max(math.floor(float(x[r, d]) * a + c + 0.5), 0), 255)
            assert codes[r, d] == expected


def test_quantize_input_clamps_and_refuses_nan_and_infinity() -> None:
    model = ZOO["inputs_2"]
    codes = golden.quantize_input(model, np.array([[1e30, -1e30], [-1e30, 1e30]]))
    assert codes.tolist() == [[255, 0], [0, 255]]
    for bad in (np.nan, np.inf, -np.inf):
        with pytest.raises(ValueError, match="NaN and infinity"):
            golden.quantize_input(model, np.array([[0.0, bad]]))
    with pytest.raises(ValueError, match="rows of 2 features"):
        golden.quantize_input(model, np.zeros((3, 5)))


def test_golden_refuses_a_model_outside_the_overflow_proof() -> None:
    model = build_zoo(seed=1)["relu_1"]
    model.layers[0].bias[:] = 2**29 - 1  # bypasses the writer; any positive input now overflows
    with pytest.raises(AssertionError, match="accumulator"):
        golden.forward_layers_q(model, np.full((1, model.n_inputs), 255, dtype=np.uint8))


def test_golden_refuses_input_codes_outside_a_byte() -> None:
    model = ZOO["relu_1"]
    with pytest.raises(ValueError, match="0..255"):
        golden.forward_layers_q(model, np.full((1, model.n_inputs), 256))


def test_predict_and_dequantize() -> None:
    clf, reg = ZOO["relu_2"], ZOO["regress_multi"]
    x = np.random.default_rng(3).normal(size=(50, clf.n_inputs))
    q = golden.forward_q(clf, golden.quantize_input(clf, x))
    np.testing.assert_array_equal(golden.predict(clf, x), np.argmax(q, axis=1))
    xr = np.random.default_rng(4).normal(size=(50, reg.n_inputs))
    qr = golden.forward_q(reg, golden.quantize_input(reg, xr))
    expected = reg.out_scale.astype(np.float64) * (qr - reg.out_zero_point.astype(np.float64))
    np.testing.assert_allclose(golden.predict(reg, xr), expected, rtol=0, atol=0)
    assert golden.dequantize(reg, qr).shape == (50, 3)


def test_edge_inputs_cover_the_documented_cases() -> None:
    model = ZOO["relu_1"]
    rows = edge_inputs(model, n_random=10, seed=0)
    n = model.n_inputs
    assert rows.dtype == np.uint8 and rows.shape == (3 + n + 2 + 10, n)
    assert rows[0].tolist() == [0] * n and rows[1].tolist() == [255] * n
    np.testing.assert_array_equal(rows[2], golden.quantize_input(model, np.zeros((1, n)))[0])
    np.testing.assert_array_equal(rows[3 : 3 + n], 255 * np.eye(n, dtype=np.uint8))
    np.testing.assert_array_equal(edge_inputs(model, 10, seed=0), rows)  # deterministic
    assert not np.array_equal(edge_inputs(model, 10, seed=1), rows)


def test_zoo_is_deterministic_and_covers_the_extremes() -> None:
    again = build_zoo(seed=1)
    assert sorted(again) == sorted(ZOO)
    assert all(mf.to_bytes(again[k]) == mf.to_bytes(ZOO[k]) for k in ZOO)
    layers = [layer for model in ZOO.values() for layer in model.layers]
    assert {layer.activation for layer in layers} == {"identity", "relu", "sigmoid", "tanh"}
    assert {len(m.layers) - 1 for m in ZOO.values()} >= {0, 1, 2, 3, 4}
    assert {m.task for m in ZOO.values()} == {"classify", "regress"}
    assert min(m.n_inputs for m in ZOO.values()) == 1 and max(m.n_inputs for m in ZOO.values()) == 256
    widths = {layer.n_out for layer in layers}
    assert 1 in widths and 256 in widths
    assert any(int(np.abs(layer.weights.astype(int)).max()) == 127 for layer in layers)
    assert any(int(mf.overflow_bound(layer.weights, layer.bias).max()) == 2**29 - 1 for layer in layers)
    mults = {int(v) for layer in layers for v in layer.mult}
    shifts = {int(v) for layer in layers for v in layer.shift}
    assert {1, 32767} <= mults and {15, 29} <= shifts


def test_exported_fixtures_read_back(tmp_path) -> None:
    manifest = export_fixtures(tmp_path, seed=1, n_random=5)
    entry = next(m for m in manifest["models"] if m["name"] == "mixed_3")
    model = mf.load(tmp_path / entry["file"])
    rows = np.frombuffer((tmp_path / "mixed_3.inputs.bin").read_bytes(), np.uint8).reshape(entry["rows"], -1)
    np.testing.assert_array_equal(rows, edge_inputs(ZOO["mixed_3"], 5, seed=1))
    for k, out in enumerate(golden.forward_layers_q(model, rows)):
        stored = np.frombuffer((tmp_path / f"mixed_3.layer{k}.bin").read_bytes(), out.dtype)
        np.testing.assert_array_equal(stored.reshape(out.shape), out)
    assert entry["layer_sizes"] == [20, 15, 10, 4] and len(manifest["models"]) == len(ZOO)
