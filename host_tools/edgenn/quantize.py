"""Float model -> integer model (post-training quantization with calibration).

Scheme (docs/model-format.md, ../shared/notes/quantization.md): int8 symmetric weights with one scale
per neuron, int32 biases with every zero point folded in, uint8 activations, 15-bit requantization
multipliers, 256-entry tables for sigmoid and tanh, int8 outputs.
"""

from __future__ import annotations

import math

import numpy as np

from edgenn.modelfile import MULT_MAX, SHIFT_MAX, SHIFT_MIN

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
