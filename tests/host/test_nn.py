"""The NumPy MLP: gradients against finite differences, optimizers, early stopping, reproducibility."""

from __future__ import annotations

import numpy as np
import pytest

from edgenn.data import Dataset, load_dataset, stratified_split
from edgenn.errors import UserError
from edgenn.floatmodel import FloatModel
from edgenn.nn import (
    Params,
    TrainConfig,
    fit_arrays,
    forward,
    init_params,
    loss_and_grads,
    output_loss,
    softmax,
    split_for_model,
    train,
)


def numeric_grads(params: Params, activations, task, x, t, weight_decay, eps=1e-6) -> list[np.ndarray]:
    """Central differences of the loss for every parameter."""
    grads = []
    for p in params.arrays():
        g = np.zeros_like(p)
        for idx in np.ndindex(p.shape):
            old = p[idx]
            p[idx] = old + eps
            up, _ = loss_and_grads(params, activations, task, x, t, weight_decay)
            p[idx] = old - eps
            down, _ = loss_and_grads(params, activations, task, x, t, weight_decay)
            p[idx] = old
            g[idx] = (up - down) / (2 * eps)
        grads.append(g)
    return grads


@pytest.mark.parametrize("activation", ["relu", "sigmoid", "tanh"])
@pytest.mark.parametrize("task", ["classify", "regress"])
@pytest.mark.parametrize("weight_decay", [0.0, 0.1])
def test_backprop_matches_finite_differences(activation, task, weight_decay):
    rng = np.random.default_rng(7)
    sizes = [4, 5, 3, 3 if task == "classify" else 2]
    params = init_params(sizes, activation, rng)
    for b in params.b:  # nonzero biases so their gradients are exercised away from the init
        b += rng.normal(0, 0.3, size=b.shape)
    activations = [activation, activation, "identity"]
    x = rng.normal(size=(6, 4))
    t = rng.integers(0, 3, size=6) if task == "classify" else rng.normal(size=(6, 2))
    _, analytic = loss_and_grads(params, activations, task, x, t, weight_decay)
    numeric = numeric_grads(params, activations, task, x, t, weight_decay)
    for a, n in zip(analytic.arrays(), numeric):
        assert np.allclose(a, n, rtol=1e-5, atol=1e-7), np.max(np.abs(a - n))


def test_weight_decay_adds_to_the_loss_and_not_to_biases():
    rng = np.random.default_rng(0)
    params = init_params([3, 4, 2], "tanh", rng)
    x, t = rng.normal(size=(5, 3)), rng.integers(0, 2, size=5)
    plain, g0 = loss_and_grads(params, ["tanh", "identity"], "classify", x, t, 0.0)
    decayed, g1 = loss_and_grads(params, ["tanh", "identity"], "classify", x, t, 0.5)
    assert np.isclose(decayed - plain, 0.25 * sum(np.sum(w * w) for w in params.W))
    assert np.allclose(g1.W[0] - g0.W[0], 0.5 * params.W[0])
    assert np.allclose(g1.b[0], g0.b[0])


def test_softmax_cross_entropy_is_stable_for_huge_logits():
    z = np.array([[1000.0, 0.0, -1000.0], [0.0, 0.0, 0.0]])
    assert np.allclose(softmax(z).sum(axis=1), 1.0)
    loss, dz = output_loss("classify", z, np.array([0, 1]))
    assert np.isfinite(loss) and np.all(np.isfinite(dz))


def test_init_scales():
    rng = np.random.default_rng(1)
    relu = init_params([400, 300, 10], "relu", rng)
    assert abs(relu.W[0].std() - np.sqrt(2 / 400)) < 0.05 * np.sqrt(2 / 400)  # He
    tanh = init_params([400, 300, 10], "tanh", rng)
    limit = np.sqrt(6 / 700)
    assert (
        np.abs(tanh.W[0]).max() <= limit and abs(tanh.W[0].std() - limit / np.sqrt(3)) < 0.05 * limit
    )  # Xavier


def blobs(seed: int = 0, n: int = 60):
    rng = np.random.default_rng(seed)
    centers = np.array([[2.0, 0.0], [-2.0, 0.0], [0.0, 2.5]])
    y = np.arange(n) % 3
    return centers[y] + rng.normal(0, 0.5, size=(n, 2)), y


@pytest.mark.parametrize("optimizer", ["adam", "sgd"])
@pytest.mark.parametrize("activation", ["relu", "sigmoid", "tanh"])
def test_every_optimizer_learns_a_tiny_classification(optimizer, activation):
    x, y = blobs()
    config = TrainConfig(
        hidden=(8,), activation=activation, optimizer=optimizer, epochs=150, patience=0, batch_size=16, seed=0
    )
    result = fit_arrays(x, y, None, None, task="classify", n_outputs=3, config=config)
    z = forward(result.params, [activation, "identity"], x.astype(np.float32))[-1]
    assert np.mean(np.argmax(z, axis=1) == y) >= 0.95
    assert result.history[-1]["train_loss"] < 0.5 * result.history[0]["train_loss"]


