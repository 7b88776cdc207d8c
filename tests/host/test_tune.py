"""`edgenn tune`: only models that fit the board are trained, the default is always scored, seeded."""

from __future__ import annotations

import dataclasses
import json

from edgenn.boards import load_board
from edgenn.cli import main
from edgenn.data import load_dataset
from edgenn.floatmodel import FloatModel
from edgenn.nn import TrainConfig
from edgenn.tune import search_space, tune

BASE = TrainConfig(epochs=30, patience=5, folds=3)


def test_search_space_starts_with_the_default_and_is_seeded():
    a, b, c = (search_space(s, TrainConfig()) for s in (0, 0, 1))
    assert a[0] == ((32, 16), "relu", 0.01) and a == b and a != c and len(set(a)) == len(a)


def test_tune_keeps_only_models_that_fit_a_small_board():
    ds = load_dataset("digits")
    small = dataclasses.replace(load_board("esp32"), heap_bytes=70_000, largest_block_bytes=3_000)
    result = tune(ds.subset(slice(0, 300)), small, budget_s=60, base=BASE, max_candidates=8)
    assert any(not c.fits for c in result.candidates)  # 64 inputs x 64 units does not fit 3 KB blocks
    assert all(c.cv_mean is None for c in result.candidates if not c.fits)
    assert result.best.fits and result.best.cv_mean == max(c.cv_mean for c in result.candidates if c.fits)
    assert result.model.layer_sizes[1:-1] == list(result.best.hidden)


def test_tune_command_json_leaderboard_and_model(tmp_path, capsys):
    out = tmp_path / "best.npz"
    code = main(["tune", "iris", "--board", "esp32", "--budget-s", "2", "-o", str(out), "--json"])
    assert code == 0
    result = json.loads(capsys.readouterr().out)
    board = result["leaderboard"]
    assert board[0] == result["best"] and any(c["default"] for c in board)
    assert board[0]["cv_mean"] >= result["default"]["cv_mean"]
    # the top candidates' latency comes from the board's machine code in qemu-xtensa (edgenn estimate)
    assert board[0]["latency_us"] > 0 and all(c["latency_us"] is None for c in board[5:])
    assert FloatModel.load(out).layer_sizes[1:-1] == result["best"]["hidden"]
