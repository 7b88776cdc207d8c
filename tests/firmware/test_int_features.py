"""Integer features (raw sensor readings) take an exact small-int path on the board: no float objects.

The quantizer makes each feature's scaling dyadic (in_scale = A / 2**S, in_offset + 0.5 = B / 2**S),
so the board's (x * A + B) >> S equals the golden model's float64 formula exactly. Checked inside the
unix port and the 32-bit WebAssembly build (31-bit small ints, like an ESP32), including integers too
large for the small-int path (they fall back to floats) and the allocation of one call.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from mpy_helpers import WasmPort, need_wasm

from edgenn import golden, modelfile, zoo
from edgenn.quantize import dyadic_inputs

MODELS = ["relu_2", "tanh_2", "inputs_1"]


def dyadic(model: modelfile.QuantModel) -> modelfile.QuantModel:
    model.in_scale, model.in_offset = dyadic_inputs(model.in_scale, model.in_offset)
    return model


def int_rows(model: modelfile.QuantModel, seed: int) -> np.ndarray:
    """Integers around every code boundary, far outside the range, and beyond the small-int path."""
    rng = np.random.default_rng(seed)
    a = model.in_scale.astype(np.float64)
    c = model.in_offset.astype(np.float64)
    code_edges = rng.integers(-3, 259, size=(300, model.n_inputs)) - 0.5
    near = np.round((code_edges - c) / a) + rng.integers(-1, 2, size=(300, model.n_inputs))
    wide = rng.integers(-(2**20), 2**20, size=(100, model.n_inputs))
    huge = rng.integers(-(2**40), 2**40, size=(20, model.n_inputs))  # long ints: the float path
    return np.vstack([near, wide, huge, np.zeros((1, model.n_inputs))]).astype(np.int64)


def prepare(directory: Path, name: str) -> tuple[modelfile.QuantModel, np.ndarray]:
    model = dyadic(zoo.build_zoo(0)[name])
    modelfile.save(model, directory / f"{name}.enn")
    rows = int_rows(model, seed=len(name))
    (directory / f"{name}.txt").write_text("\n".join(",".join(str(v) for v in r) for r in rows) + "\n")
    return model, rows


def check(result, model: modelfile.QuantModel, rows: np.ndarray) -> dict:
    assert result.returncode == 0, result.stderr
    lines = result.json_lines()
    head, alloc = lines[0], lines[1]
    codes = np.array([list(bytes.fromhex(r["codes"])) for r in lines[2:]], dtype=np.uint8)
    np.testing.assert_array_equal(codes, golden.quantize_input(model, rows.astype(np.float64)))
    assert head["fixed_point_features"] == model.n_inputs
    return alloc


@pytest.mark.parametrize("name", MODELS)
def test_integer_features_match_golden_and_allocate_nothing_unix(unix_py, tmp_path, name):
    model, rows = prepare(tmp_path, name)
    alloc = check(unix_py.run("check_int_features.py", tmp_path / f"{name}.enn", tmp_path / f"{name}.txt"),
                  model, rows)
    assert alloc == {"alloc_quantize_input": 0, "alloc_predict": 0} or (
        model.task == "regress" and alloc["alloc_quantize_input"] == 0  # a regression value is a float
    )


@pytest.mark.parametrize("name", MODELS)
def test_integer_features_match_golden_and_allocate_nothing_wasm(runtime_py, tmp_path, name):
    need_wasm()
    model, rows = prepare(tmp_path, name)
    port = WasmPort(runtime_py, {tmp_path: "/int"})
    alloc = check(port.run("check_int_features.py", f"/int/{name}.enn", f"/int/{name}.txt"), model, rows)
    assert alloc["alloc_quantize_input"] == 0


def test_the_quantizer_makes_every_feature_of_a_trained_model_dyadic() -> None:
    from edgenn.demo import train_and_quantize

    _dataset, _fm, qm, _warnings = train_and_quantize("digits", (8,), seed=1)
    for a, c in zip(qm.in_scale.astype(np.float64), qm.in_offset.astype(np.float64)):
        shift = next(s for s in range(1, 31) if (a * 2**s).is_integer() and (c * 2 ** (s + 1)).is_integer())
        big_a, big_b = int(a * 2**shift), int(c * 2 ** (shift + 1) + 2**shift) // 2
        assert 1 <= big_a < 2**20 and abs(big_b) < 2**29
    print(json.dumps({"features": qm.n_inputs}))
