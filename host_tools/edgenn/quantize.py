"""Float model -> integer model (post-training quantization with calibration).

Scheme (docs/model-format.md, ../shared/notes/quantization.md): int8 symmetric weights with one scale
per neuron, int32 biases with every zero point folded in, uint8 activations, 15-bit requantization
multipliers, 256-entry tables for sigmoid and tanh, int8 outputs.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np

from edgenn import anomaly, frontend, golden
from edgenn.errors import UserError
from edgenn.floatmodel import FloatModel
from edgenn.modelfile import (
    ACC_LIMIT,
    HIDDEN_ACTIVATIONS,
    MAX_LAYERS,
    MAX_STR_BYTES,
    MAX_WIDTH,
    MULT_MAX,
    OUT_ZERO_MAX,
    OUT_ZERO_MIN,
    SHIFT_MAX,
    SHIFT_MIN,
    ModelFormatError,
    QuantLayer,
    QuantModel,
    overflow_bound,
    validate,
)

MULT_BITS = 15  # mult < 2**15 so (acc & 0x7FFF) * mult stays below 2**30


def split_multiplier(m: float) -> tuple[int, int]:
    """Real multiplier 0 < m < 1 -> (mult, shift) with m ~= mult / 2**shift, mult 1..32767, shift 15..29.

    The mantissa keeps 15 bits when the exponent allows; a tiny m is clamped to shift 29 (losing bits,
    the output is ~0 anyway). Raises ValueError if m is too large for shift 15 (the caller must raise
    the output scale).
    """
    if not (m > 0 and math.isfinite(m)):
        raise ValueError(f"requantization multiplier must be positive and finite, got {m}")
    mantissa, exponent = math.frexp(m)  # m = mantissa * 2**exponent, 0.5 <= mantissa < 1
    mult = round(mantissa * 2**MULT_BITS)
    if mult == 2**MULT_BITS:  # rounding carried into the next power of two
        mult //= 2
        exponent += 1
    shift = MULT_BITS - exponent
    if shift < SHIFT_MIN:
        raise ValueError(f"requantization multiplier {m} >= 1 cannot be represented")
    if shift > SHIFT_MAX:
        shift = SHIFT_MAX
        mult = max(1, round(m * 2**SHIFT_MAX))
    if mult > MULT_MAX:
        raise ValueError(f"requantization multiplier {m} cannot be represented")
    return int(mult), int(shift)


def max_multiplier() -> float:
    """The largest real multiplier `split_multiplier` accepts (mult 32767 at shift 15, minus rounding)."""
    return (MULT_MAX + 0.5) / 2**SHIFT_MIN * (1 - 1e-12)


def sigmoid_lut(pre_scale: float, pre_zero: int) -> bytes:
    """LUT[q + 128] = clamp(round(256 * sigmoid(pre_scale * (q - pre_zero))), 0, 255): scale 1/256."""
    q = np.arange(-128, 128, dtype=np.float64)
    z = pre_scale * (q - pre_zero)
    s = 0.5 * (1.0 + np.tanh(0.5 * z))
    return np.clip(np.round(256.0 * s), 0, 255).astype(np.uint8).tobytes()


def tanh_lut(pre_scale: float, pre_zero: int) -> bytes:
    """LUT[q + 128] = clamp(round(128 * tanh(pre_scale * (q - pre_zero))), -128, 127) + 128: zero 128."""
    q = np.arange(-128, 128, dtype=np.float64)
    z = pre_scale * (q - pre_zero)
    t = np.clip(np.round(128.0 * np.tanh(z)), -128, 127)
    return (t + 128).astype(np.uint8).tobytes()


# Pre-activation ranges beyond which the 8-bit tables are saturated (first/last code): clipping the
# int8 pre-activation range to these spends all 256 codes where the table still changes.
LUT_ACTIVE_RANGE = {
    "sigmoid": (math.log(0.5 / 255.5), math.log(254.5 / 1.5)),  # round(256*s) reaches 0 / 255
    "tanh": (math.atanh(-127.5 / 128), math.atanh(126.5 / 128)),  # round(128*t) reaches -128 / 127
}
# The tensor a table's layer outputs: real = scale * (u - zero)
LUT_OUTPUT = {"sigmoid": (1.0 / 256, 0), "tanh": (1.0 / 128, 128)}
BIAS_GUARD = 2**27  # |integer bias| from the float bias alone stays below this (the notes' bias guard)
MAX_RESCALES = 3  # weight-scale doublings allowed to pass the overflow proof before refusing


@dataclass
class Calibration:
    """How activation ranges are chosen from the calibration rows.

    The defaults were measured (hidden 32,16; 3-6 seeds x iris/wine/breast_cancer/digits/diabetes x
    relu/sigmoid/tanh; calibrated on the training rows, scored on all rows): plain min/max clips
    held-out rows whose features or activations exceed the training range, and that costs more than
    the resolution a 25% margin gives up (relu logit RMS error 3.5-5.5% -> 1-4% of the logits' spread;
    40-60% margins measured the same within noise). Percentile clipping (99.9, 99.99) did not help on
    these small tabular sets; bias correction helps slightly.
    The input margin was then raised to 100% (bench/training.py's suite, 11 sets x 3 seeds x relu/tanh,
    calibrated on the train file, scored on the test file): rows of a new file that step outside the
    training range clip at code 0 or 255, and on a 96-column sensor set that flipped 2% of predictions
    (agreement 97.8%, 99.3% with the wider range); suite mean agreement 99.58% -> 99.62%, integer accuracy
    drop unchanged within noise."""

    input_percentile: float = 100.0  # per feature: clip at this percentile of |standardized value| tails
    input_margin: float = 1.0  # per feature: widen the range by this fraction on both sides
    input_min_range: float = 0.0  # per feature: the range covers at least -v..v standard deviations
    relu_percentile: float = 100.0  # per neuron: clip ReLU outputs at this percentile
    relu_margin: float = 0.25  # per neuron: widen the ReLU clip by this fraction
    lut_percentile: float = 100.0  # per layer: pre-activation range of sigmoid/tanh layers
    # per layer: widen that range by this fraction on both sides (still within the table's active range):
    # the integer pre-activation carries the rounding of the coarser inputs and may step a code past
    # the calibrated float range
    lut_margin: float = 0.05
    output_margin: float = 0.1  # widen the output range by this fraction on both sides
    bias_correction: bool = True  # remove each neuron's mean integer-vs-float error on the calibration rows


@dataclass
class _Tensor:
    """A uint8 tensor's meaning: real[d] = scale[d] * (u[d] - zero[d])."""

    scale: np.ndarray  # float64 (n,)
    zero: np.ndarray  # int64 (n,)