@pytest.mark.parametrize("optimizer", ["adam", "sgd"])
def test_every_optimizer_learns_a_tiny_regression(optimizer):
    rng = np.random.default_rng(2)
    x = rng.uniform(-1, 1, size=(80, 2))
    t = (np.sin(2 * x[:, 0]) + 0.5 * x[:, 1])[:, None]
    config = TrainConfig(hidden=(16,), activation="tanh", optimizer=optimizer, epochs=300, patience=0, seed=0)
    result = fit_arrays(x, t, None, None, task="regress", n_outputs=1, config=config)
    z = forward(result.params, ["tanh", "identity"], x.astype(np.float32))[-1]
    assert np.sqrt(np.mean((z - t) ** 2)) < 0.15 * t.std() + 0.05


def test_early_stopping_restores_the_best_epoch():
    x, y = blobs(0, 90)
    xv, yv = blobs(1, 30)
    yv = (yv + 1) % 3  # validation labels that disagree with training: validation loss soon rises
    config = TrainConfig(hidden=(8,), epochs=300, patience=5, seed=0)
    result = fit_arrays(x, y, xv, yv, task="classify", n_outputs=3, config=config)
    assert result.epochs_run < 300
    assert result.epochs_run == result.best_epoch + 5
    val_losses = [h["val_loss"] for h in result.history]
    assert result.best_epoch == 1 + int(np.argmin(val_losses))
    z = forward(result.params, ["relu", "identity"], xv.astype(np.float32))[-1]
    assert np.isclose(output_loss("classify", z, yv)[0], min(val_losses), rtol=1e-5)


def test_training_is_reproducible_with_a_seed():
    ds = load_dataset("iris")
    a = train(ds, TrainConfig(epochs=20, seed=4))
    b = train(ds, TrainConfig(epochs=20, seed=4))
    c = train(ds, TrainConfig(epochs=20, seed=5))
    for wa, wb in zip(a.weights, b.weights):
        assert np.array_equal(wa, wb)
    assert not np.array_equal(a.weights[0], c.weights[0])


def test_train_records_what_later_commands_need(tmp_path):
    ds = load_dataset("diabetes")
    model = train(
        ds, TrainConfig(hidden=(8,), epochs=30, seed=1, folds=0, test_fraction=0.2, val_fraction=0.15)
    )
    assert model.task == "regress" and model.labels == ["progression"]
    assert model.meta["label_column"] == "progression"
    assert set(model.meta["metrics"]) == {"train", "val", "test"}
    path = tmp_path / "m.npz"
    model.save(path)
    loaded = FloatModel.load(path)
    assert np.allclose(loaded.predict(ds.X), model.predict(ds.X))
    split = split_for_model(loaded, ds)
    assert split is not None and np.array_equal(split.test, stratified_split(ds, 0.2, 0.15, seed=1).test)
    rmse = np.sqrt(np.mean((loaded.predict(ds.X[split.test])[:, 0] - ds.y[split.test]) ** 2))
    assert np.isclose(rmse, model.meta["metrics"]["test"]["rmse"])
    other = Dataset(ds.name, ds.source, ds.X + 1, ds.y, ds.feature_names, ds.label_column, ds.task, ds.labels)
    assert split_for_model(loaded, other) is None


def test_regression_targets_are_standardized_on_training_rows():
    ds = load_dataset("diabetes")
    model = train(ds, TrainConfig(epochs=1, seed=2, folds=0, test_fraction=0.2))
    rows = stratified_split(ds, 0.2, 0.0, seed=2).train
    assert np.isclose(model.target_mean[0], ds.y[rows].mean()) and np.isclose(
        model.target_std[0], ds.y[rows].std()
    )


def test_bad_configs_are_user_errors():
    for bad in (
        TrainConfig(activation="gelu"),
        TrainConfig(optimizer="rmsprop"),
        TrainConfig(epochs=0),
        TrainConfig(lr=-1.0),
        TrainConfig(hidden=(4, 0)),
    ):
        with pytest.raises(UserError):
            bad.check()


def test_divergence_is_reported():
    x, y = blobs()
    config = TrainConfig(hidden=(8,), optimizer="sgd", lr=1e6, epochs=50, patience=0)
    with pytest.raises(UserError, match="diverged"):
        fit_arrays(x * 1e3, y, None, None, task="classify", n_outputs=3, config=config)
