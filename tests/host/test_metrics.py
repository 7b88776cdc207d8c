"""edgenn.metrics: confusion matrices and per-class scores equal scikit-learn's; the per-layer
quantization error recovers the quantizer's scales from the file and notices a broken layer."""

from __future__ import annotations

import json

import numpy as np
import pytest

from edgenn import golden
from edgenn.cli import main
from edgenn.data import load_dataset
from edgenn.metrics import (
    classification_summary,
    confusion_lines,
    confusion_matrix,
    layer_error_lines,
    layer_errors,
    per_class,
)
from edgenn.nn import TrainConfig, train
from edgenn.quantize import quantize

sklearn_metrics = pytest.importorskip("sklearn.metrics")


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_confusion_and_per_class_equal_sklearn(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n_classes = 5
    y = rng.integers(0, n_classes, 300)
    pred = np.where(rng.random(300) < 0.7, y, rng.integers(0, n_classes, 300))
    pred[pred == 4] = 3  # class 4 is never predicted: precision undefined -> 0
    cm = confusion_matrix(y, pred, n_classes)
    assert cm.tolist() == sklearn_metrics.confusion_matrix(y, pred, labels=range(n_classes)).tolist()
    p, r, f, s = sklearn_metrics.precision_recall_fscore_support(
        y, pred, labels=range(n_classes), zero_division=0
    )
    stats = per_class(cm, list("abcde"))
    assert [c["support"] for c in stats] == s.tolist()
    np.testing.assert_allclose([c["precision"] for c in stats], p)
    np.testing.assert_allclose([c["recall"] for c in stats], r)
    np.testing.assert_allclose([c["f1"] for c in stats], f)


def test_refused_rows_are_left_out_of_the_matrix() -> None:
    y = np.array([0, 1, 1, 0])
    pred = np.array([0.0, 1.0, np.nan, -1.0])  # a board's refused rows
    assert confusion_matrix(y, pred, 2).tolist() == [[1, 0], [0, 1]]
    summary = classification_summary(y, pred, ["a", "b"])
    assert json.dumps(summary)  # JSON-able
    assert summary["per_class"][0]["support"] == 1


def test_confusion_lines_show_counts_and_recall() -> None:
    cm = np.array([[8, 2], [0, 5]])
    lines = confusion_lines(cm, ["cat", "a-very-long-class-name"])
    assert lines[0].startswith("true \\ predicted") and lines[0].endswith("recall")
    assert " 0 cat" in lines[1] and lines[1].split()[-3:] == ["8", "2", "80.0%"]
    assert "a-very-long~" in lines[2] and lines[2].endswith("100.0%")


@pytest.fixture(scope="module")
def models():
    out = {}
    for act in ("relu", "sigmoid", "tanh"):
        ds = load_dataset("wine")
        fm = train(ds, TrainConfig(hidden=(16, 8), activation=act, seed=2, epochs=80))
        qm, _ = quantize(fm, ds.X)
        out[act] = (ds, fm, qm)
    return out


@pytest.mark.parametrize("act", ["relu", "sigmoid", "tanh"])
def test_layer_errors_are_small_for_a_calibrated_model(models, act) -> None:
    ds, fm, qm = models[act]
    errors = layer_errors(fm, qm, ds.X)
    assert [e.name for e in errors] == ["input", "layer 0", "layer 1", "output"]
    for e in errors:
        assert e.snr_db > 25, (e.name, e.snr_db)  # 8-bit codes: ~30-45 dB when the scales are right
        # calibrated on these very rows: at most a stray pre-activation past a table's range (the
        # integer pre-activation of an extreme row can land a code or two beyond the float one's)
        assert e.clipped <= 0.005 * e.codes.size, (e.name, e.clipped)
    assert errors[-1].codes.dtype == np.int8 and errors[1].weights.shape == (16, 13)
    lines = layer_error_lines(errors)
    assert len(lines) == 5 and "SNR dB" in lines[0]


def test_relu_scale_recovered_from_the_file_is_the_best_fit(models) -> None:
    """The output step the metric derives (accumulator step * 2**shift / mult) is within 1% of the
    least-squares scale mapping the layer's codes onto the float activations."""
    ds, fm, qm = models["relu"]
    errors = layer_errors(fm, qm, ds.X)
    floats = fm.forward_layers(ds.X)
    codes = errors[1].codes.astype(np.float64)
    a = floats[0][1]
    lsq = np.sum(codes * a, axis=0) / np.maximum(np.sum(codes * codes, axis=0), 1e-12)
    # SNR with the least-squares scale is the best any scale can do; the derived one is within 0.5 dB
    best = 10 * np.log10(np.sum(a**2) / np.sum((codes * lsq - a) ** 2))
    assert errors[1].snr_db > best - 0.5


def test_a_broken_layer_shows_as_low_snr(models) -> None:
    ds, fm, qm = models["relu"]
    before = layer_errors(fm, qm, ds.X)
    saved = qm.layers[1].bias.copy()
    try:
        qm.layers[1].bias = saved + np.where(np.arange(len(saved)) % 2, 5000, -5000)
        after = layer_errors(fm, qm, ds.X)
    finally:
        qm.layers[1].bias = saved
    assert after[2].snr_db < before[2].snr_db - 10
    assert after[1].snr_db == pytest.approx(before[1].snr_db)  # the layer before is untouched


def test_inputs_outside_the_calibrated_range_count_as_clipped(models) -> None:
    ds, fm, qm = models["relu"]
    x = ds.X.copy()
    x[:10, 0] = ds.X[:, 0].max() * 10
    errors = layer_errors(fm, qm, x)
    assert errors[0].clipped == 10
    assert np.all(golden.quantize_input(qm, x)[:10, 0] == 255)


# ---------------------------------------------------------------------------------------------------
# The commands that print them


@pytest.fixture(scope="module")
def iris_files(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("metrics-cli")
    npz = tmp / "iris.npz"
    train(load_dataset("iris"), TrainConfig(hidden=(8,), seed=1, epochs=60)).save(npz)
    enn = tmp / "iris.enn"
    assert main(["quantize", str(npz), "--data", "iris", "-o", str(enn), "--json"]) == 0
    return npz, enn


def test_evaluate_prints_and_returns_the_confusion_matrix(iris_files, capsys) -> None:
    _, enn = iris_files
    capsys.readouterr()
    assert main(["evaluate", str(enn), "iris"]) == 0
    out = capsys.readouterr().out
    assert "recall" in out and " 0 setosa" in out and " 2 virginica" in out
    assert main(["evaluate", str(enn), "iris", "--json", "--predictions", "--labels"]) == 0
    result = json.loads(capsys.readouterr().out)
    cm = np.array(result["confusion"])
    assert cm.sum() == 150 and np.trace(cm) == result["correct"]
    assert [c["label"] for c in result["per_class"]] == ["setosa", "versicolor", "virginica"]
    assert set(result["predictions"]) <= {"setosa", "versicolor", "virginica"}
    assert main(["evaluate", str(enn), "iris", "--json", "--predictions"]) == 0
    assert set(json.loads(capsys.readouterr().out)["predictions"]) <= {0, 1, 2}


def test_labels_on_a_regression_model_is_a_user_error(tmp_path, capsys) -> None:
    npz = tmp_path / "d.npz"
    train(load_dataset("diabetes"), TrainConfig(hidden=(4,), seed=1, epochs=5)).save(npz)
    assert main(["evaluate", str(npz), "diabetes", "--predictions", "--labels"]) == 2
    assert "regression" in capsys.readouterr().err


def test_quantize_prints_the_per_layer_table(iris_files, tmp_path, capsys) -> None:
    npz, _ = iris_files
    assert main(["quantize", str(npz), "--data", "iris", "-o", str(tmp_path / "m.enn")]) == 0
    out = capsys.readouterr().out
    assert "per layer, integer vs float activations" in out
    table = out[out.index("tensor") :].splitlines()
    assert [line.split()[0] for line in table[1:]] == ["input", "layer", "output"]
    assert main(["quantize", str(npz), "--data", "iris", "-o", str(tmp_path / "m.enn"), "--json"]) == 0
    layers = json.loads(capsys.readouterr().out)["layers"]
    assert [x["name"] for x in layers] == ["input", "layer 0", "output"]
    assert all(x["snr_db"] is None or x["snr_db"] > 20 for x in layers)
