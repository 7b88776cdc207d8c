"""`edgenn tune --task anomaly`: autoencoder shapes that fit the board, each scored by the ROC AUC of its
out-of-fold normal scores against rows that are not normal (DATA's, or normal rows with every feature
shuffled on its own), the best saved as a model `quantize` and `evaluate` take as they are."""

from __future__ import annotations

import contextlib
import csv
import io
import json
from pathlib import Path

import numpy as np
import pytest

from edgenn import anomaly
from edgenn.cli import main
from edgenn.data import load_dataset
from edgenn.floatmodel import FloatModel
from edgenn.metrics import roc_auc
from edgenn.tune import anomaly_search_space, anomaly_shapes, permuted_rows, tune_anomaly


def _run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="module")
def iris_tuned(tmp_path_factory) -> tuple[dict, Path]:
    out = tmp_path_factory.mktemp("tune-anomaly") / "best.npz"
    argv = ["tune", "iris", "--task", "anomaly", "--normal", "versicolor", "--board", "esp32"]
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        assert main([*argv, "--candidates", "4", "--json", "-o", str(out)]) == 0
    return json.loads(buf.getvalue()), out


def test_the_leaderboard_is_auc_best_first_the_default_scored(iris_tuned) -> None:
    result, out = iris_tuned
    assert result["metric"] == "auc" and result["candidates"] == 4
    aucs = [c["cv_mean"] for c in result["leaderboard"]]
    assert aucs == sorted(aucs, reverse=True) and all(0.5 < a <= 1 for a in aucs)
    default = result["default"]
    assert default["hidden"] == list(anomaly.default_hidden(4)) and default["activation"] == "tanh"
    assert result["best"] == result["leaderboard"][0] and result["best"]["cv_mean"] >= default["cv_mean"]
    model = FloatModel.load(out)
    assert model.task == "anomaly" and list(model.layer_sizes[1:-1]) == result["best"]["hidden"]
    assert model.meta["anomaly"]["normal"] == ["versicolor"] and model.meta["tune"]["metric"] == "auc"


def test_the_best_candidates_auc_is_what_train_anomaly_gives(iris_tuned) -> None:
    """Recomputed here: the autoencoder of the best shape on the normal rows, its out-of-fold scores
    against the scores of the other rows (never fitted)."""
    result, _ = iris_tuned
    best = result["best"]
    ds = load_dataset("iris")
    normal = ds.y == ds.labels.index("versicolor")
    fm = anomaly.train_anomaly(
        ds.X[normal],
        hidden=tuple(best["hidden"]),
        activation=best["activation"],
        weight_decay=best["weight_decay"],
    )
    oof = np.asarray(fm.meta["anomaly"]["oof_scores"])
    others = anomaly.float_scores(fm, ds.X[~normal])
    want = roc_auc(np.r_[oof, others], np.r_[np.zeros(len(oof)), np.ones(len(others))])
    assert best["cv_mean"] == pytest.approx(want, abs=1e-9)


def test_the_tuned_model_quantizes_and_evaluates_like_a_trained_one(iris_tuned, tmp_path, capsys) -> None:
    _, out = iris_tuned
    enn = tmp_path / "best.enn"
    code, text, err = _run(capsys, "quantize", out, "--data", "iris", "-o", enn)
    assert code == 0, err
    assert "calibrated on 50 normal rows" in text  # the normal rows tune recorded
    code, text, err = _run(capsys, "evaluate", enn, "iris", "--normal", "versicolor", "--json")
    assert code == 0, err
    assert json.loads(text)["auc"] > 0.9


def test_without_anomalies_normal_rows_with_shuffled_features_score_the_candidates() -> None:
    rng = np.random.default_rng(1)
    z = rng.normal(size=(120, 1))
    X = np.hstack([z, 2 * z + 0.05 * rng.normal(size=(120, 1)), rng.normal(size=(120, 1))])  # x1 follows x0
    fake = permuted_rows(X, seed=0)
    assert all(np.array_equal(np.sort(fake[:, j]), np.sort(X[:, j])) for j in range(3))  # the same values
    assert abs(np.corrcoef(fake[:, 0], fake[:, 1])[0, 1]) < 0.3 < np.corrcoef(X[:, 0], X[:, 1])[0, 1]
    result = tune_anomaly(X, "esp32", ["a", "b", "c"], max_candidates=2, seed=0)
    assert result.model.meta["tune"]["anomalies"] == "normal rows with shuffled features"
    assert result.best.cv_mean > 0.8  # broken dependence between x0 and x1 is what the model sees
    again = tune_anomaly(X, "esp32", ["a", "b", "c"], max_candidates=2, seed=0)
    assert [c.as_dict() | {"seconds": 0} for c in again.candidates] == [
        c.as_dict() | {"seconds": 0} for c in result.candidates
    ]


def test_the_search_space_starts_with_the_default_and_holds_autoencoders() -> None:
    space = anomaly_search_space(3, {"raw": 13})
    assert space[0] == (anomaly.default_hidden(13), "tanh", 1e-3, "raw")
    assert len(space) == len(set(space)) == len(anomaly_shapes(13)) * 6
    for hidden in anomaly_shapes(13):
        assert min(hidden) == hidden[len(hidden) // 2] < 13  # a bottleneck in the middle
    assert anomaly.default_hidden(13) in anomaly_shapes(13)


def test_windows_keep_their_front_end(tmp_path, capsys) -> None:
    rng = np.random.default_rng(2)
    t = np.arange(16)
    data = tmp_path / "w.csv"
    with open(data, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow([f"{a}{i}" for a in "xy" for i in range(16)])
        for _ in range(60):
            x = 500 * np.sin(0.4 * t + rng.uniform(0, 6)) + rng.normal(0, 40, (2, 16))
            w.writerow(np.round(x).astype(int).ravel().tolist())
    out = tmp_path / "w.npz"
    argv = ["tune", data, "--task", "anomaly", "--axes", "2", "--features", "stats", "--board", "esp32"]
    code, text, err = _run(capsys, *argv, "--candidates", "2", "-o", out)
    assert code == 0, err
    assert "against the normal rows with shuffled features" in text
    assert "best: --task anomaly --features stats --axes 2 --hidden" in text
    model = FloatModel.load(out)
    assert model.frontend is not None and model.frontend.kind == "stats"
    assert model.feature_names[:2] == ["x0", "x1"] and model.n_inputs == model.frontend.n_features


def test_mistakes_are_one_line(tmp_path, capsys) -> None:
    out = str(tmp_path / "t.npz")
    cases = [
        (["tune", "iris", "--normal", "setosa", "--board", "esp32", "-o", out], "--task anomaly"),
        (
            ["tune", "iris", "--task", "anomaly", "--normal", "tulip", "--board", "esp32", "-o", out],
            "'tulip'",
        ),
        (["tune", "iris", "--task", "anomaly", "--board", "esp32", "-o", out], "--normal"),
    ]
    for argv, needle in cases:
        code, _, err = _run(capsys, *argv)
        assert code == 2 and needle in err and err.count("\n") == 1, err
        assert not Path(out).exists()
