"""The quantizer's dyadic input scaling: for integer features the board's small-int form
(x * A + B) >> S equals the golden model's float64 floor(x * a + c + 0.5) exactly."""

from __future__ import annotations

import numpy as np

from edgenn.quantize import dyadic_input_scaling


def fixed_point(a: float, c: float) -> tuple[int, int, int] | None:
    """(A, B, S) as the board derives them (smallest S), or None if the board keeps floats."""
    shift = next((s for s in range(1, 31) if (a * 2**s).is_integer() and (c * 2**s).is_integer()), None)
    if shift is None:
        return None
    big_a, big_b = int(a * 2**shift), int(c * 2**shift + 2 ** (shift - 1))
    return (big_a, big_b, shift) if 1 <= big_a < 2**20 and abs(big_b) < 2**29 else None


def test_integer_features_are_exact_in_small_ints() -> None:
    rng = np.random.default_rng(1)
    usable = 0
    for _ in range(5000):
        a = float(np.float32(10 ** rng.uniform(-5, 3)))
        c = float(np.float32(rng.normal() * 10 ** rng.uniform(-2, 5)))
        a2, c2 = dyadic_input_scaling(a, c)
        assert float(np.float32(a2)) == a2 and float(np.float32(c2)) == c2  # still float32 values
        assert abs(a2 - a) <= a * 2**-11  # at least 12 bits of the scale are kept
        params = fixed_point(a2, c2)
        if params is None:
            continue
        usable += 1
        big_a, big_b, shift = params
        lim = (2**30 - 1 - abs(big_b)) // big_a  # the board's small-int bound
        x = np.concatenate([rng.integers(-lim, lim + 1, size=60), [-lim, lim, 0, 1, -1]])
        assert np.all(np.abs(x * big_a) + abs(big_b) < 2**30)
        golden = np.floor(x.astype(np.float64) * a2 + c2 + 0.5)
        np.testing.assert_array_equal((x * big_a + big_b) >> shift, golden)
    assert usable > 3000  # typical scalings get the exact integer path


def test_typical_sensor_scaling_keeps_its_precision() -> None:
    # a 12-bit ADC feature: mean 2000, std 600, input scale 1/40 -> a ~ 0.0417, c ~ -83
    a, c = float(np.float32(1 / 24)), float(np.float32(-2000 / 24 + 128))
    a2, c2 = dyadic_input_scaling(a, c)
    big_a, big_b, shift = fixed_point(a2, c2)
    assert (2**30 - 1 - abs(big_b)) // big_a >= 4095  # every ADC reading takes the integer path
    assert abs(a2 - a) / a < 1e-5 and abs(c2 - c) < 1e-3
