"""Issue 19 item 12: what a tired user runs into gets a message that says what happened."""

from __future__ import annotations

import importlib
import json
import subprocess
import sys

import pytest

from edgenn.cli import main
from edgenn.commands import train as train_cmd
from edgenn.errors import UserError

FAST = ["--epochs", "20", "--hidden", "8"]


def test_a_diverging_training_warns(capsys, tmp_path):
    assert main(["train", "iris", "--lr", "1000", "-o", str(tmp_path / "m.npz"), "--json", *FAST]) == 0
    warnings = json.loads(capsys.readouterr().out)["warnings"]
    assert any("training diverged" in w and "--lr 1000" in w for w in warnings), warnings
    assert main(["train", "iris", "-o", str(tmp_path / "m.npz"), "--json", *FAST]) == 0
    assert not any("diverged" in w for w in json.loads(capsys.readouterr().out)["warnings"])


@pytest.mark.parametrize(
    "argv",
    [
        ["train", "iris", "--activation", "gelu", "-o", "m.npz"],
        ["train", "iris", "--epochs", "many", "-o", "m.npz"],
        ["tune", "iris", "--board", "esp32", "-o", "m.npz", "--task", "guess"],
        ["train"],
        ["nonsense"],
    ],
)
def test_every_usage_error_is_one_line(argv, tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "edgenn.cli", *argv], capture_output=True, text=True, cwd=tmp_path, timeout=60
    )
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2 and len(lines) == 1, proc.stderr
    command = "edgenn " + argv[0] if argv[0] != "nonsense" else "edgenn"
    assert lines[0].startswith(f"{command}: error: "), lines[0]
    assert "usage:" not in proc.stderr


def test_too_few_rows_cites_the_folds_asked_for(capsys, tmp_path):
    data = tmp_path / "few.csv"
    data.write_text("a,b,label\n1,2,x\n2,3,x\n3,4,y\n")
    for folds, cited in (("0", None), ("3", "3-fold")):
        code = main(["train", str(data), "--folds", folds, "-o", str(tmp_path / "m.npz")])
        err = capsys.readouterr().err
        assert code == 2 and "class 'y' has 1" in err, err
        assert "5-fold" not in err
        if cited:
            assert cited in err


@pytest.mark.parametrize(
    "port, says",
    [("/dev/null", "/dev/null is not a serial port"), ("foo://bar", "foo:// is not a kind of URL")],
)
@pytest.mark.parametrize("command", ["predict", "deploy"])
def test_ports_that_are_not_ports_say_so(capsys, tmp_path, port, says, command):
    argv = (
        [command, "--port", port, "1,2,3,4"]
        if command == "predict"
        else [command, "model.enn", "--port", port]
    )
    if command == "deploy":
        assert main(["train", "iris", "-o", str(tmp_path / "m.npz"), *FAST, "--folds", "0", "--json"]) == 0
        assert (
            main(
                [
                    "quantize",
                    str(tmp_path / "m.npz"),
                    "--data",
                    "iris",
                    "-o",
                    str(tmp_path / "model.enn"),
                    "--no-qat",
                    "--json",
                ]
            )
            == 0
        )
        argv[1] = str(tmp_path / "model.enn")
    capsys.readouterr()
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and says in err, err
    assert "busy" not in err and "server" not in err


def test_long_training_off_a_terminal_prints_progress_lines(capsys, tmp_path, monkeypatch):
    monkeypatch.setattr(train_cmd, "PROGRESS_EVERY_S", 0.0)
    assert main(["train", "iris", "-o", str(tmp_path / "m.npz"), *FAST]) == 0
    err = capsys.readouterr().err.splitlines()
    assert any(line.startswith("train: fold 1/5: epoch ") for line in err), err
    assert any(line.startswith("train: final fit: epoch ") for line in err), err
    assert not any("\r" in line for line in err)


class _BoardWithAnotherModel:
    port = "/dev/ttyFAKE"

    def __init__(self, *args, **kwargs) -> None:
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        pass

    def connect(self) -> dict:
        return {"model": "iris", "model_crc32": "00000000", "protocol": 2}


def test_reports_hint_names_its_own_options(monkeypatch, tmp_path):
    import edgenn.device.client

    model = tmp_path / "m.enn"
    model.write_bytes(b"\x01" * 16)
    monkeypatch.setattr(edgenn.device.client, "BoardClient", _BoardWithAnotherModel)
    with pytest.raises(UserError) as caught:
        importlib.import_module("edgenn.report.collect")._run_board(
            "/dev/ttyFAKE", 115200, 1.0, None, str(model), None, None
        )
    assert "is not the model on the board" in str(caught.value)
    assert "--model" not in str(caught.value) and "give report the model the board runs" in str(caught.value)


# ---- item 10: saturated inputs, and training rows under an .enn ----------------------------------


@pytest.fixture(scope="module")
def iris_pair(tmp_path_factory):
    d = tmp_path_factory.mktemp("pair")
    assert main(["train", "iris", "-o", str(d / "iris.npz"), "--json", *FAST]) == 0
    assert main(["quantize", str(d / "iris.npz"), "--data", "iris", "--no-qat", "--json"]) == 0
    return d / "iris.npz", d / "iris.enn"


class _BoardServing:
    def __init__(self, path) -> None:
        self.data = path.read_bytes()

    def read_model_file(self) -> bytes:
        return self.data


def test_saturated_inputs_are_named_with_the_calibrated_range(iris_pair):
    from edgenn.commands.predict import saturation_warnings

    _, enn = iris_pair
    board = _BoardServing(enn)
    assert saturation_warnings(board, [["5.1", "3.5", "1.4", "0.2"]]) == []
    notes = saturation_warnings(board, [["1e30", "3.5", "1.4", "0.2"], ["5.1", "3.5", "1.4", "-50"]])
    assert len(notes) == 2, notes
    rng = "(the model's input range "
    assert notes[0].startswith(f"row 1: input saturated: sepal_length = 1e+30 {rng}"), notes
    assert notes[1].startswith(f"row 2: input saturated: petal_width = -50 {rng}"), notes


def test_evaluate_an_enn_on_its_training_rows_gives_the_npz_caveat(capsys, iris_pair):
    npz, enn = iris_pair
    capsys.readouterr()
    for model in (npz, enn):
        assert main(["evaluate", str(model), "iris"]) == 0
        out = capsys.readouterr().out
        assert "note: the model was trained on all 150 of these rows" in out, out
