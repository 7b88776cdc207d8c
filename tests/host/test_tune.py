"""`edgenn tune`: only models that fit the board are trained, the default is always scored, seeded."""

from __future__ import annotations

import dataclasses
import json
import re
import sys
from pathlib import Path

import numpy as np

from edgenn.boards import load_board
from edgenn.cli import main
from edgenn.data import load_dataset
from edgenn.floatmodel import FloatModel
from edgenn.nn import TrainConfig
from edgenn.tune import search_space, tune

sys.path.insert(0, str(Path(__file__).parent))
from on_terminal import run_on_terminal  # noqa: E402

BASE = TrainConfig(epochs=30, patience=5, folds=3)


def test_search_space_starts_with_the_default_and_is_seeded():
    a, b, c = (search_space(s, TrainConfig()) for s in (0, 0, 1))
    assert a[0] == ((32, 16), "relu", 0.01, "raw") and a == b and a != c and len(set(a)) == len(a)
    kinds = search_space(0, TrainConfig(), ("raw", "stats", "spectral"))
    assert [k[3] for k in kinds[:3]] == ["raw", "stats", "spectral"] and kinds[0][:3] == kinds[2][:3]


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


def test_tune_reports_every_candidate_and_the_steps_after_the_search():
    ds = load_dataset("iris")
    heard: list[str] = []
    result = tune(
        ds,
        "esp32",
        base=BASE,
        max_candidates=3,
        progress=lambda c, total: heard.append(f"{c.hidden} of {total}"),
        stage=heard.append,
    )
    assert heard[:3] == [f"{c.hidden} of 3" for c in result.candidates]
    shape = ",".join(map(str, result.best.hidden))
    assert heard[3:] == [f"training the best (raw {shape} {result.best.activation}) on every row"]


def test_tune_with_a_sensor_front_end_scores_features_and_keeps_the_front_end(tmp_path, capsys):
    from edgenn import modelfile
    from edgenn.quantize import quantize

    rng = np.random.default_rng(5)
    lines = [",".join(f"{a}{i}" for a in "xyz" for i in range(8)) + ",label"]
    for r in range(30):  # class b shakes five times harder
        lines.append(",".join(map(str, rng.integers(-500, 500, 24) * (1 + 4 * (r % 2)))) + f",{'ab'[r % 2]}")
    (tmp_path / "w.csv").write_text("\n".join(lines) + "\n")
    out = tmp_path / "best.npz"
    argv = f"tune {tmp_path / 'w.csv'} --label label --axes 3 --features stats --board esp32 --budget-s 1"
    assert main([*argv.split(), "-o", str(out), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    model = FloatModel.load(out)
    assert model.frontend is not None and model.layer_sizes[0] == 20  # 5 stats x (3 axes + magnitude)
    assert result["best"]["cv_mean"] >= 0.9  # the features see the amplitude
    raw = load_dataset(str(tmp_path / "w.csv"), label="label")
    qm, _ = quantize(model, raw.X)
    assert abs(len(modelfile.to_bytes(qm)) - result["best"]["bytes"]) < 64  # sized with its front end


def test_ctrl_c_on_a_terminal_clears_the_progress_line_first(tmp_path):
    """What a user sees: the progress line rewritten in place, then Ctrl-C's one line on its own."""
    argv = ["tune", "iris", "--board", "esp32", "-o", str(tmp_path / "b.npz")]
    code, text = run_on_terminal(argv, interrupt_after=b"candidates")
    assert code == 130 and "tune: 1/24 candidates" in text
    assert re.search(r"\r +\redgenn tune: interrupted\r?\n$", text), text[-300:]
