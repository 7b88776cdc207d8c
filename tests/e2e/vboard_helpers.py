"""Helpers for end-to-end tests on the virtual board (imported by conftest.py and test modules)."""

from __future__ import annotations

import os
import select
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from edgenn.device.deploy import runtime_sources
from edgenn.errors import UserError

BIN = Path(sys.executable).parent
MPREMOTE = str(BIN / "mpremote")
STARTUP_TIMEOUT_S = 20


@dataclass
class RunningVBoard:
    port: str
    flash_dir: Path
    board: str
    process: subprocess.Popen

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def launch_vboard(flash_dir: Path, board: str = "esp32") -> RunningVBoard:
    """Start `edgenn vboard` in its own process and wait for its port line."""
    process = subprocess.Popen(
        [sys.executable, "-m", "edgenn.cli", "vboard", "--dir", str(flash_dir), "--board", board],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    ready, _, _ = select.select([process.stdout], [], [], STARTUP_TIMEOUT_S)
    line = process.stdout.readline().decode().strip() if ready else ""
    if not line.startswith("/dev/"):
        process.kill()
        _, err = process.communicate()
        raise RuntimeError(f"edgenn vboard did not start: {line!r} {err.decode()}")
    return RunningVBoard(port=line, flash_dir=flash_dir, board=board, process=process)


def mpremote(port: str, *args: str, timeout: float = 30, check: bool = True) -> subprocess.CompletedProcess:
    """Run the real mpremote command line against `port`."""
    result = subprocess.run(
        [MPREMOTE, "connect", port, *args], capture_output=True, timeout=timeout, text=True
    )
    if check and result.returncode != 0:
        raise AssertionError(
            f"mpremote {' '.join(args)} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}"
        )
    return result


def board_port() -> str | None:
    return os.environ.get("EDGENN_BOARD_PORT") or None


def edgenn(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    """Run the `edgenn` command line (as a user would) and capture its output."""
    return subprocess.run(
        [sys.executable, "-m", "edgenn.cli", *args], capture_output=True, text=True, timeout=timeout
    )


def runtime_or_skip() -> None:
    """Skip when the device runtime (firmware/edgenn*.py) is not in this checkout yet."""
    try:
        runtime_sources()
    except UserError as exc:
        pytest.skip(f"device runtime not available: {exc}")
