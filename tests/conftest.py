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


@pytest.fixture
def mosquitto(tmp_path_factory):
    """A fresh anonymous broker on 127.0.0.1 (tests/mqtt_broker.py); `.url`, `.stop()`, `.start()`."""
    from mqtt_broker import Mosquitto, have_mosquitto

    if not have_mosquitto():
        pytest.skip("needs Debian's mosquitto: apt-get install mosquitto (.ci/run installs it)")
    broker = Mosquitto(tmp_path_factory.mktemp("broker"))
    broker.start()
    yield broker
    broker.stop()
