"""predict / eval-device / monitor against a virtual board that got its files through `deploy`.

The virtual board (tests/e2e/conftest.py) behaves like an ESP32 on a serial port: Ctrl-C stops main.py,
a soft reset restarts it, mpremote takes over the port. Everything here goes through the real commands.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from test_server import split_lines
from vboard_helpers import mpremote

from edgenn import cli, golden, modelfile
from edgenn.data import load_dataset
from edgenn.demo import train_and_quantize
from edgenn.device.client import BoardClient, format_features
from edgenn.device.deploy import deploy, firmware_dir

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "sensor_loop" / "main.py"

pytestmark = pytest.mark.skipif(
    not (firmware_dir() / "edgenn.py").exists(), reason="device runtime firmware/edgenn.py not there yet"
)


@pytest.fixture(scope="module")
def iris_model(tmp_path_factory) -> tuple[Path, modelfile.QuantModel]:
    _dataset, _fm, qm, _warnings = train_and_quantize("iris", (8,), seed=1)
    path = tmp_path_factory.mktemp("models") / "iris.enn"
    modelfile.save(qm, path)
    return path, qm


@pytest.fixture
def iris_board(vboard, iris_model):
    deploy(iris_model[0], vboard.port, board="esp32", say=lambda _text: None)
    return vboard


def edgenn(capsys, *argv: str) -> tuple[int, str, str]:
    code = cli.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_predict_matches_golden(iris_board, iris_model, capsys):
    _, qm = iris_model
    dataset = load_dataset("iris")
    for i in (0, 60, 120):
        line = format_features(dataset.X[i])
        code, out, err = edgenn(capsys, "predict", "--port", iris_board.port, "--json", line)
        assert code == 0, err
        reply = json.loads(out)
        expected = golden.forward_q(qm, golden.quantize_input(qm, dataset.X[i : i + 1]))[0]
        assert reply["scores"] == expected.tolist()
        assert reply["class"] == int(golden.predict(qm, dataset.X[i : i + 1])[0])
        assert reply["label"] == qm.labels[reply["class"]]
    # human output names the class; space-separated values work too
    values = format_features(dataset.X[0]).split(",")
    code, out, _ = edgenn(capsys, "predict", "--port", iris_board.port, *values)
    assert code == 0 and qm.labels[int(golden.predict(qm, dataset.X[:1])[0])] in out


def test_eval_device_full_agreement_with_golden(iris_board, iris_model, capsys):
    path, qm = iris_model
    dataset = load_dataset("iris")
    golden_acc = float(np.mean(golden.predict(qm, dataset.X) == dataset.y))
    # golden model read back from the board (no --model)
    code, out, err = edgenn(capsys, "eval-device", "--port", iris_board.port, "iris", "--json")
    assert code == 0, err
    result = json.loads(out)
    assert result["n"] == dataset.n_rows and result["errors"] == 0
    assert result["agreement"] == 1.0 and result["class_agreement"] == 1.0
    assert result["accuracy"] == pytest.approx(golden_acc)
    assert result["latency_us"]["p50"] > 0 and result["latency_us"]["p95"] >= result["latency_us"]["p50"]
    assert result["rows_per_s"] > 0
    # floats rounded for people (no 0.9866666666666667 or 18022.42566482333)
    assert all(len(repr(v).split(".")[-1]) <= 6 for v in (result["accuracy"], result["rows_per_s"]))
    # with the local file (checked against the board's CRC), input codes only, first rows only
    code, out, err = edgenn(
        capsys,
        "eval-device",
        "--port",
        iris_board.port,
        "iris",
        "--model",
        str(path),
        "--codes",
        "--limit",
        "40",
        "--json",
    )
    assert code == 0, err
    result = json.loads(out)
    assert (result["n"], result["agreement"], result["mode"]) == (40, 1.0, "codes")
    # the human report says so
    code, out, _ = edgenn(capsys, "eval-device", "--port", iris_board.port, "iris", "--limit", "10")
    assert code == 0 and "agreement  100.00%" in out


def test_eval_device_refuses_a_model_that_is_not_deployed(iris_board, tmp_path, capsys):
    _dataset, _fm, other, _ = train_and_quantize("iris", (4,), seed=2)
    other_path = tmp_path / "other.enn"
    modelfile.save(other, other_path)
    code, _, err = edgenn(
        capsys, "eval-device", "--port", iris_board.port, "iris", "--model", str(other_path)
    )
    assert code == 2 and "not the model on the board" in err


def test_server_survives_ctrl_c_and_mpremote(iris_board, iris_model):
    _, qm = iris_model
    row = load_dataset("iris").X[:1]
    expected = golden.forward_q(qm, golden.quantize_input(qm, row))[0].tolist()
    with BoardClient(iris_board.port) as board:
        board.connect()
        assert board.request(format_features(row[0]))["scores"] == expected
        board.serial.write(b"\x03")  # Ctrl-C: KeyboardInterrupt, main.py stops, the board is at the REPL
        time.sleep(0.3)
        board.connect()  # nobody answers `info` any more: the client soft-resets the board
        assert board.request(format_features(row[0]))["scores"] == expected
    # mpremote interrupts main.py to take over the raw REPL (as deploy does), then the server comes back.
    # (The server is known to be running here: a Ctrl-C that reaches the virtual board while main.py is
    # still starting is delivered as a plain byte, so mpremote right after a reset can time out.)
    assert "model.enn" in mpremote(iris_board.port, "ls").stdout
    with BoardClient(iris_board.port) as board:
        board.connect()
        assert board.request(format_features(row[0]))["scores"] == expected


def test_monitor_prints_what_the_board_says(iris_board, capsys):
    # the reset stops the server (its KeyboardInterrupt traceback shows), then it boots again
    with BoardClient(iris_board.port) as board:
        board.connect()  # the server is up (deploy has just reset the board)
    code, out, err = edgenn(capsys, "monitor", "--port", iris_board.port, "--reset", "--seconds", "3")
    assert code == 0, err
    assert "KeyboardInterrupt" in out and "soft reboot" in out
    banners = [json.loads(x) for x in out.splitlines() if x.startswith('{"ready"')]
    assert banners and banners[-1]["model"] == "iris"
    # --lines stops early
    code, out, err = edgenn(capsys, "monitor", "--port", iris_board.port, "--reset", "--lines", "3")
    assert code == 0, err
    assert len(out.splitlines()) == 3


def test_commands_fail_clearly(iris_board, capsys, monkeypatch):
    monkeypatch.delenv("EDGENN_PORT", raising=False)
    code, _, err = edgenn(capsys, "predict", "1,2,3,4")
    assert code == 2 and "--port" in err
    code, _, err = edgenn(capsys, "predict", "--port", "/dev/does-not-exist", "1,2,3,4")
    assert code == 2 and "serial port /dev/does-not-exist does not exist" in err
    code, _, err = edgenn(capsys, "predict", "--port", iris_board.port, "1,2,3")
    assert code == 2 and "takes 4 values, got 3" in err
    code, _, err = edgenn(capsys, "predict", "--port", iris_board.port, "1,x,3,4")
    assert code == 2 and "not a number" in err
    code, _, err = edgenn(capsys, "eval-device", "--port", iris_board.port, "wine")
    assert code == 2 and "wine" in err


def test_sensor_loop_example_runs_on_the_virtual_board(vboard, tmp_path, capsys):
    # training data recorded by the example's own simulator, in real MicroPython
    micropython = str(Path(sys.executable).with_name("micropython"))
    csv = subprocess.run(
        [micropython, str(EXAMPLE), "record", "300"], capture_output=True, text=True, check=True, timeout=60
    ).stdout
    (tmp_path / "sensor.csv").write_text(csv)
    dataset = load_dataset(str(tmp_path / "sensor.csv"), label="state")
    assert dataset.n_rows == 300 and dataset.labels == ["hum", "idle", "knock"]
    from edgenn.nn import TrainConfig, train
    from edgenn.quantize import quantize

    fm = train(dataset, TrainConfig(hidden=(8,), seed=0))
    qm, _ = quantize(fm, dataset.X, name="sensor")
    modelfile.save(qm, tmp_path / "sensor.enn")
    deploy(tmp_path / "sensor.enn", vboard.port, board="esp32", say=lambda _text: None)
    with BoardClient(vboard.port) as board:
        board.connect()  # let the server finish starting before mpremote's Ctrl-C (see test above)
    mpremote(vboard.port, "cp", str(EXAMPLE), ":main.py")
    # 30 lines: the REPL's goodbye and the boot messages come first, then the sensor loop's JSON
    code, out, err = edgenn(
        capsys, "monitor", "--port", vboard.port, "--reset", "--lines", "30", "--seconds", "20"
    )
    assert code == 0, err
    lines = [json.loads(x) for x in out.splitlines() if x.startswith("{")]
    assert lines[0]["ready"] is True and lines[0]["sensor"] == "simulated"
    predictions = lines[1:]
    assert len(predictions) >= 5
    for p in predictions:
        assert p["label"] in qm.labels and p["truth"] in qm.labels and p["us"] >= 0


def test_1000_predictions_on_the_virtual_board_equal_golden_and_heap_does_not_grow(iris_board, iris_model):
    _, qm = iris_model
    rng = np.random.default_rng(11)
    X = load_dataset("iris").X
    X = X[rng.integers(0, len(X), 1000)] + rng.normal(0, 0.3, size=(1000, X.shape[1]))
    expected = golden.forward_q(qm, golden.quantize_input(qm, X))
    with BoardClient(iris_board.port) as board:
        board.connect()
        for reply in board.stream(format_features(x) for x in X[:20]):  # warm-up
            assert "scores" in reply
        before = board.request("info")
        replies = list(board.stream(format_features(x) for x in X))
        after = board.request("info")
    assert [r["scores"] for r in replies] == expected.tolist()
    # `info` collects garbage first: what stays allocated is what the server keeps
    assert after["heap_alloc"] <= before["heap_alloc"], (before, after)
    assert after["heap_free"] >= before["heap_free"]


def test_fuzz_on_the_virtual_board(iris_board, iris_model):
    """Garbage between good lines over the (virtual) serial line. Every byte but Ctrl-C: on a board
    Ctrl-C stops the server on purpose (test_server_survives_ctrl_c_and_mpremote)."""
    _, qm = iris_model
    rng = np.random.default_rng(12)
    X = load_dataset("iris").X
    expected = golden.forward_q(qm, golden.quantize_input(qm, X))
    with BoardClient(iris_board.port) as board:
        board.connect()
        for i in rng.permutation(len(X))[:60]:
            junk = rng.integers(0, 256, size=int(rng.choice([1, 20, 300])), dtype=np.uint8).tobytes()
            junk = junk.replace(b"\x03", b"\x04")
            data = junk + b"\n" + format_features(X[i]).encode() + b"\n"
            board.serial.write(data)
            replies = [board.read_reply("junk") for _ in split_lines(data)]
            assert all(isinstance(r, dict) for r in replies)
            assert replies[-1]["scores"] == expected[i].tolist(), (junk, replies)
        assert board.request("info")["model"] == "iris"


def test_eval_device_disagreement_is_loud_and_exits_1(iris_board, capsys, monkeypatch):
    # a board that answers wrongly on one row (simulated by corrupting one reply after the fact)
    from edgenn.commands import eval_device

    real_run_rows = eval_device.run_rows

    def one_wrong_row(*args, **kwargs):
        run = real_run_rows(*args, **kwargs)
        run.outputs[7, 0] += 1
        run.mismatches = [7]
        return run

    monkeypatch.setattr(eval_device, "run_rows", one_wrong_row)
    code, out, err = edgenn(capsys, "eval-device", "--port", iris_board.port, "iris", "--json")
    assert code == 1
    result = json.loads(out)
    assert result["agreement"] == pytest.approx(149 / 150)
    assert result["first_mismatches"][0]["row"] == 7
    assert "DISAGREEMENT: 1 of 150 rows" in err and "row 7" in err


def test_regression_model_through_predict_and_eval_device(vboard, tmp_path, capsys):
    dataset, _fm, qm, _ = train_and_quantize("diabetes", (8,), seed=0)
    path = tmp_path / "diabetes.enn"
    modelfile.save(qm, path)
    deploy(path, vboard.port, board="esp32", say=lambda _text: None)
    code, out, err = edgenn(capsys, "predict", "--port", vboard.port, "--json", format_features(dataset.X[0]))
    assert code == 0, err
    reply = json.loads(out)
    expected = golden.predict(qm, dataset.X[:1])[0, 0]
    assert reply["value"] == pytest.approx(expected, rel=1e-6)
    code, out, err = edgenn(
        capsys, "eval-device", "--port", vboard.port, "diabetes", "--limit", "100", "--json"
    )
    assert code == 0, err
    result = json.loads(out)
    assert result["agreement"] == 1.0 and result["accuracy"] is None
    golden_mae = float(np.mean(np.abs(golden.predict(qm, dataset.X[:100])[:, 0] - dataset.y[:100])))
    assert result["mae"] == pytest.approx(golden_mae, rel=1e-6)


def test_monitor_exits_0_on_ctrl_c(iris_board):
    monitor = subprocess.Popen(
        [sys.executable, "-m", "edgenn.cli", "monitor", "--port", iris_board.port],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    time.sleep(1.5)  # let it open the port and start reading
    monitor.send_signal(signal.SIGINT)
    _, err = monitor.communicate(timeout=20)
    assert monitor.returncode == 0, err
    assert "line(s) from" in err


def test_predict_warns_when_inputs_saturate(iris_board, iris_model, capsys):
    """Issue 19 item 10: a value far outside the calibrated range is clamped on the board; say so."""
    code, out, err = edgenn(capsys, "predict", "--port", iris_board.port, "1e30,3.5,1.4,0.2")
    assert code == 0, err
    assert out.strip() and "input saturated: sepal_length = 1e+30 (the model's input range " in err, err
    code, out, err = edgenn(capsys, "predict", "--port", iris_board.port, "5.1,3.5,1.4,0.2")
    assert code == 0 and "saturated" not in err, err


@pytest.mark.board
def test_predict_and_eval_device_on_a_real_board(iris_model, capsys):
    """EDGENN_BOARD_PORT=/dev/ttyUSB0 pytest -m board tests/e2e: the serial path on hardware.

    On an ESP32 (32-bit floats) rows whose input scaling rounds to a neighbouring code are re-checked
    with `x` requests; the integer network must still agree on every row."""
    import os

    port = os.environ["EDGENN_BOARD_PORT"]
    path, qm = iris_model
    deploy(path, port, say=lambda _text: None)
    code, out, err = edgenn(capsys, "eval-device", "--port", port, "iris", "--model", str(path), "--json")
    assert code == 0, err
    result = json.loads(out)
    assert result["agreement"] == 1.0 and result["errors"] == 0
    code, out, err = edgenn(capsys, "eval-device", "--port", port, "iris", "--codes", "--json")
    assert code == 0 and json.loads(out)["agreement"] == 1.0, err
