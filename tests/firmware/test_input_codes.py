"""Input codes from the bits of float32/float64/int16/int32 features (edgenn_viper.codes, its portable
twin, and the exact small-int path for values near a code boundary) equal the golden model's float64
codes for every value, allocate nothing (every call runs under micropython.heap_lock()), and refuse
NaN and infinity. Checked inside the unix port (viper and portable kernels) and the 32-bit WebAssembly
build (portable kernel, 31-bit small ints like an ESP32) on 100,000 float32 values per feature
scaling: boundary values and their neighbours one ulp apart, the whole float32 range by bit pattern,
subnormals, +-0, and scalings at the limits of the format (A up to 2**20 - 1, S from 1 to 30, |B| up
to 2**29, c + 0.5 an integer, where float64's double rounding lifts values just below a boundary)."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
from mpy_helpers import WasmPort, need_wasm

from edgenn import golden, modelfile, zoo
from edgenn.quantize import dyadic_inputs

ROWS = 100_000

# (A, S, B): in_scale = A / 2**S, in_offset + 0.5 = B / 2**S
EXTREME_SCALINGS = [
    (1, 1, 0),
    (0xFFFFF, 30, 2**28 + 2**5),
    (3, 30, 2**28),
    (1, 30, 2**29 - 2**6),
    (12345, 16, 128 * 2**16),  # c + 0.5 = 128: tiny negative x rounds up to 128 in float64
    (2**19 + 1, 20, 2**20),  # c + 0.5 = 1 (the k = 1 rounding rule)
    (777, 10, 255 * 2**10),  # c + 0.5 = 255
    (0x9E377, 8, -(2**29 - 2**8)),  # |c| ~ 2**21: cancellation
    (0xFFFFF, 1, 1),  # in_scale ~ 2**19
    (5, 3, -3),
    (0xC0001, 22, 3 * 2**21 + 1),
    (0xFFFFF, 21, 100 * 2**21),
]


def scaling_model(seed: int = 3) -> modelfile.QuantModel:
    """A classifier whose features have the extreme scalings above plus four of the quantizer's own."""
    base = zoo.random_model(np.random.default_rng(seed), 4, [8], ["relu"], 3, "classify")
    typical_scale, typical_offset = dyadic_inputs(base.in_scale, base.in_offset)
    scale = [np.float32(a / 2.0**s) for a, s, _ in EXTREME_SCALINGS]
    offset = [np.float32(b / 2.0**s - 0.5) for _, s, b in EXTREME_SCALINGS]
    for (a, s, b), sc, of in zip(EXTREME_SCALINGS, scale, offset, strict=True):
        assert Fraction(float(sc)) == Fraction(a, 2**s)
        assert Fraction(float(of)) == Fraction(b, 2**s) - Fraction(1, 2)
    n = len(scale) + 4
    model = zoo.random_model(np.random.default_rng(seed), n, [8], ["relu"], 3, "classify")
    model.in_scale = np.array(scale + list(typical_scale), dtype=np.float32)
    model.in_offset = np.array(offset + list(typical_offset), dtype=np.float32)
    modelfile.validate(model)
    return model


