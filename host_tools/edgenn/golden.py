"""The golden integer forward pass: exactly what the board computes, vectorized over rows in NumPy.

Every step follows docs/model-format.md ("The arithmetic the file describes"). The device's 31-bit
requantization form is computed alongside the exact int64 form and both must agree; every
intermediate of the device form is checked against 2**30 (the ESP32's small-int limit), so a model
that would make the board allocate long ints fails here, on the host, loudly.
"""

from __future__ import annotations

import numpy as np

from edgenn import frontend
from edgenn.modelfile import ACC_LIMIT, LUT_ACTIVATIONS, QuantLayer, QuantModel

SMALL_INT_LIMIT = 2**30  # MicroPython small ints on a 32-bit MCU: -2**30 .. 2**30 - 1


def _check_below(values: np.ndarray, limit: int, what: str) -> None:
    # An explicit raise (not `assert`) so `python -O` cannot switch the check off.
    if values.size and int(np.abs(values).max()) >= limit:
        raise AssertionError(f"{what} reaches {int(np.abs(values).max())} (limit {limit})")


def features(model: QuantModel, x_raw: np.ndarray) -> np.ndarray:
    """What the network's input scaling sees: the integer front end's features of raw windows (int64),
    or the raw features themselves (a model without a front end)."""
    if model.frontend is None:
        return np.asarray(x_raw, dtype=np.float64)
    try:
        return frontend.features_int(model.frontend, x_raw)
    except ValueError as exc:
        raise ValueError(f"{exc} (the model's front end takes raw windows)") from None


def quantize_input(model: QuantModel, x_raw: np.ndarray) -> np.ndarray:
    """Raw features (n, n_in) -> input codes: clamp(floor(x * in_scale + in_offset + 0.5), 0, 255).
    With a front end, raw windows (n, axes * window) go through it first."""
    x = np.asarray(features(model, x_raw), dtype=np.float64)
    if x.ndim == 1:
        x = x.reshape(1, -1)
    n_inputs = len(model.in_scale)  # (not model.n_inputs: the quantizer calls this before adding layers)
    if x.ndim != 2 or x.shape[1] != n_inputs:
        raise ValueError(f"expected rows of {n_inputs} features, got shape {np.shape(x_raw)}")
    bad = ~np.isfinite(x)
    if bad.any():
        row, col = (int(i) for i in np.argwhere(bad)[0])
        raise ValueError(f"feature {col} of row {row} is {x[row, col]}: NaN and infinity cannot be quantized")
    return np.clip(_unclamped_codes(model, x), 0, 255).astype(np.uint8)


def _unclamped_codes(model: QuantModel, x: np.ndarray) -> np.ndarray:
    scale = np.asarray(model.in_scale, dtype=np.float32).astype(np.float64)
    offset = np.asarray(model.in_offset, dtype=np.float32).astype(np.float64)
    return np.floor(x * scale + offset + 0.5)


def input_range(model: QuantModel) -> tuple[np.ndarray, np.ndarray]:
    """Per network input, the lowest and highest value that quantizes without clamping (codes 0..255):
    the range calibration gave it. Outside it the input saturates: every larger value is the same code."""
    scale = np.asarray(model.in_scale, dtype=np.float32).astype(np.float64)
    offset = np.asarray(model.in_offset, dtype=np.float32).astype(np.float64)
    return (-0.5 - offset) / scale, (255.5 - offset) / scale


def saturated(model: QuantModel, x_features: np.ndarray) -> np.ndarray:
    """Boolean (n, n_inputs): which feature values lie outside `input_range` and were clamped."""
    x = np.atleast_2d(np.asarray(x_features, dtype=np.float64))
    with np.errstate(invalid="ignore", over="ignore"):
        codes = _unclamped_codes(model, x)
    return (codes < 0) | (codes > 255)


def requant_golden(acc: np.ndarray, mult: np.ndarray, shift: np.ndarray) -> np.ndarray:
    """Exact form: (acc * mult + 2**(t-1)) >> t in int64 (broadcasts)."""
    acc, mult, t = (np.asarray(a, dtype=np.int64) for a in (acc, mult, shift))
    return (acc * mult + (np.int64(1) << (t - 1))) >> t


