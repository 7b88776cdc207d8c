"""The board's 31-bit requantization equals the exact int64 form for every |acc| < 2**29, mult 1..32767,
shift 15..29, and none of its intermediates reaches 2**30 (requant_device raises if one does)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edgenn.golden import requant_device, requant_golden
from edgenn.modelfile import ACC_LIMIT, MULT_MAX, MULT_MIN, SHIFT_MAX, SHIFT_MIN
from edgenn.quantize import split_multiplier

ACC_MAX = ACC_LIMIT - 1
ROWS = 100_000  # accumulators checked per hypothesis example


def boundary_accs() -> np.ndarray:
    """0, +-1, +-(2**29 - 1), powers of two and their neighbours, the 15-bit split boundaries."""
    values = {0, 1, -1, ACC_MAX, -ACC_MAX, 2**15 - 1, 2**15, 2**15 + 1, 0x7FFF * 3}
    for k in range(29):
        for v in (2**k - 1, 2**k, 2**k + 1):
            values.update({v, -v})
    return np.array(sorted(v for v in values if abs(v) <= ACC_MAX), dtype=np.int64)


def assert_forms_agree(acc: np.ndarray, mult: np.ndarray, shift: np.ndarray) -> None:
    golden = requant_golden(acc, mult, shift)
    device = requant_device(acc, mult, shift)  # raises AssertionError if an intermediate reaches 2**30
    mismatch = np.flatnonzero(golden != device)
    assert mismatch.size == 0, (acc[mismatch[:5]], np.broadcast_to(mult, acc.shape)[mismatch[:5]])


def test_every_multiplier_and_shift_on_boundary_accumulators() -> None:
    """Exhaustive over the parameter range: 32767 mults x 15 shifts x ~180 boundary accumulators."""
    accs = boundary_accs()
    mult = np.arange(MULT_MIN, MULT_MAX + 1, dtype=np.int64)
    acc_grid, mult_grid = (a.ravel() for a in np.meshgrid(accs, mult, indexing="ij"))
    for shift in range(SHIFT_MIN, SHIFT_MAX + 1):
        assert_forms_agree(acc_grid, mult_grid, np.full_like(acc_grid, shift))


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 2**32 - 1), st.integers(MULT_MIN, MULT_MAX), st.integers(SHIFT_MIN, SHIFT_MAX))
def test_random_accumulators_for_one_parameter_pair(seed: int, mult: int, shift: int) -> None:
    acc = np.random.default_rng(seed).integers(-ACC_MAX, ACC_MAX + 1, ROWS, dtype=np.int64)
    assert_forms_agree(acc, np.int64(mult), np.int64(shift))


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 2**32 - 1), st.integers(1, 29))
def test_random_accumulators_and_parameters(seed: int, magnitude_bits: int) -> None:
    """Accumulators of every magnitude (small ones too) with per-element random mult and shift."""
    rng = np.random.default_rng(seed)
    limit = min(2**magnitude_bits, ACC_MAX)
    acc = rng.integers(-limit, limit + 1, ROWS, dtype=np.int64)
    mult = rng.integers(MULT_MIN, MULT_MAX + 1, ROWS, dtype=np.int64)
    shift = rng.integers(SHIFT_MIN, SHIFT_MAX + 1, ROWS, dtype=np.int64)
    assert_forms_agree(acc, mult, shift)


def test_golden_form_rounds_half_up() -> None:
    """(acc * mult + 2**(t-1)) >> t is round-half-up of the exact product acc * mult / 2**t."""
    acc = np.array([3, -3, 5, -5, 1, -1, 2**20 + 7], dtype=np.int64)
    got = requant_golden(acc, np.int64(2**14), np.int64(16))  # multiplier 1/4
    exact = [np.floor(a / 4 + 0.5) for a in acc]
    assert got.tolist() == exact


def test_device_form_refuses_accumulators_outside_the_proof() -> None:
    with pytest.raises(AssertionError, match="accumulator"):
        requant_device(np.array([ACC_LIMIT]), np.int64(1), np.int64(15))
    with pytest.raises(AssertionError, match="accumulator"):
        requant_device(np.array([-ACC_LIMIT]), np.int64(MULT_MAX), np.int64(29))


@pytest.mark.parametrize("m", [0.9999, 0.75, 0.5, 0.3, 1e-3, 2**-15, 3.1e-5, 1e-7, 1e-12])
def test_split_multiplier_is_accurate(m: float) -> None:
    mult, shift = split_multiplier(m)
    assert MULT_MIN <= mult <= MULT_MAX and SHIFT_MIN <= shift <= SHIFT_MAX
    if shift < SHIFT_MAX:  # full 15-bit mantissa: relative error at most 2**-15
        assert 2**14 <= mult and abs(mult / 2**shift - m) <= m * 2**-15
    else:  # clamped at the smallest step
        assert abs(mult / 2**shift - m) <= 2**-30 or mult == 1


def test_split_multiplier_refuses_one_and_above() -> None:
    for m in (1.0, 0.99999, 3.0):
        with pytest.raises(ValueError, match="cannot be represented"):
            split_multiplier(m)
    with pytest.raises(ValueError, match="positive"):
        split_multiplier(0.0)
