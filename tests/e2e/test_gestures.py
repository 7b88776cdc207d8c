"""The gesture walk-through of examples/gestures/README.md on the virtual board, end to end: windows
recorded by the example's simulated IMU in real MicroPython, `train --axes 3 --features spectral`,
`quantize`, `deploy`, `eval-device` and `predict` on RAW windows (the board computes the features:
agreement with the golden model must be 100%), then the example as main.py watched with `monitor`."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from vboard_helpers import mpremote

from edgenn import cli, golden, modelfile
from edgenn.data import load_dataset
from edgenn.device.client import BoardClient
from edgenn.device.deploy import deploy

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "gestures" / "main.py"
FIRMWARE = ROOT / "firmware"


def edgenn(capsys, *argv: str) -> tuple[int, str, str]:
    code = cli.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.slow
def test_gesture_walk_through_on_the_virtual_board(vboard, tmp_path, capsys, monkeypatch):
    """examples/gestures/README.md, step by step: record three gestures from the simulated IMU with
    `edgenn record`, train with --features spectral, quantize, deploy, eval-device, monitor."""
    monkeypatch.chdir(tmp_path)
    port = vboard.port
    names = ("edgenn.py", "edgenn_viper.py", "edgenn_fe.py", "edgenn_fe_viper.py")
    runtime = [str(FIRMWARE / name) for name in names]
    mpremote(port, "cp", *runtime, str(EXAMPLE), ":")
    for gesture in ("idle", "shake", "circle"):
        (tmp_path / "gesture.txt").write_text(gesture + "\n")
        mpremote(port, "cp", "gesture.txt", ":gesture.txt")
        record = ["record", "--port", port, "--label", gesture, "--samples", "960", "--window", "32"]
        code, out, err = edgenn(capsys, *record, "--reset", "--append", "-o", "gestures.csv", "--json")
        assert code == 0, err
        assert json.loads(out)["rows"] == 30
    mpremote(port, "rm", ":gesture.txt")

    train = ["train", "gestures.csv", "--label", "label", "--axes", "3", "--features", "spectral"]
    code, out, err = edgenn(capsys, *train, "-o", "gestures.npz")
    assert code == 0, err
    assert "front end: spectral 3x32 -> 44 features (FFT 32, 8 bands)" in out
    quantize = ["quantize", "gestures.npz", "--data", "gestures.csv"]
    code, out, err = edgenn(capsys, *quantize, "-o", "gestures.enn")
    assert code == 0, err
    qm = modelfile.load("gestures.enn")
    assert qm.frontend is not None and qm.n_inputs == 44 and qm.labels == ["circle", "idle", "shake"]

    deploy(Path("gestures.enn"), port, board="esp32", say=lambda _text: None)
    code, out, err = edgenn(capsys, "eval-device", "--port", port, "gestures.csv", "--json")
    assert code == 0, err
    result = json.loads(out)
    assert result["n"] == 90 and result["agreement"] == 1.0, result
    dataset = load_dataset("gestures.csv", label="label")
    assert result["accuracy"] == pytest.approx(np.mean(golden.predict(qm, dataset.X) == dataset.y))

    window = ",".join(str(int(v)) for v in dataset.X[3])
    # (`--`: a window that starts with a negative reading is not an option)
    code, out, err = edgenn(capsys, "predict", "--port", port, "--json", "--", window)
    assert code == 0, err
    reply = json.loads(out)
    assert reply["scores"] == golden.forward_q(qm, golden.quantize_input(qm, dataset.X[3:4]))[0].tolist()
    code, out, err = edgenn(capsys, "predict", "--port", port, "1,2,3")
    assert code == 2 and "takes 96 raw window values, got 3" in err

    with BoardClient(port) as board:
        board.connect()  # let the server finish starting before mpremote's Ctrl-C
    mpremote(port, "cp", str(EXAMPLE), ":main.py")
    code, out, err = edgenn(capsys, "monitor", "--port", port, "--reset", "--lines", "40", "--seconds", "30")
    assert code == 0, err
    lines = [json.loads(x) for x in out.splitlines() if x.startswith("{")]
    assert lines[0]["ready"] is True and lines[0]["sensor"] == "simulated"
    assert lines[0]["frontend"] == "spectral"
    predictions = [p for p in lines[1:] if p["truth"] in qm.labels]  # it also performs punch and tap
    assert len(predictions) >= 10
    right = sum(p["label"] == p["truth"] for p in predictions)
    assert right >= 0.8 * len(predictions), predictions


def test_record_mode_makes_a_training_csv_without_a_board():
    micropython = str(Path(sys.executable).with_name("micropython"))
    csv = subprocess.run(
        [micropython, str(EXAMPLE), "record", "3", "shake,tap"], capture_output=True, text=True, timeout=60
    ).stdout.splitlines()
    assert csv[0].split(",")[:2] == ["x0", "x1"] and csv[0].endswith(",z31,label") and len(csv) == 7
    assert [row.rsplit(",", 1)[1] for row in csv[1:]] == ["shake", "tap"] * 3
