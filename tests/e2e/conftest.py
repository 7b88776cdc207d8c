"""Fixtures for end-to-end tests: a virtual board started as its own process (`edgenn vboard`).

    def test_something(vboard):            # a fresh board with an empty flash directory
        mpremote(vboard.port, "ls")          # from vboard_helpers: the real mpremote CLI

    def test_other(start_vboard, tmp_path):  # several boards, or one on a prepared flash directory
        board = start_vboard(tmp_path / "flash", board="esp32")

Real boards: tests marked @pytest.mark.board run only when EDGENN_BOARD_PORT names a serial port
(the skip lives in tests/conftest.py, so it covers every area).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from vboard_helpers import RunningVBoard, launch_vboard, runtime_or_skip


@pytest.fixture
def start_vboard() -> Iterator:
    started: list[RunningVBoard] = []

    def start(flash_dir: Path, board: str = "esp32") -> RunningVBoard:
        vb = launch_vboard(Path(flash_dir), board)
        started.append(vb)
        return vb

    yield start
    for vb in started:
        vb.stop()


@pytest.fixture
def vboard(start_vboard, tmp_path: Path) -> RunningVBoard:
    return start_vboard(tmp_path / "flash")


@pytest.fixture(scope="module")
def module_vboard(tmp_path_factory) -> Iterator[RunningVBoard]:
    """One esp32 virtual board shared by a module's tests (they leave it as they found it)."""
    runtime_or_skip()
    vb = launch_vboard(tmp_path_factory.mktemp("flash"), "esp32")
    yield vb
    vb.stop()
