"""A zoo of integer models and edge-case inputs for bit-exact tests of the device runtime.

`build_zoo(seed)` returns deterministic QuantModels that cover every activation, 0 to 4 hidden layers,
input counts and widths from 1 to 256, classify and regress, and the extremes the format admits:
weights at +-127 (and -128), biases as large as the overflow proof allows, mult 1 and 32767, shift 15
and 29, out_zero at both ends of its range. `edge_inputs(model, n_random, seed)` gives input code rows:
all 0, all 255, the code of real 0, one-hot, alternating, and random bytes.

`export_fixtures(dir)` / `python -m edgenn.zoo DIR` writes them with the golden outputs of every layer
for tests that run inside MicroPython.

Tables of sigmoid/tanh layers are random bytes in the extreme models (any off-by-one in the lookup
shows) and real tables in the typical ones.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

from edgenn import golden
from edgenn.modelfile import (
    LUT_ACTIVATIONS,
    LUT_SIZE,
    MULT_MAX,
    MULT_MIN,
    OUT_ZERO_MAX,
    OUT_ZERO_MIN,
    SHIFT_MAX,
    SHIFT_MIN,
    QuantLayer,
    QuantModel,
    max_admissible_bias,
    save,
    validate,
)
from edgenn.outputs import write_atomic
from edgenn.quantize import sigmoid_lut, split_multiplier, tanh_lut

TYPICAL = "typical"  # outputs spread over their range: exercises arithmetic, not just saturation
EXTREME = "extreme"  # every parameter at the edge of what the format admits (outputs mostly saturate)
EDGE = "edge"  # biases at the proof's edge, offset by out_zero so the outputs still vary


def _random_lut(rng: np.random.Generator) -> bytes:
    return rng.integers(0, 256, LUT_SIZE, dtype=np.uint8).tobytes()


def _typical_requant(rng: np.random.Generator, w: np.ndarray, bias: np.ndarray, spread: float):
    """mult/shift per neuron so that accumulators over random input bytes land ~spread codes wide."""
    u = rng.integers(0, 256, size=(64, w.shape[1])).astype(np.float64)
    acc = u @ w.T.astype(np.float64) + bias
    std = np.maximum(acc.std(axis=0), 1.0)
    pairs = [split_multiplier(min(spread / s, 0.99)) for s in std]
    mult = np.array([p[0] for p in pairs], dtype=np.int64)
    shift = np.array([p[1] for p in pairs], dtype=np.int64)
    # centre the requantized values: the caller folds the mean accumulator into the bias
    return mult, shift, acc.mean(axis=0)


def _layer(rng: np.random.Generator, n_in: int, n_out: int, activation: str, style: str) -> QuantLayer:
    if style == EXTREME:
        w = rng.choice(np.array([-128, -127, -1, 0, 1, 127], dtype=np.int64), size=(n_out, n_in))
        w[:, 0] = np.where(rng.random(n_out) < 0.5, -127, 127)  # every neuron has a weight at +-127
        sign = np.where(rng.random(n_out) < 0.5, -1, 1)
        bias = sign * max_admissible_bias(w)  # the largest |bias| the overflow proof admits
        mult = rng.choice(np.array([MULT_MIN, MULT_MAX, 16384, 12345]), size=n_out)
        shift = rng.choice(np.array([SHIFT_MIN, SHIFT_MAX, 16, 22]), size=n_out)
        out_zero = int(rng.choice([OUT_ZERO_MIN, OUT_ZERO_MAX, 0, -128, 127]))
        lut = _random_lut(rng) if activation in LUT_ACTIVATIONS else None
        return QuantLayer(
            w.astype(np.int8),
            bias.astype(np.int64),
            mult.astype(np.int64),
            shift.astype(np.int64),
            activation,
            out_zero,
            lut,
        )

    w = rng.integers(-127, 128, size=(n_out, n_in))
    w[np.arange(n_out), rng.integers(0, n_in, n_out)] = np.where(rng.random(n_out) < 0.5, -127, 127)
    if style == EDGE:
        return _edge_layer(rng, w, activation)
    bias = rng.integers(-(2**16), 2**16, size=n_out)
    spread = 40.0 if activation in ("relu", "identity") else 30.0
    mult, shift, mean_acc = _typical_requant(rng, w, bias, spread)
    bias = bias - np.round(mean_acc).astype(np.int64)
    bias = np.clip(bias, -max_admissible_bias(w), max_admissible_bias(w))
    if activation == "relu":
        out_zero, lut = int(rng.integers(0, 64)), None
    elif activation in LUT_ACTIVATIONS:
        out_zero = int(rng.integers(-20, 21))
        builder = sigmoid_lut if activation == "sigmoid" else tanh_lut
        lut = builder(float(rng.uniform(0.02, 0.1)), int(rng.integers(-10, 11)))
    else:
        out_zero, lut = int(rng.integers(-10, 11)), None
    return QuantLayer(w.astype(np.int8), bias.astype(np.int64), mult, shift, activation, out_zero, lut)


def _edge_layer(rng: np.random.Generator, w: np.ndarray, activation: str) -> QuantLayer:
    """Largest admissible |bias| (one sign per layer), mult/shift extremes (32767 at 29, or 1 at 15) that
    map it to ~16000..32767, and an out_zero that cancels it so the inputs still move the outputs."""
    n_out = w.shape[0]
    bias = int(rng.choice([-1, 1])) * max_admissible_bias(w)
    mult_value, shift_value = ((MULT_MAX, SHIFT_MAX), (MULT_MIN, SHIFT_MIN))[int(rng.integers(0, 2))]
    mult = np.full(n_out, mult_value, dtype=np.int64)
    shift = np.full(n_out, shift_value, dtype=np.int64)
    y_mid = golden.requant_golden(bias + w.sum(axis=1) * 128, mult, shift)
    centre = 128 if activation == "relu" else 0
    out_zero = int(np.clip(centre - np.round(np.median(y_mid)), OUT_ZERO_MIN, OUT_ZERO_MAX))
    lut = _random_lut(rng) if activation in LUT_ACTIVATIONS else None
    return QuantLayer(w.astype(np.int8), bias.astype(np.int64), mult, shift, activation, out_zero, lut)


def random_model(
    rng: np.random.Generator,
    n_inputs: int,
    hidden: list[int],
    activations: list[str],
    n_outputs: int,
    task: str,
    style: str = TYPICAL,
    name: str = "",
) -> QuantModel:
    """A valid QuantModel with random parameters; `activations` has one entry per hidden layer."""
    sizes = [n_inputs, *hidden, n_outputs]
    acts = [*activations, "identity"]
    layers = [_layer(rng, sizes[i], sizes[i + 1], acts[i], style) for i in range(len(sizes) - 1)]
    in_scale = rng.uniform(0.5, 60.0, n_inputs).astype(np.float32)
    in_offset = rng.uniform(0.0, 255.0, n_inputs).astype(np.float32)
    if task == "classify":
        out_scale = np.full(n_outputs, rng.uniform(0.01, 0.5), dtype=np.float32)
        out_zero_point = np.zeros(n_outputs, dtype=np.float32)
    else:
        out_scale = rng.uniform(0.01, 5.0, n_outputs).astype(np.float32)
        out_zero_point = rng.uniform(-200.0, 200.0, n_outputs).astype(np.float32)
    model = QuantModel(
        task=task,
        name=name,
        feature_names=[f"f{j}" for j in range(n_inputs)],
        labels=[f"{'class' if task == 'classify' else 'target'}{k}" for k in range(n_outputs)],
        in_scale=in_scale,
        in_offset=in_offset,
        out_scale=out_scale,
        out_zero_point=out_zero_point,
        layers=layers,
    )
    validate(model)
    return model


# name, n_inputs, hidden widths, hidden activations, n_outputs, task, style
_ZOO_SPECS: list[tuple[str, int, list[int], list[str], int, str, str]] = [
    ("linear_classify", 4, [], [], 3, "classify", TYPICAL),
    ("linear_regress", 10, [], [], 1, "regress", TYPICAL),
    ("relu_1", 4, [32], ["relu"], 3, "classify", TYPICAL),
    ("relu_2", 13, [32, 16], ["relu", "relu"], 3, "classify", TYPICAL),
    ("relu_3", 30, [24, 16, 8], ["relu"] * 3, 2, "classify", TYPICAL),
    ("relu_4", 64, [48, 32, 16, 12], ["relu"] * 4, 10, "classify", TYPICAL),
    ("sigmoid_1", 5, [9], ["sigmoid"], 2, "classify", TYPICAL),
    ("sigmoid_2", 13, [32, 16], ["sigmoid"] * 2, 3, "classify", TYPICAL),
    ("sigmoid_3", 8, [16, 16, 8], ["sigmoid"] * 3, 4, "classify", TYPICAL),
    ("sigmoid_4", 20, [20, 17, 13, 11], ["sigmoid"] * 4, 5, "classify", TYPICAL),
    ("tanh_1", 3, [7], ["tanh"], 2, "classify", TYPICAL),
    ("tanh_2", 10, [32, 16], ["tanh"] * 2, 1, "regress", TYPICAL),
    ("tanh_3", 16, [24, 12, 6], ["tanh"] * 3, 3, "regress", TYPICAL),
    ("tanh_4", 12, [16, 16, 16, 16], ["tanh"] * 4, 6, "classify", TYPICAL),
    ("mixed_3", 9, [20, 15, 10], ["relu", "tanh", "sigmoid"], 4, "classify", TYPICAL),
    ("width_1_everywhere", 1, [1, 1], ["relu", "tanh"], 1, "regress", TYPICAL),
    ("inputs_1", 1, [16], ["relu"], 2, "classify", TYPICAL),
    ("inputs_2", 2, [3], ["sigmoid"], 2, "classify", TYPICAL),
    ("inputs_255", 255, [17], ["relu"], 4, "classify", TYPICAL),
    ("inputs_256", 256, [64, 32], ["relu", "relu"], 10, "classify", TYPICAL),
    ("wide_256", 8, [256, 256], ["relu", "tanh"], 3, "classify", TYPICAL),
    ("outputs_256", 6, [12], ["relu"], 256, "classify", TYPICAL),
    ("regress_multi", 10, [32, 16], ["relu", "relu"], 3, "regress", TYPICAL),
    ("extreme_linear", 7, [], [], 3, "classify", EXTREME),
    ("extreme_relu_2", 33, [19, 11], ["relu"] * 2, 4, "classify", EXTREME),
    ("extreme_sigmoid_2", 17, [13, 9], ["sigmoid"] * 2, 3, "regress", EXTREME),
    ("extreme_tanh_2", 21, [15, 8], ["tanh"] * 2, 2, "classify", EXTREME),
    ("extreme_mixed_4", 256, [64, 32, 16, 8], ["relu", "sigmoid", "tanh", "relu"], 5, "regress", EXTREME),
    ("extreme_inputs_1", 1, [256], ["tanh"], 1, "regress", EXTREME),
    ("edge_relu_2", 256, [128, 64], ["relu", "relu"], 4, "classify", EDGE),
    ("edge_sigmoid_2", 200, [100, 50], ["sigmoid", "sigmoid"], 3, "regress", EDGE),
    ("edge_tanh_3", 256, [256, 100, 64], ["tanh", "tanh", "tanh"], 2, "classify", EDGE),
    ("edge_mixed_4", 150, [150, 150, 100, 100], ["relu", "tanh", "sigmoid", "relu"], 7, "regress", EDGE),
]


def build_zoo(seed: int = 0) -> dict[str, QuantModel]:
    """Deterministic models keyed by a descriptive name (stable across runs for a given seed)."""
    zoo = {}
    for index, (name, n_in, hidden, acts, n_out, task, style) in enumerate(_ZOO_SPECS):
        rng = np.random.default_rng([seed, index])
        zoo[name] = random_model(rng, n_in, hidden, acts, n_out, task, style, name=name)
    unicode_model = random_model(np.random.default_rng([seed, 999]), 3, [5], ["relu"], 2, "classify")
    unicode_model.name = "modèle-ü-😀"
    unicode_model.feature_names = ["länge", "width (cm)", ""]
    unicode_model.labels = ["é" * 127, "x" * 255]  # 254 and 255 UTF-8 bytes: the longest strings
    validate(unicode_model)
    zoo["unicode_names"] = unicode_model
    return zoo


def edge_inputs(model: QuantModel, n_random: int = 100, seed: int = 0) -> np.ndarray:
    """uint8 input code rows: all 0, all 255, the code of real 0, one-hot (255 at each position on 0),
    alternating 0/255 both ways, then n_random uniformly random rows."""
    n = model.n_inputs
    rng = np.random.default_rng(seed)
    rows = [np.zeros(n), np.full(n, 255), golden.quantize_input(model, np.zeros((1, n)))[0]]
    rows += list(255 * np.eye(n))
    alternating = (np.arange(n) % 2) * 255
    rows += [alternating, 255 - alternating]
    fixed = np.array(rows, dtype=np.uint8)
    random_rows = rng.integers(0, 256, size=(n_random, n), dtype=np.uint8)
    return np.concatenate([fixed, random_rows], axis=0)


def export_fixtures(directory: str | Path, seed: int = 0, n_random: int = 1000) -> dict:
    """Write the zoo for tests that run inside MicroPython (which cannot import this package):
    per model NAME.enn, NAME.inputs.bin (rows x n_inputs input codes) and NAME.layerK.bin (rows x n_out
    output bytes of layer K: uint8 hidden, int8 last as two's complement), plus manifest.json."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    manifest = {"seed": seed, "models": []}
    for name, model in build_zoo(seed).items():
        rows = edge_inputs(model, n_random, seed)
        outputs = golden.forward_layers_q(model, rows)
        size = save(model, directory / f"{name}.enn")
        write_atomic(directory / f"{name}.inputs.bin", rows.tobytes())
        for k, out in enumerate(outputs):
            write_atomic(directory / f"{name}.layer{k}.bin", out.tobytes())
        manifest["models"].append(
            {
                "name": name,
                "file": f"{name}.enn",
                "bytes": size,
                "rows": int(rows.shape[0]),
                "n_inputs": model.n_inputs,
                "layer_sizes": [layer.n_out for layer in model.layers],
                "activations": [layer.activation for layer in model.layers],
                "task": model.task,
            }
        )
    write_atomic(directory / "manifest.json", (json.dumps(manifest, indent=1) + "\n").encode())
    return manifest


if __name__ == "__main__":  # python -m edgenn.zoo OUT_DIR [SEED] [N_RANDOM]
    args = sys.argv[1:]
    if not args:
        sys.exit("usage: python -m edgenn.zoo OUT_DIR [SEED] [N_RANDOM]")
    result = export_fixtures(args[0], *(int(a) for a in args[1:3]))
    print(f"wrote {len(result['models'])} models to {args[0]}")
