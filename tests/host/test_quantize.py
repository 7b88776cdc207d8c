"""Post-training quantization: the integer model is valid, close to the float model, and honest about
what it had to change (warnings) or could not do (UserError)."""

from __future__ import annotations

import numpy as np
import pytest

from edgenn import golden
from edgenn import modelfile as mf
from edgenn.data import load_dataset
from edgenn.errors import UserError
from edgenn.floatmodel import FloatModel
from edgenn.nn import TrainConfig, split_for_model, train
from edgenn.quantize import (
    LUT_ACTIVE_RANGE,
    Calibration,
    _quantize_weights,
    _Tensor,
    quantize,
    sigmoid_lut,
    tanh_lut,
)

_TRAINED: dict = {}


def trained(dataset: str, activation: str = "relu", seed: int = 0):
    """(dataset, float model, split) trained once per test session with hidden 32,16."""
    key = (dataset, activation, seed)
    if key not in _TRAINED:
        ds = load_dataset(dataset)
        # the old holdout (20% test, 15% validation, early stopping): these tests score held-out rows
        holdout = TrainConfig(
            hidden=(32, 16), activation=activation, seed=seed, folds=0, test_fraction=0.2, val_fraction=0.15
        )
        fm = train(ds, holdout)
        _TRAINED[key] = (ds, fm, split_for_model(fm, ds))
    return _TRAINED[key]


@pytest.mark.parametrize(
    ("dataset", "activation"),
    [
        ("iris", "relu"),
        ("wine", "relu"),
        ("breast_cancer", "relu"),
        ("digits", "relu"),
        ("iris", "sigmoid"),
        ("wine", "tanh"),
    ],
)
def test_integer_accuracy_and_agreement(dataset: str, activation: str) -> None:
    """Calibrated on the training rows; scored on every row (held-out ones included): integer accuracy
    at most 0.5 points below float, argmax agreement >= 99%."""
    ds, fm, split = trained(dataset, activation)
    qm, warnings = quantize(fm, ds.X[split.train], name=dataset)
    assert warnings == []
    float_pred, int_pred = fm.predict(ds.X), golden.predict(qm, ds.X)
    float_acc, int_acc = np.mean(float_pred == ds.y), np.mean(int_pred == ds.y)
    assert int_acc >= float_acc - 0.005, (float_acc, int_acc)
    assert np.mean(float_pred == int_pred) >= 0.99


def test_regression_rmse_within_two_percent_in_target_units() -> None:
    ds, fm, split = trained("diabetes")
    qm, _ = quantize(fm, ds.X[split.train], name="diabetes")
    test = split.test
    float_pred, int_pred = fm.predict(ds.X[test]), golden.predict(qm, ds.X[test])
    float_rmse = np.sqrt(np.mean((float_pred[:, 0] - ds.y[test]) ** 2))
    int_rmse = np.sqrt(np.mean((int_pred[:, 0] - ds.y[test]) ** 2))
    assert int_rmse <= 1.02 * float_rmse, (float_rmse, int_rmse)
    # dequantized outputs are in the target's units, not standardized ones
    assert abs(np.mean(int_pred) - np.mean(ds.y)) < 0.2 * np.std(ds.y)
    assert np.sqrt(np.mean((int_pred - float_pred) ** 2)) < 0.05 * np.std(ds.y)


def test_integer_model_structure() -> None:
    ds, fm, split = trained("wine")
    qm, _ = quantize(fm, ds.X[split.train], name="wine")
    mf.validate(qm)
    assert (qm.task, qm.name, qm.labels, qm.feature_names) == (
        "classify",
        "wine",
        fm.labels,
        fm.feature_names,
    )
    assert [layer.activation for layer in qm.layers] == fm.activations
    for layer, w in zip(qm.layers, fm.weights):
        assert layer.weights.shape == w.T.shape and layer.weights.dtype == np.int8
        # per-neuron symmetric scale: every neuron uses the full int8 range
        assert np.all(np.abs(layer.weights.astype(int)).max(axis=1) == 127)
        assert np.all(mf.overflow_bound(layer.weights, layer.bias) < 2**29)
    assert len(set(qm.out_scale.tolist())) == 1  # one shared logit scale
    assert mf.to_bytes(mf.from_bytes(mf.to_bytes(qm))) == mf.to_bytes(qm)


def test_input_quantization_covers_the_training_range() -> None:
    ds, fm, split = trained("breast_cancer")
    qm, _ = quantize(fm, ds.X[split.train])
    codes = golden.quantize_input(qm, ds.X[split.train])
    assert codes.min(axis=0).max() > 0 and codes.max(axis=0).min() < 255  # margin on both sides, no clipping
    # the training range spans 256 / (1 + 2 * margin) codes per feature (the margin leaves room for new rows)
    span = 255 / (1 + 2 * Calibration().input_margin)
    assert np.all(codes.max(axis=0) - codes.min(axis=0) >= np.floor(span) - 1)


@pytest.mark.parametrize("activation", ["sigmoid", "tanh"])
def test_tables_follow_the_documented_formula(activation: str) -> None:
    ds, fm, split = trained("iris", activation)
    qm, _ = quantize(fm, ds.X[split.train])
    for layer in qm.layers[:-1]:
        assert layer.activation == activation and len(layer.lut) == 256
        table = np.frombuffer(layer.lut, dtype=np.uint8).astype(int)
        assert np.all(np.diff(table) >= 0)  # monotonic
        assert table[-1] - table[0] > 150  # the pre-activation range spans most of the curve
    # the builders against the formula
    q = np.arange(-128, 128)
    sig = np.frombuffer(sigmoid_lut(0.05, 3), np.uint8)
    np.testing.assert_array_equal(sig, np.clip(np.round(256 / (1 + np.exp(-0.05 * (q - 3)))), 0, 255))
    tnh = np.frombuffer(tanh_lut(0.02, -7), np.uint8).astype(int) - 128
    np.testing.assert_array_equal(tnh, np.clip(np.round(128 * np.tanh(0.02 * (q + 7))), -128, 127))
    lo, hi = LUT_ACTIVE_RANGE["tanh"]
    assert round(128 * np.tanh(hi + 1e-9)) == 127 and round(128 * np.tanh(lo - 1e-9)) == -128


