"""`edgenn fleet watch` (predictions as they arrive, gaps in `n` as losses) and the prediction rate of
`fleet status`, with simulated boards publishing real golden predictions through mosquitto."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time

import numpy as np
import pytest
from fleet_sim import KEY, OLD, ZOO, edgenn
from on_terminal import run_on_terminal

from edgenn import golden
from edgenn.fleet.simboard import SimFleet
from edgenn.fleet.url import parse_broker_url

MODEL = ZOO["relu_2"]  # what OLD holds


@pytest.fixture
def fleet(mosquitto, tmp_path, request):
    group = f"w{abs(hash(request.node.name)) % 10**8}"
    with SimFleet(parse_broker_url(mosquitto.url), group, tmp_path / "boards", KEY) as sim:
        sim.add("b1", model=OLD)
        sim.add("b2", model=OLD)
        assert sim.wait(lambda: all(b.online for b in sim.boards.values()), 20)
        yield sim


def start_watch(mosquitto, fleet, *extra: str) -> subprocess.Popen:
    """`fleet watch` in the background, returned once it has subscribed (its first stderr line)."""
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "edgenn.cli",
            "fleet",
            "watch",
            "--broker",
            mosquitto.url,
            "--group",
            fleet.group,
            *extra,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    first = proc.stderr.readline()
    assert "(Ctrl-C stops)" in first, first + proc.stderr.read()
    return proc


def rows(n: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(n, MODEL.n_inputs)).astype(np.float32)


def test_watch_json_counts_every_prediction_and_reports_a_gap(mosquitto, fleet) -> None:
    watch = start_watch(mosquitto, fleet, "--json", "--count", "30", "--seconds", "60")
    b1, b2 = fleet.boards["b1"], fleet.boards["b2"]
    x1, x1b, x2 = rows(10, 1), rows(5, 2), rows(15, 3)
    fleet.call(lambda: b1.predict(x1))
    fleet.call(lambda: b1.predict(x1b, lose=3))  # three dropped from the board's queue first
    fleet.call(lambda: b2.predict(x2))
    out, err = watch.communicate(timeout=60)
    assert watch.returncode == 0, err
    preds = [json.loads(line) for line in out.splitlines()]
    assert len(preds) == 30
    got1 = [p for p in preds if p["id"] == "b1"]
    assert [p["n"] for p in got1] == [*range(1, 11), *range(14, 19)]
    assert [p.get("lost") for p in got1].count(3) == 1 and got1[10]["lost"] == 3
    want1 = golden.predict(MODEL, np.vstack([x1, x1b]))
    assert [p["class"] for p in got1] == [int(c) for c in want1]
    assert [p["label"] for p in got1] == [MODEL.labels[int(c)] for c in want1]
    assert [p["n"] for p in preds if p["id"] == "b2"] == list(range(1, 16))
    assert "30 predictions from 2 boards in" in err and "; 3 lost (gaps in n)" in err


def test_watch_human_lines_one_board_and_seconds(mosquitto, fleet) -> None:
    watch = start_watch(mosquitto, fleet, "--boards", "b2", "--seconds", "3")
    fleet.call(lambda: fleet.boards["b1"].predict(rows(2, 4)))  # not watched
    fleet.call(lambda: fleet.boards["b2"].predict(rows(2, 5)))
    out, err = watch.communicate(timeout=30)
    assert watch.returncode == 0
    lines = out.splitlines()
    want = golden.predict(MODEL, rows(2, 5))
    assert len(lines) == 2
    for i, line in enumerate(lines):
        fields = line.split("  ")
        assert fields[:4] == [
            "b2",
            f"n={i + 1}",
            "app",
            f"class {int(want[i])} ({MODEL.labels[int(want[i])]})",
        ]
        assert fields[4].startswith("t=") and fields[4].endswith(" s")
    assert "2 predictions from 1 board in" in err


def test_ctrl_c_ends_watch_with_a_summary(mosquitto, fleet) -> None:
    code, screen = run_on_terminal(
        ["fleet", "watch", "--broker", mosquitto.url, "--group", fleet.group],
        interrupt_after=b"(Ctrl-C stops)",
    )
    assert code == 0
    assert "0 predictions from 0 boards in" in screen and "Traceback" not in screen


def test_status_measures_predictions_per_minute(mosquitto, fleet) -> None:
    stop = threading.Event()

    def chatter() -> None:
        while not stop.is_set():
            fleet.call(lambda: fleet.boards["b1"].predict(rows(1, 6)))
            time.sleep(0.05)

    thread = threading.Thread(target=chatter, daemon=True)
    thread.start()
    try:
        proc = edgenn(
            "fleet", "status", "--broker", mosquitto.url, "--group", fleet.group, "--json", "--listen", "2"
        )
    finally:
        stop.set()
        thread.join(5)
    assert proc.returncode == 0, proc.stderr
    boards = {b["id"]: b for b in json.loads(proc.stdout)["boards"]}
    assert boards["b1"]["pred_per_min"] > 0 and boards["b1"]["last_seen_s"] is not None
    assert boards["b2"]["pred_per_min"] == 0 and boards["b2"]["last_seen_s"] is None
    assert boards["b1"]["online"] and boards["b1"]["model"] == MODEL.name