def float32_values(model: modelfile.QuantModel, rows: int, seed: int = 0) -> np.ndarray:
    """(rows, n_inputs) float32: per feature, values around every code boundary and 0..4 ulps from
    them, uniform over the code range, uniform over all finite bit patterns, tiny values, specials."""
    rng = np.random.default_rng(seed)
    n = model.n_inputs
    a = model.in_scale.astype(np.float64)
    c = model.in_offset.astype(np.float64)
    out = np.empty((rows, n), dtype=np.float32)
    for d in range(n):
        k = rng.integers(-2, 259, rows).astype(np.float64)
        edge = ((k - 0.5 - c[d]) / a[d]).astype(np.float32)
        steps = rng.integers(-4, 5, rows).astype(np.int64)
        bits = edge.view(np.int32).astype(np.int64)
        # step in the ordering of float32 values (sign-magnitude bits), never onto NaN/inf
        order = np.where(bits < 0, -(bits & 0x7FFFFFFF), bits) + steps
        order = np.clip(order, -0x7F7FFFFF, 0x7F7FFFFF)
        near = np.where(order < 0, (-order) | -0x80000000, order).astype(np.int32).view(np.float32)
        lo, hi = (-10.0 - c[d]) / a[d], (265.0 - c[d]) / a[d]
        uniform = rng.uniform(lo, hi, rows).astype(np.float32)
        patterns = rng.integers(0, 2**32, rows, dtype=np.uint64).astype(np.uint32)
        patterns = np.where((patterns & 0x7F800000) == 0x7F800000, patterns & 0x807FFFFF, patterns)
        anybits = patterns.view(np.float32)
        tiny_bits = rng.integers(0, 2**27, rows) | (rng.integers(0, 2, rows) << 31)
        tiny = tiny_bits.astype(np.uint32).view(np.float32)
        pick = rng.integers(0, 10, rows)
        col = np.where(pick < 5, near, np.where(pick < 7, uniform, np.where(pick < 9, anybits, tiny)))
        specials = np.array(
            [
                0.0,
                -0.0,
                1e-45,
                -1e-45,
                1.1754942e-38,
                -1.1754942e-38,
                1.1754944e-38,
                3.4028235e38,
                -3.4028235e38,
                1.0,
                -1.0,
                16777216.0,
                -16777217.0,
            ],
            dtype=np.float32,
        )
        col[: len(specials)] = specials
        out[:, d] = col
    assert np.isfinite(out).all()
    return out


def exact_codes(model: modelfile.QuantModel, x: np.ndarray) -> np.ndarray:
    """clamp(floor(x * in_scale + in_offset + 0.5)) in exact rational arithmetic (no float rounding)."""
    codes = np.empty(x.shape, dtype=np.int64)
    for d in range(x.shape[1]):
        a, c = Fraction(float(model.in_scale[d])), Fraction(float(model.in_offset[d]))
        for i, v in enumerate(x[:, d]):
            codes[i, d] = min(255, max(0, (Fraction(float(v)) * a + c + Fraction(1, 2)).__floor__()))
    return codes


@pytest.fixture(scope="module")
def case(tmp_path_factory) -> tuple[Path, modelfile.QuantModel, np.ndarray, np.ndarray]:
    directory = tmp_path_factory.mktemp("input_codes")
    model = scaling_model()
    modelfile.save(model, directory / "scalings.enn")
    x = float32_values(model, ROWS)
    (directory / "values.f32").write_bytes(x.astype("<f4").tobytes())
    return directory, model, x, golden.quantize_input(model, x.astype(np.float64))


def board_codes(result, n_rows: int) -> tuple[np.ndarray, dict]:
    assert result.returncode == 0, result.stderr[-2000:]
    lines = result.stdout.splitlines()
    summary = result.json_lines()[-1]
    codes = np.array([list(bytes.fromhex(line)) for line in lines[:n_rows]], dtype=np.uint8)
    return codes, summary


def assert_equal_codes(board: np.ndarray, want: np.ndarray, x: np.ndarray) -> None:
    bad = np.argwhere(board != want)
    if len(bad):
        r, d = bad[0]
        raise AssertionError(
            f"{len(bad)} codes differ from golden; first: feature {d} x={x[r, d]!r} "
            f"board {board[r, d]} golden {want[r, d]}"
        )


def test_the_values_reach_float64_double_rounding(case) -> None:
    """The values include the cases where golden's float64 result differs from exact arithmetic
    (V just below an integer, lifted by rounding) -- the ones a float32 board gets wrong."""
    _, model, x, want = case
    approx = np.floor(x.astype(np.float64) * model.in_scale.astype(np.float64) + model.in_offset + 0.5)
    close = np.abs(x.astype(np.float64) * model.in_scale + model.in_offset + 0.5 - np.round(approx)) < 1e-9
    rows = np.flatnonzero(close.any(axis=1))[:4000]
    exact = exact_codes(model, x[rows])
    lifted = int((exact != want[rows]).sum())
    assert lifted >= 20, lifted
    assert (want[rows].astype(np.int64) - exact).max() == 1  # rounding only ever lifts by one


