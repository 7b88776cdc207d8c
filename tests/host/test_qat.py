"""Quantization-aware fine-tuning: never worse than plain quantization on the calibration rows, usually
better; the simulated integer pass tracks the real one (golden)."""

from __future__ import annotations

import numpy as np
import pytest

from edgenn import golden
from edgenn.data import Dataset
from edgenn.nn import Params, TrainConfig, train
from edgenn.qat import _grids, _input_tensor, agreement_score, fake_forward, fine_tune
from edgenn.quantize import Calibration, quantize


def interaction_set(n: int = 300) -> Dataset:
    """Three classes from a product of features: boundaries where 8-bit rounding flips a few rows."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(n, 6))
    y = ((X[:, 0] * X[:, 1] + 0.5 * X[:, 2] + 0.3 * rng.normal(size=n)) > 0).astype(int) + (X[:, 3] > 1)
    return Dataset("inter", "inter.csv", X, y, [f"f{i}" for i in range(6)], "c", "classify", ["a", "b", "c"])


CASES = [(act, seed) for act in ("relu", "sigmoid", "tanh") for seed in (0, 1, 2)]


@pytest.mark.parametrize(("activation", "seed"), CASES)
def test_qat_never_lowers_agreement_on_the_calibration_rows(activation, seed):
    ds = interaction_set()
    fm = train(ds, TrainConfig(hidden=(16,), activation=activation, seed=seed, folds=0, epochs=150))
    plain, _ = quantize(fm, ds.X)
    result = fine_tune(fm, ds.X, seed=seed)
    assert result.plain_score == agreement_score(fm, plain, ds.X)
    assert agreement_score(fm, result.model, ds.X) >= agreement_score(fm, plain, ds.X)
    assert result.qat_score >= result.plain_score or not result.used


def test_qat_improves_agreement_somewhere():
    ds = interaction_set()
    gains = []
    for activation, seed in CASES:
        fm = train(ds, TrainConfig(hidden=(16,), activation=activation, seed=seed, folds=0, epochs=150))
        result = fine_tune(fm, ds.X, seed=seed)
        gains.append(result.qat_score - result.plain_score)
    assert sum(g > 0 for g in gains) >= len(CASES) // 2 and min(gains) >= -1e-12


@pytest.mark.parametrize("activation", ["relu", "sigmoid", "tanh"])
def test_the_simulated_pass_tracks_the_integer_model(activation):
    ds = interaction_set()
    fm = train(ds, TrainConfig(hidden=(16, 8), activation=activation, seed=0, folds=0, epochs=100))
    qm, _ = quantize(fm, ds.X, calibration=Calibration(bias_correction=False))
    params = Params(fm.layer_sizes)
    for i, (w, b) in enumerate(zip(fm.weights, fm.biases)):
        params.W[i][...], params.b[i][...] = w, b
    a0, s_in = _input_tensor(fm, qm, ds.X)
    simulated, _ = fake_forward(params, _grids(fm, ds.X, Calibration()), a0, s_in)
    real = golden.dequantize(qm, golden.forward_q(qm, golden.quantize_input(qm, ds.X)))
    assert np.mean(np.argmax(simulated, axis=1) == np.argmax(real, axis=1)) >= 0.98
    spread = np.ptp(real)
    assert np.sqrt(np.mean((simulated - real) ** 2)) < 0.03 * spread
