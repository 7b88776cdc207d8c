"""Anomaly detection: an autoencoder trained on normal rows only, its score, and its threshold.

The math, float side (z = the model's standardized inputs, z_hat = the network's reconstruction of z):

    residual      e_d   = z_d - z_hat_d                                   (per feature d)
    score         s(x)  = sum_d  w_d * e_d**2  +  v_d * z_d**2
    weights       w_d   = ALPHA / mean_oof(e_d**2)   v_d = (1 - ALPHA) / mean(z_d**2) = 1 - ALPHA
    threshold     T     = quantile_q( s over the out-of-fold rows )          x is anomalous iff s(x) > T

The first term is the reconstruction error with each feature's error measured against its own typical
out-of-fold error (a feature the network cannot learn does not drown the others); the second is the
per-feature deviation from the normal mean (a diagonal Gaussian), which catches a single feature far out
of its range even where the network extrapolates it. `mean_oof` means: k-fold cross-validation over the
normal rows, each row scored by the fold model that did not see it; those out-of-fold scores are what a
new normal row looks like, so their q-quantile is the threshold (a fraction 1 - q of normal rows flagged).

Integer side (docs/model-format.md, "Anomaly score"): u_d = the input codes (0..255), r_d = q_d + 128 the
reconstruction codes (the output layer is quantized onto the input's own code grid), m_d = the code of the
normal mean, c_d and e_d small non-negative integer weights:

    S = sum_d  c_d * (u_d - r_d)**2  +  e_d * (u_d - m_d)**2      anomalous iff S > T_int

with 65025 * sum_d (c_d + e_d) < 2**30 checked by the writer, so S never leaves a 31-bit small int.
"""

from __future__ import annotations

import hashlib
import math
import time
from collections.abc import Callable
from dataclasses import replace

import numpy as np

from edgenn import frontend, golden, nn
from edgenn.errors import UserError
from edgenn.floatmodel import FloatModel
from edgenn.frontend import FrontEnd
from edgenn.modelfile import SCORE_LIMIT, QuantModel

DEFAULT_QUANTILE = 0.99
ALPHA = 0.5  # share of the reconstruction term in the score (the rest: per-feature deviation)
MIN_RESIDUAL = 1e-2  # floor of mean_oof(e_d**2), in standardized units: a perfectly learned feature
MIN_ROWS = 10  # fewer normal rows cannot give a threshold (a quantile of out-of-fold scores)
CODE_SQ_MAX = 255 * 255  # the largest (u - r)**2 and (u - m)**2 on the board
WEIGHT_MAX = 4095  # c_d, e_d are stored as u16; this many levels is plenty (the sum bound binds first)