def _tiny_model(w1: np.ndarray, b1: np.ndarray, w2: np.ndarray, task: str = "classify") -> FloatModel:
    n_in = w1.shape[0]
    return FloatModel(
        weights=[w1, w2],
        biases=[b1, np.zeros(w2.shape[1])],
        activations=["relu", "identity"],
        task=task,
        labels=[f"c{k}" for k in range(w2.shape[1])],
        feature_names=[f"x{j}" for j in range(n_in)],
        input_mean=np.zeros(n_in),
        input_std=np.ones(n_in),
    )


def test_a_multiplier_above_one_raises_the_output_scale_with_a_warning() -> None:
    """Big weights whose inputs cancel: the neuron's output range is finer than its weights resolve."""
    rng = np.random.default_rng(0)
    base = rng.normal(size=(200, 1))
    x = np.hstack([base, base + rng.normal(scale=1e-3, size=(200, 1))])
    fm = _tiny_model(
        np.array([[50.0, 1.0], [-50.0, 1.0]]), np.array([0.0, 0.0]), np.array([[1.0, -1.0], [0.5, 1.0]])
    )
    qm, warnings = quantize(fm, x)
    assert any("layer 0: output scale raised" in w for w in warnings), warnings
    mf.validate(qm)
    assert np.mean(golden.predict(qm, x) == fm.predict(x)) > 0.9


def test_overflow_proof_rescales_with_a_warning_or_refuses() -> None:
    """quantize() cannot fail the proof on its own (|bias| <= 2**27 and 4096*127*255 < 2**27), so the
    per-layer step is driven directly with input zero points far outside a byte."""
    w = np.full((300, 2), 1.0)
    tensor = _Tensor(scale=np.ones(300), zero=np.full(300, 20000, dtype=np.int64))
    warnings: list[str] = []
    w_q, bias, _ = _quantize_weights(w, np.array([0.0, 3.0]), tensor, 1, warnings)
    assert np.all(mf.overflow_bound(w_q, bias) < 2**29)
    assert len(warnings) == 1 and "layer 1: weight scale of neuron(s) 0, 1 raised" in warnings[0]
    far = _Tensor(scale=np.ones(300), zero=np.full(300, 10**7, dtype=np.int64))
    with pytest.raises(UserError, match=r"layer 2 neuron 0 fails the overflow proof"):
        _quantize_weights(w, np.zeros(2), far, 2, [])


def test_bias_guard_keeps_huge_biases_representable() -> None:
    fm = _tiny_model(np.array([[1e-6, 2.0]]), np.array([1e6, -3.0]), np.array([[1.0], [1.0]]), task="regress")
    fm.target_mean, fm.target_std = np.array([10.0]), np.array([2.0])
    fm.labels = ["y"]
    x = np.random.default_rng(1).normal(size=(100, 1))
    qm, _ = quantize(fm, x)
    assert np.all(np.abs(qm.layers[0].bias) <= 2**27 + 255 * 127)
    np.testing.assert_allclose(golden.predict(qm, x), fm.predict(x), rtol=0.02)


def test_refuses_bad_calibration_data_and_unsupported_models() -> None:
    ds, fm, split = trained("iris")
    with pytest.raises(UserError, match="rows of 4 features"):
        quantize(fm, ds.X[:, :3])
    with pytest.raises(UserError, match="rows of 4 features"):
        quantize(fm, ds.X[:0])
    bad = ds.X[:10].copy()
    bad[3, 1] = np.nan
    with pytest.raises(UserError, match="NaN"):
        quantize(fm, bad)
    deep = _tiny_model(np.ones((4, 2)), np.zeros(2), np.ones((2, 3)))
    deep.weights = [np.ones((4, 4))] * 17
    deep.biases = [np.zeros(4)] * 17
    deep.activations = ["relu"] * 16 + ["identity"]
    with pytest.raises(UserError, match="at most 16"):
        quantize(deep, ds.X)


def test_long_names_are_cut_to_the_format_limit() -> None:
    ds, fm, split = trained("iris")
    qm, _ = quantize(fm, ds.X, name="é" * 200)
    assert len(qm.name.encode()) <= 255 and qm.name == "é" * 127


def test_refuses_broken_float_models() -> None:
    x = np.random.default_rng(2).normal(size=(20, 2))
    nan_weights = _tiny_model(np.array([[np.nan, 1.0], [1.0, 1.0]]), np.zeros(2), np.ones((2, 2)))
    with pytest.raises(UserError, match="NaN or infinite weights"):
        quantize(nan_weights, x)
    zero_std = _tiny_model(np.ones((2, 2)), np.zeros(2), np.ones((2, 2)))
    zero_std.input_std = np.array([1.0, 0.0])
    with pytest.raises(UserError, match="zero standard deviation"):
        quantize(zero_std, x)
    tiny_std = _tiny_model(np.ones((2, 2)), np.zeros(2), np.ones((2, 2)))
    tiny_std.input_std = np.array([1.0, 1e-300])
    x_tiny = x.copy()
    x_tiny[:, 1] *= 1e-300
    with pytest.raises(UserError, match="feature 'x1'"):
        quantize(tiny_std, x_tiny)