def requant_device(acc: np.ndarray, mult: np.ndarray, shift: np.ndarray) -> np.ndarray:
    """The board's nested form; raises AssertionError if |acc| >= 2**29 or any step reaches 2**30."""
    acc, mult, t = (np.asarray(a, dtype=np.int64) for a in (acc, mult, shift))
    _check_below(acc, ACC_LIMIT, "accumulator")
    r_lo = np.where(t == 15, np.int64(1 << 14), np.int64(0))
    r_hi = np.where(t == 15, np.int64(0), np.int64(1) << np.maximum(t - 16, 0))
    hi = (acc >> 15) * mult
    lo = (acc & 0x7FFF) * mult + r_lo
    _check_below(hi, SMALL_INT_LIMIT, "requant (acc >> 15) * mult")
    _check_below(lo, SMALL_INT_LIMIT, "requant (acc & 0x7FFF) * mult + r_lo")
    total = hi + (lo >> 15) + r_hi
    _check_below(total, SMALL_INT_LIMIT, "requant sum before the final shift")
    return total >> (t - 15)


def accumulate(layer: QuantLayer, u: np.ndarray) -> np.ndarray:
    """acc[n, c] = bias[c] + sum_d W[c, d] * u[n, d] as int64 (n, n_out)."""
    # float64 matmul is exact here: every partial sum is an integer below 2**29 < 2**53, and BLAS is fast.
    acc = np.asarray(u, dtype=np.float64) @ np.asarray(layer.weights, dtype=np.float64).T
    acc = acc.astype(np.int64) + np.asarray(layer.bias, dtype=np.int64)
    _check_below(acc, ACC_LIMIT, "accumulator")
    return acc


def layer_forward(layer: QuantLayer, u: np.ndarray) -> np.ndarray:
    """One layer: input bytes (n, n_in) -> output bytes (n, n_out): uint8 hidden, int8 identity."""
    acc = accumulate(layer, u)
    y = requant_golden(acc, layer.mult, layer.shift)
    y_device = requant_device(acc, layer.mult, layer.shift)
    if not np.array_equal(y, y_device):
        raise AssertionError("device requantization differs from the golden form")
    v = y + int(layer.out_zero)
    _check_below(v, SMALL_INT_LIMIT, "requantized value plus out_zero")
    if layer.activation == "relu":
        return np.clip(v, 0, 255).astype(np.uint8)
    if layer.activation in LUT_ACTIVATIONS:
        table = np.frombuffer(bytes(layer.lut), dtype=np.uint8)
        return table[np.clip(v, -128, 127) + 128]
    if layer.activation == "identity":
        return np.clip(v, -128, 127).astype(np.int8)
    raise ValueError(f"unknown activation {layer.activation!r}")


def forward_layers_q(model: QuantModel, u: np.ndarray) -> list[np.ndarray]:
    """Input codes uint8 (n, n_in) -> every layer's output bytes (hidden uint8, last int8)."""
    x = np.asarray(u)
    if x.ndim == 1:
        x = x.reshape(1, -1)
    if x.ndim != 2 or x.shape[1] != model.n_inputs:
        raise ValueError(f"expected rows of {model.n_inputs} input codes, got shape {np.shape(u)}")
    if x.size and (x.min() < 0 or x.max() > 255):
        raise ValueError("input codes must be 0..255")
    outputs = []
    for layer in model.layers:
        x = layer_forward(layer, x)
        outputs.append(x)
    return outputs


def forward_q(model: QuantModel, u: np.ndarray) -> np.ndarray:
    """Input codes uint8 (n, n_in) -> int8 outputs (n, n_out)."""
    return forward_layers_q(model, u)[-1]


def dequantize(model: QuantModel, q: np.ndarray) -> np.ndarray:
    """int8 outputs -> real values: out_scale * (q - out_zero_point), float64 (n, n_out)."""
    scale = np.asarray(model.out_scale, dtype=np.float32).astype(np.float64)
    zero = np.asarray(model.out_zero_point, dtype=np.float32).astype(np.float64)
    return scale * (np.asarray(q, dtype=np.float64) - zero)


def predict(model: QuantModel, x_raw: np.ndarray) -> np.ndarray:
    """Raw features -> class ids (classify; ties go to the lowest index) or values (n, n_out) (regress)."""
    q = forward_q(model, quantize_input(model, x_raw))
    if model.task == "classify":
        return np.argmax(q, axis=1)
    return dequantize(model, q)