SMALL_INT_LIMIT = 2**30  # MicroPython small ints on a 32-bit board: |x * A| + |B| must stay below


def dyadic_input_scaling(a: float, c: float) -> tuple[float, float]:
    """Snap one feature's (in_scale, in_offset) to a = A / 2**S and c + 0.5 = B / 2**S, with integers
    A < 2**20 and |B| < 2**29 and both still exact float32 values.

    Then for an integer feature x with |x * A| + |B| < 2**30 the board computes floor(x * a + c + 0.5)
    as (x * A + B) >> S with small ints alone (no float objects, nothing allocated), and that equals
    the float formula the golden model evaluates, exactly. The most bits of A are kept (at least 12)
    for which every x that maps into twice the code range 0..255 passes the small-int bound; failing
    that, the most bits at all. If no S fits, the feature keeps its float32 parameters (floats on the
    board)."""
    reach = 2.0 * max(abs((-0.5 - c) / a), abs((255.5 - c) / a))  # |x| the board should cover
    fallback = None
    _, exponent = math.frexp(a)  # a = m * 2**exponent, 0.5 <= m < 1
    for bits in range(20, 11, -1):
        shift = bits - exponent  # A = a * 2**shift lies in [2**(bits-1), 2**bits)
        if not 1 <= shift <= 30:
            continue
        big_a = round(a * 2.0**shift)
        # N = 2B - 2**shift = c * 2**(shift+1) is even; rounded to 24 significant bits (still even:
        # float32 spacing is >= 2 there) so that c stays an exact float32
        n = int(np.float32(2 * round((c + 0.5) * 2.0**shift) - 2**shift))
        big_b = (n + 2**shift) // 2
        if big_a < 1 or abs(big_b) >= SMALL_INT_LIMIT // 2:
            continue
        a2, c2 = big_a / 2.0**shift, n / 2.0 ** (shift + 1)
        if float(np.float32(a2)) != a2 or float(np.float32(c2)) != c2:
            continue
        if (SMALL_INT_LIMIT - 1 - abs(big_b)) // big_a >= reach:
            return a2, c2
        fallback = fallback or (a2, c2)
    return fallback or (a, c)


