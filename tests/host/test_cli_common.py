"""What every command does alike: -o checked for the right kind of model before any work, a .npz
where a .enn is needed named as such, --json floats rounded, Ctrl-C as one line even during start-up."""

from __future__ import annotations

import json

import numpy as np
import pytest

from edgenn import cli
from edgenn.cli import main
from edgenn.commands.common import rounded

FAST = ["--epochs", "15", "--hidden", "8", "--folds", "0"]


def one_line_error(capsys, argv: list[str], command: str, *fragments: str) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"edgenn {command}: error: "), err
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    return lines[0]


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    d = tmp_path_factory.mktemp("models")
    assert main(["train", "iris", "-o", str(d / "iris.npz"), *FAST]) == 0
    assert main(["quantize", str(d / "iris.npz"), "--data", "iris", "-o", str(d / "iris.enn")]) == 0
    return d


def test_train_and_tune_refuse_an_enn_output_before_any_work(capsys, tmp_path):
    one_line_error(capsys, ["train", "iris", "-o", str(tmp_path / "m.enn")], "train", "m.npz")
    one_line_error(
        capsys, ["tune", "iris", "--board", "esp32", "-o", str(tmp_path / "m.enn")], "tune", "m.npz"
    )
    assert list(tmp_path.iterdir()) == []


def test_quantize_refuses_an_npz_output(capsys, models, tmp_path):
    argv = ["quantize", str(models / "iris.npz"), "--data", "iris", "-o", str(tmp_path / "q.npz")]
    one_line_error(capsys, argv, "quantize", "q.enn")
    assert not (tmp_path / "q.npz").exists()


def test_an_npz_where_an_enn_is_needed_says_how_to_make_one(capsys, models):
    one_line_error(
        capsys,
        ["estimate", str(models / "iris.npz"), "--board", "esp32"],
        "estimate",
        "is a float model",
        "edgenn quantize",
    )


def test_json_floats_are_rounded(capsys, models):
    for argv in (
        ["evaluate", str(models / "iris.enn"), "iris", "--json"],
        ["train", "iris", "-o", str(models / "j.npz"), "--json", "--epochs", "15", "--hidden", "8"],
    ):
        assert main(argv) == 0
        out = capsys.readouterr().out
        floats = list(walk_floats(json.loads(out)))
        assert floats and all(float(f"{x:.6g}") == x for x in floats), out


def walk_floats(value):
    if isinstance(value, dict):
        value = list(value.values())
    if isinstance(value, list):
        for v in value:
            yield from walk_floats(v)
    elif isinstance(value, float):
        yield value


def test_rounded_keeps_six_significant_digits():
    assert rounded({"a": [155.0999999999999, np.float32(0.1)], "b": 2 / 3}) == {
        "a": [155.1, 0.1],
        "b": 0.666667,
    }
    assert rounded(1e-9 / 3) == pytest.approx(3.33333e-10, rel=1e-9)
    assert rounded([float("nan"), np.int64(3), True]) == [None, 3, True]


def test_ctrl_c_while_the_commands_load_is_one_line(capsys, monkeypatch):
    def interrupted():
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, "build_parser", interrupted)
    assert main(["quantize", "m.npz", "--data", "iris"]) == cli.EXIT_INTERRUPTED
    assert capsys.readouterr().err == "edgenn quantize: interrupted\n"


def test_report_and_record_never_write_over_a_model(capsys, models):
    enn = str(models / "iris.enn")
    one_line_error(capsys, ["report", enn, "iris", "-o", enn], "report", "iris.html")
    argv = ["record", "--port", "/dev/null", "--label", "x", "--seconds", "1", "-o", str(models / "iris.npz")]
    one_line_error(capsys, argv, "record", "iris.csv")
    assert (models / "iris.enn").read_bytes().startswith(b"EDNN")
