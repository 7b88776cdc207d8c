"""`edgenn quantize --board B`: does the model fit the board, with deploy's arithmetic (edgenn.fit)."""

from __future__ import annotations

import json

import pytest

from edgenn import fit, modelfile
from edgenn.cli import main
from edgenn.data import load_dataset
from edgenn.nn import TrainConfig, train


@pytest.fixture(scope="module")
def npz(tmp_path_factory):
    out = tmp_path_factory.mktemp("models")
    paths = {}
    data = load_dataset("iris")
    for name, hidden in (("small", (16,)), ("big", (800, 64))):
        paths[name] = out / f"{name}.npz"
        train(data, TrainConfig(hidden=hidden, epochs=1, seed=1)).save(paths[name])
    return paths


def test_a_model_that_fits_says_so_and_exits_0(npz, tmp_path, capsys) -> None:
    out = tmp_path / "s.enn"
    code = main(["quantize", str(npz["small"]), "--data", "iris", "-o", str(out), "--board", "esp32"])
    text = capsys.readouterr().out
    assert code == 0
    assert "  board: fits the esp32 board (heap " in text
    assert fit.check_fit(out, "esp32").fits


def test_a_model_too_big_says_what_would_fit_and_exits_1(npz, tmp_path, capsys) -> None:
    out = tmp_path / "b.enn"
    code = main(["quantize", str(npz["big"]), "--data", "iris", "-o", str(out), "--board", "esp32", "--json"])
    result = json.loads(capsys.readouterr().out)
    assert code == 1 and out.exists()  # written either way
    expected = fit.check_fit(modelfile.load(out), "esp32")
    assert result["board_fit"] == json.loads(json.dumps(expected.as_dict()))
    assert result["board_fit"]["fits"] is False and result["board_fit"]["hidden_fewer"] > 0
    code = main(["quantize", str(npz["big"]), "--data", "iris", "-o", str(out), "--board", "esp32"])
    line = capsys.readouterr().out.strip().splitlines()[-1]
    assert line.startswith("  board: does not fit the esp32 board: its layers need ")
    widths = ",".join(map(str, expected.smaller_hidden))
    assert line.endswith(f"; {expected.hidden_fewer} hidden unit(s) fewer would fit (--hidden {widths})")


def test_unknown_board_is_one_line_before_any_work(npz, tmp_path, capsys) -> None:
    code = main(
        ["quantize", str(npz["small"]), "--data", "iris", "-o", str(tmp_path / "x.enn"), "--board", "esp99"]
    )
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("edgenn quantize: error: unknown board 'esp99'; known boards: esp32")
    assert not (tmp_path / "x.enn").exists()
