"""Training on every row: cross-validation folds, the refit, reproducibility, small-set fallbacks."""

from __future__ import annotations

import numpy as np
import pytest

from edgenn import nn
from edgenn.data import Dataset, load_dataset, stratified_folds, usable_folds
from edgenn.errors import UserError
from edgenn.nn import TrainConfig, train

FAST = dict(hidden=(8,), epochs=40, patience=5)


def test_folds_are_disjoint_cover_every_row_and_are_stratified():
    ds = load_dataset("wine")
    rows = np.arange(ds.n_rows)
    folds = stratified_folds(ds, rows, 5, seed=3)
    together = np.concatenate(folds)
    assert len(together) == ds.n_rows and np.array_equal(np.sort(together), rows)  # disjoint, complete
    for k in range(len(ds.labels)):
        n_class = int(np.sum(ds.y == k))
        per_fold = [int(np.sum(ds.y[f] == k)) for f in folds]
        assert max(per_fold) - min(per_fold) <= 1 and min(per_fold) >= n_class // 5
    assert max(map(len, folds)) - min(map(len, folds)) <= 1
    assert all(np.array_equal(a, b) for a, b in zip(folds, stratified_folds(ds, rows, 5, seed=3)))
    assert not all(np.array_equal(a, b) for a, b in zip(folds, stratified_folds(ds, rows, 5, seed=4)))


def test_regression_folds_spread_the_target_range():
    ds = load_dataset("diabetes")
    folds = stratified_folds(ds, np.arange(ds.n_rows), 5, seed=0)
    medians = [np.median(ds.y[f]) for f in folds]
    assert np.ptp(medians) < 0.25 * ds.y.std()
    assert sorted(np.concatenate(folds).tolist()) == list(range(ds.n_rows))


def test_the_saved_model_is_refitted_on_every_row(monkeypatch):
    ds = load_dataset("iris")
    seen = []
    real = nn.fit_arrays

    def counting(x_train, *args, **kwargs):
        seen.append((kwargs.get("stage"), len(x_train), None if args[1] is None else len(args[1])))
        return real(x_train, *args, **kwargs)

    monkeypatch.setattr(nn, "fit_arrays", counting)
    model = train(ds, TrainConfig(seed=0, **FAST))
    stages = [s for s, _, _ in seen]
    assert stages == [f"fold {i}/5" for i in range(1, 6)] + ["final fit"]
    assert [n for _, n, _ in seen[:5]] == [120] * 5 and [v for _, _, v in seen[:5]] == [30] * 5
    assert seen[-1][1] == 150 and seen[-1][2] == 0  # every row, no validation rows
    assert model.meta["metrics"]["train"]["n"] == 150
    assert np.allclose(model.input_mean, ds.X.mean(axis=0))  # scaling from every row too
    cv = model.meta["cv"]
    assert model.meta["epochs"] == cv["epochs"] == int(round(np.median(cv["best_epochs"])))
    assert len(model.meta["history"]["final"]) == cv["epochs"]
    assert len(model.meta["history"]["folds"]) == 5


def test_training_is_reproducible_per_seed():
    ds = load_dataset("wine")
    a, b, c = (train(ds, TrainConfig(seed=s, **FAST)) for s in (7, 7, 8))
    assert all(np.array_equal(x, y) for x, y in zip(a.weights, b.weights))
    assert a.meta["cv"] == b.meta["cv"] and a.meta["history"] == b.meta["history"]
    assert not np.array_equal(a.weights[0], c.weights[0])


def _tiny(per_class: tuple[int, ...]) -> Dataset:
    rng = np.random.default_rng(0)
    y = np.concatenate([np.full(n, k) for k, n in enumerate(per_class)])
    X = rng.normal(size=(len(y), 2)) + y[:, None]
    return Dataset(
        "tiny", "tiny.csv", X, y, ["a", "b"], "c", "classify", [str(k) for k in range(len(per_class))]
    )


def test_small_classes_fall_back_to_fewer_folds_with_a_note():
    ds = _tiny((3, 6))
    assert usable_folds(ds, np.arange(ds.n_rows), 5) == 3
    model = train(ds, TrainConfig(seed=0, **FAST))
    assert model.meta["cv"]["k"] == 3
    assert len(model.meta["notes"]) == 1 and "3 folds instead of 5" in model.meta["notes"][0]


def test_too_few_rows_say_how_many_there_are_and_are_needed():
    with pytest.raises(UserError, match=r"9 training rows, and class '1' has 1; .* at least 2"):
        train(_tiny((8, 1)), TrainConfig(**FAST))


def test_holdout_is_off_by_default_and_still_available():
    ds = load_dataset("iris")
    assert TrainConfig().test_fraction == 0.0 and TrainConfig().folds == 5
    model = train(ds, TrainConfig(seed=0, test_fraction=0.2, **FAST))
    assert model.meta["metrics"]["test"]["n"] == 30 and model.meta["metrics"]["train"]["n"] == 120
    assert model.meta["cv"]["k"] == 5
