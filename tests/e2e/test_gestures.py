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


def edgenn(capsys, *argv: str) -> tuple[int, str, str]:
    code = cli.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.slow
def test_gesture_walk_through_on_the_virtual_board(vboard, tmp_path, capsys):
    micropython = str(Path(sys.executable).with_name("micropython"))
    csv = subprocess.run(
        [micropython, str(EXAMPLE), "record", "80"], capture_output=True, text=True, check=True, timeout=120
    ).stdout
    data = tmp_path / "g.csv"
    data.write_text(csv)
    npz, enn = tmp_path / "g.npz", tmp_path / "g.enn"
    train = ["train", str(data), "--label", "label", "--axes", "3", "--features", "spectral"]
    code, out, err = edgenn(capsys, *train, "-o", str(npz))
    assert code == 0, err
    assert "front end: spectral 3x32 -> 44 features (FFT 32, 8 bands)" in out
    code, out, err = edgenn(capsys, "quantize", str(npz), "--data", str(data), "-o", str(enn))
    assert code == 0, err
    qm = modelfile.load(enn)
    assert qm.frontend is not None and qm.n_inputs == 44

    deploy(enn, vboard.port, board="esp32", say=lambda _text: None)
    code, out, err = edgenn(capsys, "eval-device", "--port", vboard.port, str(data), "--json")
    assert code == 0, err
    result = json.loads(out)
    assert result["n"] == 400 and result["agreement"] == 1.0, result
    dataset = load_dataset(str(data), label="label")
    assert result["accuracy"] == pytest.approx(np.mean(golden.predict(qm, dataset.X) == dataset.y))

    window = ",".join(str(int(v)) for v in dataset.X[3])
    # (`--`: a window that starts with a negative reading is not an option)
    code, out, err = edgenn(capsys, "predict", "--port", vboard.port, "--json", "--", window)
    assert code == 0, err
    reply = json.loads(out)
    assert reply["scores"] == golden.forward_q(qm, golden.quantize_input(qm, dataset.X[3:4]))[0].tolist()
    code, out, err = edgenn(capsys, "predict", "--port", vboard.port, "1,2,3")
    assert code == 2 and "takes 96 raw window values, got 3" in err

    with BoardClient(vboard.port) as board:
        board.connect()  # let the server finish starting before mpremote's Ctrl-C
    mpremote(vboard.port, "cp", str(EXAMPLE), ":main.py")
    watch = ["monitor", "--port", vboard.port, "--reset", "--lines", "40", "--seconds", "30"]
    code, out, err = edgenn(capsys, *watch)
    assert code == 0, err
    lines = [json.loads(x) for x in out.splitlines() if x.startswith("{")]
    assert lines[0]["ready"] is True and lines[0]["sensor"] == "simulated"
    assert lines[0]["frontend"] == "spectral"
    predictions = lines[1:]
    assert len(predictions) >= 10
    right = sum(p["label"] == p["truth"] for p in predictions)
    assert right >= 0.8 * len(predictions), predictions