@pytest.mark.parametrize("kernel", ["viper", pytest.param("portable", marks=pytest.mark.slow)])
def test_float32_codes_equal_golden_unix(unix_py, case, kernel) -> None:
    directory, model, x, want = case
    result = unix_py.run(
        "check_input_codes.py", directory / "scalings.enn", directory / "values.f32", "f", kernel, "list"
    )
    board, summary = board_codes(result, ROWS)
    assert summary == {"rows": ROWS, "kernel": kernel, "list_rows": ROWS, "list_mismatches": 0, "refused": 3}
    assert_equal_codes(board, want, x)


@pytest.mark.slow
def test_float32_codes_equal_golden_wasm(runtime_py, case) -> None:
    need_wasm()
    directory, model, x, want = case
    port = WasmPort(runtime_py, {directory: "/codes"})
    result = port.run("check_input_codes.py", "/codes/scalings.enn", "/codes/values.f32", "f", "portable")
    board, summary = board_codes(result, ROWS)
    assert summary == {"rows": ROWS, "kernel": "portable", "list_rows": 0, "list_mismatches": 0, "refused": 3}
    assert_equal_codes(board, want, x)


def other_values(model: modelfile.QuantModel, typecode: str, seed: int = 1) -> np.ndarray:
    """int16: every value; int32: the extremes, around 2**24 and around every code boundary; float64:
    float32 values (the integer path), arbitrary doubles (the float formula), huge and tiny exponents."""
    rng = np.random.default_rng(seed)
    n = model.n_inputs
    if typecode == "h":
        return np.stack([rng.permutation(np.arange(-(2**15), 2**15)) for _ in range(n)], axis=1).astype(
            np.int16
        )
    rows = 20_000
    a = model.in_scale.astype(np.float64)
    c = model.in_offset.astype(np.float64)
    k = rng.integers(-2, 259, (rows, n))
    edge = (k - 0.5 - c) / a
    if typecode == "i":
        near = np.clip(np.round(edge), -(2**31), 2**31 - 1).astype(np.int64) + rng.integers(-2, 3, (rows, n))
        spread = rng.integers(-(2**31), 2**31, (rows, n))
        around = (rng.choice([-1, 1], (rows, n)) * (2**24 + rng.integers(-3, 4, (rows, n)))).astype(np.int64)
        pick = rng.integers(0, 3, (rows, n))
        out = np.where(pick == 0, near, np.where(pick == 1, spread, around))
        out[:4] = np.array([-(2**31), 2**31 - 1, 0, -1])[:, None]
        return np.clip(out, -(2**31), 2**31 - 1).astype(np.int32)
    doubles = edge + rng.normal(0.0, 1e-9, (rows, n)) * np.abs(edge)
    as_f32 = edge.astype(np.float32).astype(np.float64)
    powers = np.ldexp(rng.choice([-1.0, 1.0], (rows, n)), rng.integers(-1070, 1000, (rows, n)))
    pick = rng.integers(0, 3, (rows, n))
    return np.where(pick == 0, doubles, np.where(pick == 1, as_f32, powers))


@pytest.mark.parametrize("typecode", ["h", "i", "d"])
@pytest.mark.parametrize("kernel", ["viper", "portable"])
def test_int16_int32_float64_codes_equal_golden_unix(unix_py, tmp_path, typecode, kernel) -> None:
    model = scaling_model()
    modelfile.save(model, tmp_path / "scalings.enn")
    x = other_values(model, typecode)
    (tmp_path / "values.bin").write_bytes(x.astype(x.dtype.newbyteorder("<")).tobytes())
    result = unix_py.run(
        "check_input_codes.py", tmp_path / "scalings.enn", tmp_path / "values.bin", typecode, kernel, "list"
    )
    board, summary = board_codes(result, len(x))
    assert summary["rows"] == summary["list_rows"] == len(x) and summary["list_mismatches"] == 0
    assert_equal_codes(board, golden.quantize_input(model, x.astype(np.float64)), x)
