"""edgenn_viper.codes and decode as the ESP32 runs them: compiled by mpy-cross for xtensawin and
rv32imc and run in qemu-xtensa / unicorn (32-bit registers that wrap as on the chip). Every value the
fast path settles must get golden's code, values it hands back must be few (the exact bytecode path
finishes them), NaN and infinity must come back as refused, and decode must split every value as the
host does. The values are those of test_input_codes (boundaries, neighbours, all bit patterns, tiny)."""

from __future__ import annotations

import struct

import numpy as np
import pytest
from mpy_helpers import FIRMWARE
from test_input_codes import float32_values, scaling_model
from test_machinecode import need_emulator

from edgenn import golden, modelfile
from edgenn.machinecode import kernels
from edgenn.machinecode.memory import Call

ROWS = 2000  # per feature (x 16 features, one call each)


@pytest.fixture(scope="module")
def case(tmp_path_factory, unix_py) -> tuple[modelfile.QuantModel, np.ndarray, np.ndarray, list[int]]:
    directory = tmp_path_factory.mktemp("input_mc")
    model = scaling_model()
    modelfile.save(model, directory / "scalings.enn")
    result = unix_py.run("print_input_params.py", directory / "scalings.enn")
    assert result.returncode == 0, result.stderr
    q = result.json_lines()[0]["q"]
    x = float32_values(model, ROWS, seed=7)
    x[-3:, 0] = np.array([np.nan, np.inf, -np.inf], dtype=np.float32)
    want = golden.quantize_input(model, np.where(np.isfinite(x), x, 0).astype(np.float64))
    return model, x, want, q


@pytest.mark.parametrize(
    "arch", [pytest.param(a, marks=pytest.mark.slow) if a == "rv32imc" else a for a in kernels.ARCHES]
)
def test_codes_machine_code_equals_golden(case, arch) -> None:
    need_emulator(arch)
    model, x, want, q = case
    mpy_bytes = kernels.compile_source(FIRMWARE / "edgenn_viper.py", arch)
    buffers, calls, where = [], [], []
    for d in range(model.n_inputs):
        params = struct.pack("<2i", q[2 * d], q[2 * d + 1])
        for r in range(len(x)):
            base = len(buffers)
            buffers += [x[r, d].astype("<f4").tobytes(), params, bytes(1), struct.pack("<4i", 0, 0, 1, 0)]
            calls.append(Call("codes", [base, base + 1, base + 2, base + 3]))
            where.append((r, d))
    result = kernels.run_calls(arch, mpy_bytes, ["codes"], buffers, calls, count=False)
    settled = handed_back = refused = 0
    for i, (r, d) in enumerate(where):
        ret = result.returns[i] - (1 << 32) if result.returns[i] >= 1 << 31 else result.returns[i]
        if not np.isfinite(x[r, d]):
            assert ret == 0, (arch, x[r, d], ret)  # 4 * 0: feature 0 refused
            refused += 1
        elif ret == 1:  # 4 * 0 + 1: the exact path decides
            handed_back += 1
        else:
            assert ret == -1, (arch, r, d, ret)
            code = result.buffers[4 * i + 2][0]
            assert code == want[r, d], (
                f"{arch}: feature {d} x={x[r, d]!r}: machine code {code}, golden {want[r, d]}"
            )
            settled += 1
    assert refused == 3
    # half the values are 0..4 ulps from a code boundary: those within 2**(1-f) of one come back
    assert 0 < handed_back < 0.15 * len(calls)
    assert settled + handed_back + refused == len(calls)


@pytest.mark.parametrize("arch", list(kernels.ARCHES))
def test_decode_machine_code_splits_every_value(case, arch) -> None:
    need_emulator(arch)
    _, x, _, _ = case
    mpy_bytes = kernels.compile_source(FIRMWARE / "edgenn_viper.py", arch)
    values = x[:, :4].ravel()
    buffers, calls = [], []
    for i, v in enumerate(values):
        buffers += [v.astype("<f4").tobytes(), struct.pack("<4i", 0, 0, 1, 0), bytes(16)]
        calls.append(Call("decode", [3 * i, 3 * i + 1, 3 * i + 2]))
    result = kernels.run_calls(arch, mpy_bytes, ["decode"], buffers, calls, count=False)
    for i, v in enumerate(values):
        if not np.isfinite(v):
            assert result.returns[i] == 0
            continue
        assert result.returns[i] == 1
        neg, mh, ml, e = struct.unpack("<4i", result.buffers[3 * i + 2])
        assert (-1.0) ** neg * float((mh << 16) | ml) * 2.0**e == float(v), (arch, v, neg, mh, ml, e)
