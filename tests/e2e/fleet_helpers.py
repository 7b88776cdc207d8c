"""Helpers for the fleet's end-to-end tests: virtual boards joined to a real mosquitto, and a paho
listener for what the boards publish (imported by tests/e2e/test_fleet_*.py)."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from pathlib import Path

import paho.mqtt.client as mqtt
from vboard_helpers import RunningVBoard, edgenn

from edgenn.device.client import BoardClient
from edgenn.fleet import board_lib

GROUP = "lab"


def need_board_lib() -> None:
    """The board's MQTT client comes from `make setup` (no downloads while tests run)."""
    import pytest

    if board_lib.installed_source() is None:
        pytest.skip(
            "the board's MQTT client is not installed: run `make setup` (python -m edgenn.fleet.board_lib)"
        )


def join(board: RunningVBoard, broker_url: str, key: Path, board_id: str, *extra: str):
    return edgenn(
        "fleet", "join", "--port", board.port, "--broker", broker_url, "--group", GROUP, "--id", board_id,
        "--key", str(key), *extra,
    )  # fmt: skip


def deployed_and_joined(
    start_vboard, flash: Path, model: Path, broker_url: str, key: Path, board_id: str, *extra: str
) -> RunningVBoard:
    board = start_vboard(flash)
    result = edgenn("deploy", str(model), "--port", board.port)
    assert result.returncode == 0, result.stderr
    result = join(board, broker_url, key, board_id, *extra)
    assert result.returncode == 0, result.stdout + result.stderr
    return board


class Listener:
    """A paho client that keeps the latest status per board and every prediction, per board."""

    def __init__(self, port: int, user: str | None = None, password: str | None = None) -> None:
        self.status: dict[str, dict] = {}
        self.preds: dict[str, list[dict]] = {}
        self.messages: dict[str, bytes] = {}
        self.lock = threading.Lock()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
        if user:
            self.client.username_pw_set(user, password)
        self.client.on_message = self._on_message
        self.client.on_connect = lambda c, *a: c.subscribe([("edgenn/#", 1), ("homeassistant/#", 1)])
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()

    def _on_message(self, client, userdata, msg) -> None:
        with self.lock:
            self.messages[msg.topic] = msg.payload
            parts = msg.topic.split("/")
            if len(parts) == 4 and parts[3] == "status" and msg.payload:
                self.status[parts[2]] = json.loads(msg.payload)
            elif len(parts) == 4 and parts[3] == "pred":
                self.preds.setdefault(parts[2], []).append(json.loads(msg.payload))

    def wait(self, what: Callable[[Listener], bool], timeout: float = 30.0, say: str = "") -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                if what(self):
                    return
            time.sleep(0.05)
        raise AssertionError(f"timed out waiting for {say or what}: status {self.status}")

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


def predict_many(port: str, n: int, n_inputs: int) -> None:
    """n predictions over serial, one request at a time, as a host would send them."""
    with BoardClient(port) as client:
        client.connect()
        for i in range(n):
            reply = client.request(",".join(str((i * 7 + j) % 11) for j in range(n_inputs)))
            assert "class" in reply, reply


def board_info(port: str) -> dict:
    with BoardClient(port) as client:
        client.connect()
        return client.request("info")
