"""`edgenn doctor --deep` on the ESP32's and the C3's own machine code: the deep check's zoo through every
kernel compiled for xtensawin (qemu-xtensa) and rv32imc (unicorn), byte for byte against golden."""

from __future__ import annotations

import dataclasses

import pytest

from edgenn.device import deep
from edgenn.machinecode import xtensa


@pytest.mark.slow
@pytest.mark.parametrize("arch", ["xtensawin", "rv32imc"])
def test_the_deep_check_passes_on_the_boards_machine_code(arch: str) -> None:
    if arch == "xtensawin" and xtensa.qemu_path() is None:
        pytest.skip("qemu-xtensa is missing (Debian package qemu-user; .ci/run installs it)")
    cases = deep.cases()
    assert len(cases) >= 20  # every activation, 0..4 hidden layers, extreme and edge parameters
    report = deep.run_in_emulator(arch, cases)
    assert report.kernels == ["viper", "asm"]
    assert len(report.checks) == 2 * len(cases)
    assert report.ok, [(c.kernel, c.case, c.detail()) for c in report.failures()]
    assert all(c.instructions and c.instructions > 0 for c in report.checks)
    lines = deep.deep_lines(report)
    assert f"  viper    {len(cases)}/{len(cases)} models bit-exact" in lines


def test_a_wrong_byte_is_a_failure_named_in_the_report() -> None:
    case = deep.cases()[0]
    want = bytearray(case.golden_bytes())
    want[-1] ^= 1
    check = deep._compare(case, "viper", bytes(want))
    assert not check.ok and check.mismatched_bytes == 1
    report = deep.DeepReport("board", ["viper"], "not installed", [check])
    assert not report.ok
    assert f"  FAILED viper on {case.name}: 1 byte(s) differ from golden" in deep.deep_lines(report)
    short = deep._compare(dataclasses.replace(case), "viper", bytes(want[:-1]))
    assert not short.ok and "bytes, golden" in short.error
