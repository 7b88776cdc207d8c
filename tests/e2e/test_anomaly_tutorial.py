"""docs/anomaly-tutorial.md on the virtual board, step by step: the gesture example's simulated IMU
bolted to a running machine (machine.txt) is recorded while normal with `edgenn record`; `train --task
anomaly --axes 3 --features spectral`, `quantize`, `evaluate` on recorded faults, `deploy`,
`eval-device` (every board score equals golden's), `report --port`; then the example as main.py with
faults switched in, watched with `monitor`: the fault windows are flagged, the normal ones are not."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from vboard_helpers import mpremote

from edgenn import anomaly, cli, modelfile
from edgenn.data import parse_numbers, read_table
from edgenn.device.client import BoardClient

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "gestures" / "main.py"
WINDOW = 64
NORMAL_WINDOWS = 80
FAULT_WINDOWS = 10


def edgenn(capsys, *argv: str) -> tuple[int, str, str]:
    code = cli.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def _machine(port: str, tmp_path: Path, states: str) -> None:
    (tmp_path / "machine.txt").write_text(states + "\n")
    mpremote(port, "cp", str(tmp_path / "machine.txt"), ":machine.txt")


def _record(capsys, port: str, label: str, windows: int, out: str) -> dict:
    argv = ["record", "--port", port, "--label", label, "--samples", str(windows * WINDOW)]
    code, text, err = edgenn(
        capsys, *argv, "--window", str(WINDOW), "--reset", "--append", "-o", out, "--json"
    )
    assert code == 0, err
    return json.loads(text)


@pytest.mark.slow
def test_anomaly_tutorial_on_the_virtual_board(vboard, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    port = vboard.port
    mpremote(port, "cp", str(EXAMPLE), ":main.py")  # streams readings: needs no runtime yet

    # 1. record the machine running normally; then a few windows of two faults, for a test file
    _machine(port, tmp_path, "normal")
    recorded = _record(capsys, port, "normal", NORMAL_WINDOWS, "normal.csv")
    assert recorded["rows"] == NORMAL_WINDOWS and recorded["columns"] == 3 * WINDOW + 1
    _record(capsys, port, "normal", FAULT_WINDOWS, "test.csv")
    for fault in ("bearing", "stall"):
        _machine(port, tmp_path, fault)
        assert _record(capsys, port, fault, FAULT_WINDOWS, "test.csv")["rows"] == FAULT_WINDOWS

    # 2. train on the normal windows only, quantize, evaluate on the faults (never seen)
    train = ["train", "normal.csv", "--task", "anomaly", "--axes", "3", "--features", "spectral"]
    code, out, err = edgenn(capsys, *train, "-o", "machine.npz")
    assert code == 0, err
    assert "front end: spectral 3x64 -> 44 features (FFT 64, 8 bands)" in out
    assert f"on {NORMAL_WINDOWS} normal rows" in out
    code, out, err = edgenn(capsys, "quantize", "machine.npz", "--data", "normal.csv", "-o", "machine.enn")
    assert code == 0, err
    qm = modelfile.load("machine.enn")
    assert qm.task == "anomaly" and qm.frontend is not None and qm.frontend.window == WINDOW
    code, out, err = edgenn(capsys, "evaluate", "machine.enn", "test.csv", "--normal", "normal", "--json")
    assert code == 0, err
    result = json.loads(out)
    assert (result["n_normal"], result["n_anomalous"]) == (FAULT_WINDOWS, 2 * FAULT_WINDOWS)
    assert result["auc"] >= 0.95 and result["recall"] >= 0.9, result
    table = read_table("test.csv")
    X = parse_numbers(table, [c for c in table.header if c != "label"])
    scores = anomaly.golden_scores(qm, X)
    assert result["flagged"] == int(np.sum(scores > qm.threshold))

    # 3. deploy; every window's score on the board equals golden's; the report with the board
    code, out, err = edgenn(capsys, "deploy", "machine.enn", "--port", port)
    assert code == 0, err
    code, out, err = edgenn(capsys, "eval-device", "--port", port, "test.csv", "--normal", "normal", "--json")
    assert code == 0, err
    board = json.loads(out)
    assert board["score_agreement"] == 1.0 and board["flagged"] == result["flagged"]
    report = ["report", "machine.enn", "test.csv", "--float", "machine.npz", "--port", port]
    code, out, err = edgenn(capsys, *report, "-o", "machine.html")
    assert code == 0, err
    assert "float + integer + board" in out
    html = Path("machine.html").read_text()
    assert "anomaly scores equal to golden" in html and "100.00% of rows" in html

    # 4. the sensor loop as main.py, the machine going normal -> bearing fault -> normal -> stall
    with BoardClient(port) as client:
        client.connect()  # let the server finish starting before mpremote's Ctrl-C
    _machine(port, tmp_path, "normal,bearing,normal,stall")
    mpremote(port, "cp", str(EXAMPLE), ":main.py")
    code, out, err = edgenn(capsys, "monitor", "--port", port, "--reset", "--lines", "60", "--seconds", "60")
    assert code == 0, err
    lines = [json.loads(x.split("   <-")[0]) for x in out.splitlines() if x.startswith("{")]
    assert lines, out + err
    assert lines[0]["ready"] is True and lines[0]["threshold"] == qm.threshold
    windows = [w for w in lines[1:] if "score" in w]
    assert {w["truth"] for w in windows} >= {"normal", "bearing"}, windows
    for w in windows:
        assert w["anomaly"] == (w["score"] > qm.threshold)
        assert f"<- score {w['score']}: {'ANOMALY' if w['anomaly'] else 'normal'}" in out
    normal = [w["anomaly"] for w in windows if w["truth"] == "normal"]
    faults = [w["anomaly"] for w in windows if w["truth"] != "normal"]
    assert len(normal) >= 5 and len(faults) >= 5, windows
    assert sum(normal) <= 0.2 * len(normal) and sum(faults) >= 0.8 * len(faults), windows


def test_record_mode_writes_machine_windows_without_a_board():
    """`main.py record N STATES`: N windows per machine state, 64 samples per axis, in real MicroPython;
    a stalled rotor's windows hold no rotation (far less vibration than normal ones)."""
    micropython = str(Path(sys.executable).with_name("micropython"))
    out = subprocess.run(
        [micropython, str(EXAMPLE), "record", "20", "normal,stall"],
        capture_output=True,
        text=True,
        timeout=60,
    ).stdout.splitlines()
    header = out[0].split(",")
    assert header[:2] == ["x0", "x1"] and header[WINDOW] == "y0" and header[-2:] == ["z63", "label"]
    rows = [line.rsplit(",", 1) for line in out[1:]]
    assert [label for _, label in rows] == ["normal", "stall"] * 20
    X = np.array([[int(v) for v in values.split(",")] for values, _ in rows]).reshape(40, 3, WINDOW)
    spread = X.std(axis=2).mean(axis=1)  # per window: vibration around the mean, in readings
    normal, stall = spread[0::2], spread[1::2]
    assert np.median(stall) < 0.5 * np.median(normal), (normal, stall)
    assert abs(np.median(X[:, 2].mean(axis=1)) - 4096) < 200  # gravity on z: 1 g at 4096 LSB per g