def dyadic_inputs(in_scale: np.ndarray, in_offset: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """`dyadic_input_scaling` for every feature: the float32 arrays a QuantModel holds."""
    snapped = [dyadic_input_scaling(float(s), float(o)) for s, o in zip(in_scale, in_offset)]
    return (
        np.array([s for s, _ in snapped], dtype=np.float32),
        np.array([o for _, o in snapped], dtype=np.float32),
    )


def _range(values: np.ndarray, percentile: float, axis=None) -> tuple[np.ndarray, np.ndarray]:
    if percentile >= 100.0:
        return values.min(axis=axis), values.max(axis=axis)
    return np.percentile(values, 100.0 - percentile, axis=axis), np.percentile(values, percentile, axis=axis)


def _affine(lo: np.ndarray, hi: np.ndarray, q_min: int) -> tuple[np.ndarray, np.ndarray]:
    """Scale and integer zero point mapping [lo, hi] (widened to contain 0) onto q_min..q_min+255."""
    lo = np.minimum(np.asarray(lo, dtype=np.float64), 0.0)
    hi = np.maximum(np.asarray(hi, dtype=np.float64), 0.0)
    width = hi - lo
    width = np.where(width > 0, width, 1.0)  # a constant tensor: any scale represents it
    scale = width / 255.0
    zero = np.clip(np.round(q_min - lo / scale), q_min, q_min + 255).astype(np.int64)
    return scale, zero


def _quantize_weights(
    w_real: np.ndarray, b_real: np.ndarray, tensor_in: _Tensor, layer_index: int, warnings: list[str]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per neuron symmetric int8 weights for real inputs `scale * (u - zero)`; biases with the zero
    points folded in; the overflow proof checked (and weight scales doubled with a warning if needed).

    w_real: (n_in, n_out) float weights acting on real inputs. Returns (W_q int8 (n_out, n_in),
    bias int64 (n_out,), s_acc (n_out,): the real value of one accumulator unit)."""
    w_u = (w_real * tensor_in.scale[:, None]).T  # (n_out, n_in): real weight per input code
    s_acc = np.abs(w_u).max(axis=1) / 127.0
    s_acc = np.maximum(s_acc, np.abs(b_real) / BIAS_GUARD)  # bias guard
    s_acc = np.where(s_acc > 0, s_acc, 1.0)  # an all-zero neuron
    rescaled = []
    for attempt in range(MAX_RESCALES + 1):
        w_q = np.clip(np.round(w_u / s_acc[:, None]), -127, 127).astype(np.int64)
        bias = np.round(b_real / s_acc).astype(np.int64) - w_q @ tensor_in.zero
        failing = overflow_bound(w_q, bias) >= ACC_LIMIT
        if not failing.any():
            break
        if attempt == MAX_RESCALES:
            c = int(np.flatnonzero(failing)[0])
            raise UserError(
                f"layer {layer_index} neuron {c} fails the overflow proof even with its weight scale "
                f"raised {2**MAX_RESCALES}x (|bias| + sum|W|*255 = {int(overflow_bound(w_q, bias)[c])} "
                f">= 2**29): its input zero points or bias are too large for 8-bit inputs"
            )
        rescaled.extend(int(c) for c in np.flatnonzero(failing))
        s_acc = np.where(failing, 2 * s_acc, s_acc)
    if rescaled:
        neurons = ", ".join(str(c) for c in sorted(set(rescaled))[:8])
        warnings.append(
            f"layer {layer_index}: weight scale of neuron(s) {neurons} raised to pass the overflow proof "
            f"(|bias| + sum|W|*255 < 2**29); those neurons lose weight precision"
        )
    return w_q, bias, s_acc


def _requant(s_acc: np.ndarray, s_out: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    pairs = [split_multiplier(float(m)) for m in s_acc / s_out]
    return np.array([p[0] for p in pairs], np.int64), np.array([p[1] for p in pairs], np.int64)


def _check_float_model(fm: FloatModel, x: np.ndarray) -> None:
    if len(fm.weights) > MAX_LAYERS:
        raise UserError(f"the model has {len(fm.weights)} layers; the .enn format holds at most {MAX_LAYERS}")
    if max(fm.layer_sizes) > MAX_WIDTH:
        raise UserError(f"layer widths {fm.layer_sizes}: the .enn format allows at most {MAX_WIDTH}")
    hidden_ok = all(a in HIDDEN_ACTIVATIONS for a in fm.activations[:-1])
    if fm.activations[-1] != "identity" or not hidden_ok:
        raise UserError(f"unsupported activations {fm.activations} (hidden relu/sigmoid/tanh, last identity)")
    params = [*fm.weights, *fm.biases, fm.input_mean, fm.input_std]
    if not all(np.all(np.isfinite(np.asarray(p, dtype=np.float64))) for p in params):
        raise UserError("the float model has NaN or infinite weights or input scaling (retrain it)")
    if not np.all(np.asarray(fm.input_std, dtype=np.float64) > 0):
        raise UserError("the float model's input scaling has a zero standard deviation (retrain it)")
    if x.ndim != 2 or x.shape[1] != fm.n_inputs or x.shape[0] == 0:
        raise UserError(f"calibration data must be rows of {fm.n_inputs} features, got shape {x.shape}")
    if not np.all(np.isfinite(x)):
        raise UserError("calibration data contains NaN or infinite values")


def _fit_str(text: str) -> str:
    """Names longer than the format's 255 UTF-8 bytes are cut (at a character boundary)."""
    return text.encode("utf-8")[:MAX_STR_BYTES].decode("utf-8", errors="ignore")


@dataclass
class _OutputSpec:
    """What a layer's outputs mean and how its accumulators get there."""

    scale: np.ndarray  # (n_out,) real value of one output step (relu, identity) or pre-activation step
    center: np.ndarray  # (n_out,) real value subtracted from the float bias (identity layers), else 0
    out_zero: int
    activation: str


def _output_spec(act: str, task: str, z: np.ndarray, a: np.ndarray, cal: Calibration) -> _OutputSpec:
    """Calibrated output quantization of one layer from its float pre-activations z and activations a."""
    n_out = z.shape[1]
    zeros = np.zeros(n_out)
    if act == "relu":  # uint8, zero 0, one scale per neuron
        _, hi = _range(a, cal.relu_percentile, axis=0)
        hi = hi * (1.0 + cal.relu_margin)
        fallback = max(float(np.max(hi)), 1e-6)  # a neuron dead on every calibration row
        return _OutputSpec(np.where(hi > 0, hi, fallback) / 255.0, zeros, 0, act)
    if act in LUT_OUTPUT:  # int8 affine pre-activation, one scale for the layer (one table)
        lo, hi = _range(z, cal.lut_percentile)
        pad = cal.lut_margin * (hi - lo)
        lo, hi = lo - pad, hi + pad
        active_lo, active_hi = LUT_ACTIVE_RANGE[act]
        # 0 stays representable (out_zero then lies in -128..127 even for a one-sided or constant range)
        lo, hi = max(min(float(lo), 0.0), active_lo), min(max(float(hi), 0.0), active_hi)
        if hi <= lo:
            lo, hi = active_lo, active_hi
        scale = (hi - lo) / 255.0
        return _OutputSpec(np.full(n_out, scale), zeros, int(round(-128 - lo / scale)), act)
    # identity, the int8 output: q = (z - center) / scale, center folded into the float bias
    if task == "classify":  # one shared scale so that argmax of the codes is argmax of the logits
        lo, hi = np.full(n_out, z.min()), np.full(n_out, z.max())
    else:
        lo, hi = z.min(axis=0), z.max(axis=0)
    pad = cal.output_margin * (hi - lo)
    lo, hi = lo - pad, hi + pad
    width = np.where(hi > lo, hi - lo, 1.0)
    scale = width / 255.0
    return _OutputSpec(scale, lo + 128.0 * scale, 0, act)


def _fit_multiplier(spec: _OutputSpec, s_acc: np.ndarray, where: str, warnings: list[str]) -> _OutputSpec:
    """Raise output scales so every multiplier s_acc / scale is representable (< 1), with a warning.
    Shared scales (a table's layer, classification logits) stay shared."""
    needed = s_acc / max_multiplier()
    if np.all(spec.scale >= needed):
        return spec
    warnings.append(
        f"{where}: output scale raised so the requantization multiplier stays below 1 "
        f"(the calibrated range is finer than the weights resolve)"
    )
    shared = spec.activation in LUT_OUTPUT or (spec.activation == "identity" and np.ptp(spec.scale) == 0)
    if shared:
        scale = np.full_like(spec.scale, max(float(spec.scale[0]), float(needed.max())))
    else:
        scale = np.maximum(spec.scale, needed)
    if spec.activation in LUT_OUTPUT:  # keep the range's low end where it was
        lo = spec.scale[0] * (-128 - spec.out_zero)
        return _OutputSpec(scale, spec.center, int(round(-128 - lo / scale[0])), spec.activation)
    center = spec.center
    if spec.activation == "identity":  # keep the range's low end where it was
        lo = spec.center - 128.0 * spec.scale
        center = lo + 128.0 * scale
    return _OutputSpec(scale, center, spec.out_zero, spec.activation)


def _next_tensor(spec: _OutputSpec) -> _Tensor:
    n = len(spec.scale)
    if spec.activation == "relu":
        return _Tensor(spec.scale, np.zeros(n, np.int64))
    scale, zero = LUT_OUTPUT[spec.activation]
    return _Tensor(np.full(n, scale), np.full(n, zero, np.int64))


def _table(spec: _OutputSpec) -> bytes | None:
    if spec.activation == "sigmoid":
        return sigmoid_lut(float(spec.scale[0]), spec.out_zero)
    if spec.activation == "tanh":
        return tanh_lut(float(spec.scale[0]), spec.out_zero)
    return None


def _correct_bias(
    layer: QuantLayer, codes: np.ndarray, z_float: np.ndarray, spec: _OutputSpec, s_acc: np.ndarray
) -> None:
    """Shift each bias by the mean difference between the integer pipeline's accumulator (in real units)
    and the float pre-activation over the calibration rows; kept only where the proof still holds."""
    acc = golden.accumulate(layer, codes).astype(np.float64)
    error = (acc * s_acc - (z_float - spec.center)).mean(axis=0)
    corrected = layer.bias - np.round(error / s_acc).astype(np.int64)
    ok = overflow_bound(layer.weights, corrected) < ACC_LIMIT
    layer.bias = np.where(ok, corrected, layer.bias)


def quantize(
    fm: FloatModel, X_calib_raw: np.ndarray, name: str = "", calibration: Calibration | None = None
) -> tuple[QuantModel, list[str]]:
    """Calibrate on raw feature rows and build the integer model; returns (model, warnings).

    Every activation tensor is uint8 codes u with real value scale * (u - zero). Each layer's float
    weights are first multiplied by its input tensor's scales (per feature or per neuron), then
    quantized to int8 per neuron; the zero points go into the integer bias. So per-feature input
    scales and per-neuron ReLU scales cost nothing on the board."""
    if fm.frontend is not None:
        return _quantize_windows(fm, X_calib_raw, name, calibration)
    cal = calibration or Calibration()
    x = np.asarray(X_calib_raw, dtype=np.float64)
    _check_float_model(fm, x)
    warnings: list[str] = []
    floats = fm.forward_layers(x)  # [(pre-activation, activation)] per layer

    # Input: per-feature affine over the standardized calibration values (0 always representable).
    lo, hi = _range(fm.standardize(x), cal.input_percentile, axis=0)
    pad = cal.input_margin * (hi - lo)
    lo = np.minimum(lo - pad, -cal.input_min_range)
    hi = np.maximum(hi + pad, cal.input_min_range)
    s_in, z_in = _affine(lo, hi, 0)
    with np.errstate(over="ignore", invalid="ignore"):  # checked just below
        in_scale = (1.0 / (np.asarray(fm.input_std, np.float64) * s_in)).astype(np.float32)
        in_offset = (z_in - np.asarray(fm.input_mean, np.float64) * in_scale).astype(np.float32)
    if not (np.all(np.isfinite(in_scale)) and np.all(np.isfinite(in_offset))):
        bad = fm.feature_names[int(np.flatnonzero(~np.isfinite(in_scale) | ~np.isfinite(in_offset))[0])]
        raise UserError(f"feature {bad!r}: its input scaling does not fit a float32 (extreme values?)")
    in_scale, in_offset = dyadic_inputs(in_scale, in_offset)
    tensor = _Tensor(s_in, z_in)

    model = QuantModel(
        task=fm.task,
        name=_fit_str(name),
        feature_names=[_fit_str(f) for f in fm.feature_names],
        labels=[_fit_str(label) for label in fm.labels],
        in_scale=in_scale,
        in_offset=in_offset,
        out_scale=np.ones(fm.n_outputs, np.float32),
        out_zero_point=np.zeros(fm.n_outputs, np.float32),
        layers=[],
    )
    codes = golden.quantize_input(model, x)  # the integer pipeline on the calibration rows
    spec = None
    for i, (w, b, act) in enumerate(zip(fm.weights, fm.biases, fm.activations)):
        where = "output layer" if act == "identity" else f"layer {i}"
        z_float, a_float = floats[i]
        if act == "identity" and fm.task == "anomaly":
            spec = _reconstruction_spec(s_in, z_in)
        else:
            spec = _output_spec(act, fm.task, z_float, a_float, cal)
        b_real = np.asarray(b, np.float64) - spec.center
        w_q, bias, s_acc = _quantize_weights(np.asarray(w, np.float64), b_real, tensor, i, warnings)
        fitted = _fit_multiplier(spec, s_acc, where, warnings)
        if fm.task == "anomaly" and act == "identity" and fitted is not spec:
            raise UserError(
                "output layer: the reconstruction's weights are too coarse for the input's code grid "
                "(retrain with a larger --weight-decay or smaller --hidden)"
            )
        spec = fitted
        if not OUT_ZERO_MIN <= spec.out_zero <= OUT_ZERO_MAX:
            raise UserError(f"{where}: pre-activation zero point {spec.out_zero} is out of range")
        mult, shift = _requant(s_acc, spec.scale)
        layer = QuantLayer(w_q.astype(np.int8), bias, mult, shift, act, spec.out_zero, _table(spec))
        if cal.bias_correction:
            _correct_bias(layer, codes, z_float, spec, s_acc)
        model.layers.append(layer)
        codes = golden.layer_forward(layer, codes)
        if act != "identity":
            tensor = _next_tensor(spec)

    # Output: real = out_scale * (q - out_zero_point); regression lands in the target's own units.
    out_scale, out_zero_point = spec.scale, -spec.center / spec.scale
    if fm.task == "regress":
        t_mean = np.asarray(fm.target_mean, np.float64).reshape(-1)
        t_std = np.asarray(fm.target_std, np.float64).reshape(-1)
        out_zero_point = out_zero_point - t_mean / (t_std * out_scale)
        out_scale = out_scale * t_std
    model.out_scale = out_scale.astype(np.float32)
    model.out_zero_point = out_zero_point.astype(np.float32)
    if fm.task == "anomaly":
        anomaly.attach_integer_score(model, fm, s_in, z_in)
    validate(model)
    return model, warnings


def _reconstruction_spec(s_in: np.ndarray, z_in: np.ndarray) -> _OutputSpec:
    """An anomaly model's output layer lands on the input's own code grid: q + 128 is the code the
    input would have for the reconstructed value (q = z / s_in + z_in - 128), so the board compares
    input and reconstruction codes directly (edgenn.anomaly)."""
    return _OutputSpec(np.asarray(s_in, np.float64), (128.0 - z_in) * s_in, 0, "identity")


def _quantize_windows(
    fm: FloatModel, X_windows: np.ndarray, name: str, calibration: Calibration | None
) -> tuple[QuantModel, list[str]]:
    """A model with a sensor front end: the network is calibrated on the INTEGER features of the raw
    windows (what the board feeds it), and the front end goes into the file (format version 2)."""
    fe = fm.frontend
    try:
        feats = frontend.features_int(fe, X_windows)
    except ValueError as exc:
        raise UserError(f"calibration data: {exc}") from None
    net = replace(fm, frontend=None, feature_names=fe.feature_names())
    model, warnings = quantize(net, feats.astype(np.float64), name, calibration)
    model.frontend = fe
    try:
        validate(model)
    except ModelFormatError as exc:
        raise UserError(
            f"{exc}: a feature's calibrated range is too wide for the board's small-int input scaling"
        ) from None
    return model, warnings
