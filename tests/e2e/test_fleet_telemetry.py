"""Predictions as telemetry: five virtual boards (esp32 profile) each make 2,000 predictions over serial
and publish every one through a real mosquitto with QoS 1; `edgenn fleet watch --json` counts them, none
lost while connected, and the boards' heap stays flat. A 10 s broker outage loses at most the bounded
queue's overflow, and the board's status says how many it dropped."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from fleet_helpers import GROUP, Listener, board_info, deployed_and_joined, need_board_lib, predict_many
from vboard_helpers import edgenn, runtime_or_skip

from edgenn import modelfile
from edgenn.demo import train_and_quantize

pytestmark = pytest.mark.slow

IDS = ["t1", "t2", "t3", "t4", "t5"]
PER_BOARD = 2000
QUEUE = 64  # firmware/edgenn_fleet.py _QUEUE


@pytest.fixture(scope="module")
def telemetry_fleet(tmp_path_factory):
    from mqtt_broker import Mosquitto, have_mosquitto

    if not have_mosquitto():
        pytest.skip("needs Debian's mosquitto")
    runtime_or_skip()
    need_board_lib()
    root = tmp_path_factory.mktemp("telemetry")
    broker = Mosquitto(root / "broker")
    broker.start()
    key = root / "fleet.key"
    assert edgenn("fleet", "keygen", "-o", str(key)).returncode == 0
    _dataset, _fm, qm, _warnings = train_and_quantize("iris", (8,), seed=1)
    model = root / "iris.enn"
    modelfile.save(qm, model)
    started = []

    def start(flash: Path):
        from vboard_helpers import launch_vboard

        board = launch_vboard(flash, "esp32")
        started.append(board)
        return board

    boards = {i: deployed_and_joined(start, root / i, model, broker.url, key, i) for i in IDS}
    yield broker, boards, qm.n_inputs
    for board in started:
        board.stop()
    broker.stop()


def test_five_boards_2000_predictions_each_none_lost_heap_flat(telemetry_fleet) -> None:
    broker, boards, n_inputs = telemetry_fleet
    heap_before = {i: board_info(b.port)["heap_free"] for i, b in boards.items()}
    watch = subprocess.Popen(
        [sys.executable, "-m", "edgenn.cli", "fleet", "watch", "--broker", broker.url, "--group", GROUP,
         "--json", "--count", str(len(IDS) * PER_BOARD), "--seconds", "240"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    time.sleep(2)  # watch subscribed (it says so on stderr; a QoS 1 subscription before the first one)
    errors: list[BaseException] = []

    def run(port: str) -> None:
        try:
            predict_many(port, PER_BOARD, n_inputs)
        except BaseException as exc:  # noqa: BLE001 - reported by the test thread below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(b.port,)) for b in boards.values()]
    t0 = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    seconds = time.monotonic() - t0
    assert not errors, errors
    out, err = watch.communicate(timeout=240)
    lines = [json.loads(line) for line in out.splitlines()]
    per_board = {i: [p["n"] for p in lines if p["id"] == i] for i in IDS}
    for i, ns in per_board.items():
        assert len(ns) == PER_BOARD, (i, len(ns), err)
        assert ns == list(range(ns[0], ns[0] + PER_BOARD)), i  # consecutive: none lost, in order
    assert not any("lost" in p for p in lines)
    assert "0 lost" in err
    heap_after = {i: board_info(b.port)["heap_free"] for i, b in boards.items()}
    for i in IDS:  # flat: what 2,000 publishes leave behind after a collection is a few hundred bytes
        assert abs(heap_after[i] - heap_before[i]) <= 512, (i, heap_before[i], heap_after[i])
    print(
        f"\n{len(IDS)} boards x {PER_BOARD} predictions through the broker in {seconds:.1f} s; "
        f"heap free before {sorted(heap_before.values())}, after {sorted(heap_after.values())}"
    )


def test_broker_outage_loses_only_the_queue_overflow_and_says_how_many(telemetry_fleet) -> None:
    broker, boards, n_inputs = telemetry_fleet
    board = boards["t1"]
    before = Listener(broker.port)
    try:
        before.wait(lambda s: "t1" in s.status, say="t1's status")
        dropped_before = before.status["t1"]["dropped"]
    finally:
        before.close()
    broker.stop()
    t_stop = time.monotonic()
    made = 150
    predict_many(board.port, made, n_inputs)  # the serial server keeps serving meanwhile
    time.sleep(max(0.0, 10 - (time.monotonic() - t_stop)))  # a 10 s outage
    broker.start()
    # subscribed within milliseconds; the board retries on a 0.5-5 s backoff, so it comes back after
    listener = Listener(broker.port)
    try:
        listener.wait(lambda s: len(s.preds.get("t1", [])) >= QUEUE, timeout=30, say="the queue flushed")
        listener.wait(lambda s: "t1" in s.status, say="t1's status after the outage")
    finally:
        listener.close()
    got = [p["n"] for p in listener.preds["t1"]]
    assert len(got) == QUEUE and got == list(range(got[0], got[0] + QUEUE))  # the newest 64, in order
    assert listener.status["t1"]["dropped"] - dropped_before == made - QUEUE
    assert board_info(board.port)["model"] == "iris"