def default_hidden(n_inputs: int) -> tuple[int, ...]:
    """A wide-narrow-wide autoencoder: the bottleneck (a quarter of the inputs, at least 2, at most half
    the outer width) forces the network to learn how normal features go together; the outer layers
    give it room to."""
    outer = int(min(64, max(8, 2 * n_inputs)))
    return (outer, max(2, min(n_inputs // 4, outer // 2)), outer)


def _folds(n: int, k: int, seed: int) -> list[np.ndarray]:
    order = np.random.default_rng(seed).permutation(n)
    return [np.sort(f) for f in np.array_split(order, k)]


def _fit(z_train: np.ndarray, z_val: np.ndarray | None, config: nn.TrainConfig, stage: str, progress):
    return nn.fit_arrays(
        z_train,
        z_train,
        z_val,
        z_val,
        task="regress",
        n_outputs=z_train.shape[1],
        config=config,
        progress=progress,
        stage=stage,
    )


def reconstruct(params: nn.Params, activations: list[str], z: np.ndarray) -> np.ndarray:
    return nn.forward(params, activations, z)[-1]


def score_terms(model: FloatModel, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(e**2, z**2) per row and feature, float64 (n, d)."""
    z = model.standardize(X)
    e = z - model.forward(X)
    return e * e, z * z


def float_scores(model: FloatModel, X: np.ndarray) -> np.ndarray:
    """s(x) of raw rows (windows with a front end), float64 (n,)."""
    if model.task != "anomaly":
        raise UserError("not an anomaly model (train one with --task anomaly)")
    e2, z2 = score_terms(model, np.asarray(X, dtype=np.float64))
    return e2 @ model.score_weights + z2 @ model.deviation_weights


def check_options(threshold_quantile: float, folds: int) -> None:
    if not 0.5 <= threshold_quantile < 1.0:
        raise UserError(f"--threshold-quantile must be in [0.5, 1), got {threshold_quantile}")
    if folds < 2:
        raise UserError(f"--folds {folds}: the threshold needs out-of-fold scores (at least 2 folds)")


def check_rows(n: int, folds: int, source: str = "data") -> None:
    if n == 0:
        raise UserError(f"{source}: no normal rows to train on")
    if n < MIN_ROWS:
        raise UserError(
            f"{source}: {n} normal rows; estimating a threshold needs at least {MIN_ROWS} "
            f"(out-of-fold scores of {folds}-fold cross-validation)"
        )


def rows_fingerprint(X: np.ndarray) -> str:
    """Short hash of the normal rows a model was fitted on, so that a report on the same rows can say
    their scores are not those of new data."""
    return hashlib.sha256(np.ascontiguousarray(X, dtype=np.float64).tobytes()).hexdigest()[:16]


def train_anomaly(
    X_normal: np.ndarray,
    *,
    hidden: tuple[int, ...] | None = None,
    activation: str = "tanh",
    epochs: int | None = None,
    max_epochs: int = 300,
    patience: int = 30,
    seed: int = 0,
    threshold_quantile: float = DEFAULT_QUANTILE,
    folds: int = 5,
    weight_decay: float = 1e-3,
    feature_names: list[str] | None = None,
    progress: Callable[[nn.EpochReport], None] | None = None,
    source: str = "data",
) -> FloatModel:
    """An autoencoder on normal rows (raw features, already through any front end), its score weights
    from out-of-fold residuals, and the threshold: the `threshold_quantile` of the out-of-fold scores.
    epochs None: each fold stops early (after `patience` epochs without a better loss on its held-out
    rows, at most `max_epochs`) and the final fit runs the median best epoch; else exactly `epochs`."""
    started = time.perf_counter()
    x = np.asarray(X_normal, dtype=np.float64)
    check_options(threshold_quantile, folds)
    check_rows(len(x), folds, source)
    n, d = x.shape
    hidden = tuple(hidden) if hidden else default_hidden(d)
    config = nn.TrainConfig(
        hidden=hidden,
        activation=activation,
        epochs=epochs or max_epochs,
        weight_decay=weight_decay,
        patience=0 if epochs else patience,
        folds=folds,
        seed=seed,
        batch_size=32,
    )
    config.check()
    mean, std = nn.fit_scaling(x)
    acts = [activation] * len(hidden) + ["identity"]
    e2_oof = np.zeros((n, d))
    z2_oof = np.zeros((n, d))
    best_epochs = []
    for f, val in enumerate(_folds(n, folds, seed)):
        train = np.setdiff1d(np.arange(n), val)
        m, s = nn.fit_scaling(x[train])
        z_tr, z_val = (x[train] - m) / s, (x[val] - m) / s
        fold_config = replace(config, seed=seed * 1000 + f + 1)
        result = _fit(z_tr, None if epochs else z_val, fold_config, f"fold {f + 1}/{folds}", progress)
        best_epochs.append(result.best_epoch)
        e = z_val - reconstruct(result.params, acts, z_val.astype(np.float32))
        e2_oof[val] = e * e
        z2_oof[val] = z_val * z_val
    final_epochs = epochs or max(1, int(round(float(np.median(best_epochs)))))
    z = (x - mean) / std
    result = _fit(z, None, replace(config, epochs=final_epochs, patience=0), "final fit", progress)
    w = ALPHA / np.maximum(e2_oof.mean(axis=0), MIN_RESIDUAL)
    v = np.full(d, 1.0 - ALPHA)
    oof = e2_oof @ w + z2_oof @ v
    threshold = float(np.quantile(oof, threshold_quantile))
    names = list(feature_names) if feature_names else [f"x{j}" for j in range(d)]
    return FloatModel(
        weights=[np.asarray(a, np.float64) for a in result.params.W],
        biases=[np.asarray(a, np.float64) for a in result.params.b],
        activations=acts,
        task="anomaly",
        labels=list(names),
        feature_names=names,
        input_mean=mean,
        input_std=std,
        score_weights=w,
        deviation_weights=v,
        threshold=threshold,
        meta={
            "anomaly": {
                "threshold_quantile": threshold_quantile,
                "threshold": threshold,
                "folds": folds,
                "n_normal": int(n),
                "oof_scores": np.round(oof, 6).tolist(),
                "best_epochs": best_epochs,
            },
            "config": {"hidden": list(hidden), "activation": activation, "seed": seed},
            "epochs": final_epochs,
            "n_rows": int(n),
            "train_seconds": round(time.perf_counter() - started, 4),
        },
    )


def train_anomaly_windows(X_windows: np.ndarray, front_end: FrontEnd, **kwargs) -> FloatModel:
    """`train_anomaly` on the front end's float features of raw windows; the model keeps the front end
    (it takes raw windows everywhere) and its feature names are the raw columns."""
    feats = window_features(front_end, X_windows, kwargs.get("source", "data"))
    model = train_anomaly(feats, **{**kwargs, "feature_names": front_end.feature_names()})
    return with_front_end(model, front_end)


def window_features(front_end: FrontEnd, X_windows: np.ndarray, source: str = "data") -> np.ndarray:
    """The front end's float features of raw windows; a bad window is one line naming DATA."""
    try:
        return frontend.features_float(front_end, np.asarray(X_windows, dtype=np.float64))
    except ValueError as exc:
        raise UserError(f"{source}: {exc}") from None


def with_front_end(model: FloatModel, front_end: FrontEnd) -> FloatModel:
    """A model trained on the front end's features -> the same model taking raw windows (it keeps the
    front end; its feature names are the raw columns)."""
    model.frontend = front_end
    model.feature_names = list(front_end.columns)
    model.meta["frontend"] = frontend.describe(front_end)
    return model


# ---------------------------------------------------------------------------------------------------
# The integer score: weights onto the code grid, the golden computation


def integer_weights(w: np.ndarray, v: np.ndarray, s_in: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
    """(c, e, K): integer weights with S ~= K * s. A code step of feature d is s_in[d] standardized
    units, so e_d**2 = s_in**2 * (u - r)**2: c_d = round(K * w_d * s_in[d]**2), likewise e_d. K is the
    largest that keeps every weight <= WEIGHT_MAX and 65025 * sum(c + e) < 2**30 (the overflow proof);
    a positive float weight keeps an integer weight of at least 1."""
    a = np.asarray(w, np.float64) * s_in**2
    b = np.asarray(v, np.float64) * s_in**2
    top = max(float(a.max(initial=0.0)), float(b.max(initial=0.0)))
    if top <= 0:
        raise UserError("the anomaly score has no positive weight")
    budget = (SCORE_LIMIT - 1) // CODE_SQ_MAX  # the most sum(c + e) may reach
    k = WEIGHT_MAX / top
    for _ in range(64):
        c = np.where(a > 0, np.maximum(1, np.round(k * a)), 0).astype(np.int64)
        e = np.where(b > 0, np.maximum(1, np.round(k * b)), 0).astype(np.int64)
        if int(c.sum() + e.sum()) <= budget:
            return c, e, k
        k *= 0.9 * budget / float(c.sum() + e.sum())
    raise UserError(f"{len(a)} features are too many for a 31-bit anomaly score")


def integer_threshold(threshold: float, k: float) -> int:
    """T_int = round(K * T); the board flags S > T_int."""
    return int(min(SCORE_LIMIT - 1, math.floor(k * threshold + 0.5)))


def attach_integer_score(qm: QuantModel, fm: FloatModel, s_in: np.ndarray, z_in: np.ndarray) -> None:
    """The quantizer's last step for an anomaly model: integer weights, center codes and threshold.
    s_in, z_in: the input code grid (code u means (u - z_in) * s_in standardized units), which the
    output layer shares."""
    c, e, k = integer_weights(fm.score_weights, fm.deviation_weights, np.asarray(s_in, np.float64))
    qm.score_weights = c
    qm.deviation_weights = e
    qm.score_center = np.clip(np.asarray(z_in, np.int64), 0, 255)
    qm.threshold = integer_threshold(float(fm.threshold), k)


def golden_scores_q(model: QuantModel, u: np.ndarray) -> np.ndarray:
    """S from input codes uint8 (n, d): exactly the board's integer (int64 here, < 2**30 by the proof)."""
    u = np.asarray(u, dtype=np.int64).reshape(-1, model.n_inputs)
    r = golden.forward_q(model, u).astype(np.int64) + 128
    c = np.asarray(model.score_weights, np.int64)
    e = np.asarray(model.deviation_weights, np.int64)
    m = np.asarray(model.score_center, np.int64)
    s = ((u - r) ** 2) @ c + ((u - m) ** 2) @ e
    golden._check_below(s, SCORE_LIMIT, "anomaly score")
    return s


def golden_scores(model: QuantModel, X: np.ndarray) -> np.ndarray:
    """S of raw rows (windows with a front end): int64 (n,)."""
    if model.task != "anomaly":
        raise UserError("not an anomaly model (quantize one trained with --task anomaly)")
    return golden_scores_q(model, golden.quantize_input(model, X))


def golden_flags(model: QuantModel, X: np.ndarray) -> np.ndarray:
    return golden_scores(model, X) > int(model.threshold)


def score_closeness(fm: FloatModel, qm: QuantModel, X: np.ndarray) -> float:
    """Minus the RMS difference between the integer scores mapped back by the thresholds' ratio
    (S * T / T_int) and the float scores, in units of the float threshold: 0 is identical, higher is
    closer (what quantization-aware fine-tuning maximizes for an anomaly model)."""
    s_float = float_scores(fm, X)
    t_float = float(fm.threshold) or 1.0
    unit = t_float / max(1, int(qm.threshold))
    diff = (golden_scores(qm, X) * unit - s_float) / t_float
    return -float(np.sqrt(np.mean(diff * diff)))


def scores(model: FloatModel | QuantModel, X: np.ndarray) -> tuple[np.ndarray, float | int]:
    """(scores, threshold) of either kind of model: what `evaluate` compares (int64 and int for .enn)."""
    if isinstance(model, QuantModel):
        return golden_scores(model, X), int(model.threshold)
    return float_scores(model, X), float(model.threshold)
