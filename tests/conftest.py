"""Shared by every test area: tests marked `board` need a real ESP32 and are skipped without one."""

import os

import pytest


def pytest_collection_modifyitems(config, items) -> None:
    if os.environ.get("EDGENN_BOARD_PORT"):
        return
    skip = pytest.mark.skip(reason="needs a real ESP32: set EDGENN_BOARD_PORT=/dev/ttyUSB0 (or similar)")
    for item in items:
        if "board" in item.keywords:
            item.add_marker(skip)
