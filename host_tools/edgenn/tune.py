"""The best model that fits the board: a small seeded search scored by cross-validation.

Candidates are drawn (seeded) from a fixed space of hidden sizes and depths, activations and weight
decays; the default network (`TrainConfig()`) is always scored first, so the winner is at least as good
as the defaults by the same yardstick. Before any training, each candidate's integer form (its shape
quantized with placeholder weights: the file size and layer blocks depend only on the shape) is checked
against the board profile with `edgenn.fit.check_fit`; models that do not fit are listed, not trained.
Every candidate is scored by the same stratified k-fold cross-validation as `edgenn train` (same folds
for every candidate, from `seed`), and the best is then trained on every row like `edgenn train` does.
The top `estimate_top` candidates also get an estimated latency (`edgenn.machinecode.estimate`).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace

import numpy as np

from edgenn import modelfile
from edgenn.boards import BoardProfile
from edgenn.data import Dataset
from edgenn.errors import UserError
from edgenn.fit import check_fit
from edgenn.floatmodel import FloatModel
from edgenn.frontend import FrontEnd
from edgenn.modelfile import QuantModel
from edgenn.nn import TrainConfig, cross_validate, train, train_windows, usable_folds, window_features
from edgenn.quantize import quantize

HIDDEN_SPACE: tuple[tuple[int, ...], ...] = (
    (8,),
    (16,),
    (32,),
    (64,),
    (128,),
    (16, 8),
    (32, 16),
    (64, 32),
    (32, 32),
    (128, 64),
    (32, 16, 8),
    (64, 32, 16),
)
ACTIVATION_SPACE = ("relu", "tanh")
WEIGHT_DECAY_SPACE = (1e-3, 1e-2, 3e-2)
DEFAULT_BUDGET_S = 60.0


@dataclass
class Candidate:
    hidden: tuple[int, ...]
    activation: str
    weight_decay: float
    fits: bool = False
    fit_summary: str = ""
    model_bytes: int = 0
    macs: int = 0
    cv_mean: float | None = None
    cv_std: float | None = None
    epochs: int | None = None
    seconds: float = 0.0
    is_default: bool = False
    latency_us: float | None = None  # estimated on the board's core (edgenn estimate), top candidates only
    shape_model: QuantModel | None = field(default=None, repr=False)  # placeholder weights: sizes only

    def as_dict(self) -> dict:
        return {
            "hidden": list(self.hidden),
            "activation": self.activation,
            "weight_decay": self.weight_decay,
            "fits": self.fits,
            "fit": self.fit_summary,
            "bytes": self.model_bytes,
            "macs": self.macs,
            "cv_mean": self.cv_mean,
            "cv_std": self.cv_std,
            "epochs": self.epochs,
            "seconds": round(self.seconds, 3),
            "default": self.is_default,
            "latency_us": self.latency_us,
        }


@dataclass
class TuneResult:
    board: str
    metric: str
    folds: int
    candidates: list[Candidate] = field(default_factory=list)  # in the order they were tried
    best: Candidate | None = None
    model: FloatModel | None = None
    seconds: float = 0.0
    stopped_by_budget: bool = False

    def leaderboard(self) -> list[Candidate]:
        """Scored candidates best first (ties: fewer MACs), then the ones that do not fit."""
        scored = [c for c in self.candidates if c.cv_mean is not None]
        sign = -1.0 if self.metric == "accuracy" else 1.0
        scored.sort(key=lambda c: (sign * c.cv_mean, c.macs))
        return scored + [c for c in self.candidates if not c.fits]


def search_space(seed: int, default: TrainConfig) -> list[tuple[tuple[int, ...], str, float]]:
    """Every combination, default first, the rest in a seeded random order."""
    first = (tuple(default.hidden), default.activation, default.weight_decay)
    rest = [
        (h, a, w)
        for h in HIDDEN_SPACE
        for a in ACTIVATION_SPACE
        for w in WEIGHT_DECAY_SPACE
        if (h, a, w) != first
    ]
    order = np.random.default_rng(seed).permutation(len(rest))
    return [first] + [rest[i] for i in order]


def _shape_fit(
    dataset: Dataset,
    candidate: Candidate,
    board: str | BoardProfile,
    raw: Dataset | None = None,
    front_end: FrontEnd | None = None,
) -> None:
    """Quantize the candidate's shape with placeholder weights: bytes and blocks depend on the shape only.
    With a front end, `dataset` holds its features and `raw` the windows (the model stores the front end
    and is calibrated on raw windows, as `edgenn quantize` does)."""
    sizes = [dataset.n_features, *candidate.hidden, len(dataset.labels) if dataset.task == "classify" else 1]
    rng = np.random.default_rng(0)
    placeholder = FloatModel(
        weights=[rng.normal(0, 0.1, (a, b)) for a, b in zip(sizes[:-1], sizes[1:])],
        biases=[np.zeros(b) for b in sizes[1:]],
        activations=[candidate.activation] * len(candidate.hidden) + ["identity"],
        task=dataset.task,
        labels=list(dataset.labels),
        feature_names=list(dataset.feature_names),
        input_mean=dataset.X.mean(axis=0),
        input_std=np.where(dataset.X.std(axis=0) > 0, dataset.X.std(axis=0), 1.0),
        target_mean=np.zeros(1) if dataset.task == "regress" else np.zeros(0),
        target_std=np.ones(1) if dataset.task == "regress" else np.ones(0),
    )
    calibration = dataset.X[:64]
    if front_end is not None and raw is not None:
        placeholder.frontend = front_end
        placeholder.feature_names = list(raw.feature_names)
        calibration = raw.X[:64]
    qm, _ = quantize(placeholder, calibration)
    candidate.shape_model = qm
    result = check_fit(qm, board)
    candidate.fits = result.fits
    candidate.fit_summary = result.summary()
    candidate.model_bytes = len(modelfile.to_bytes(qm))
    candidate.macs = sum(a * b for a, b in zip(sizes[:-1], sizes[1:]))


def _latency(candidate: Candidate, board: str | BoardProfile) -> float | None:
    """Estimated µs per inference from the board's own machine code in an emulator, with the kernel
    deploy installs there (the instruction counts depend on the shape, not the weights); None when the
    board has no cycle model or the emulator is missing."""
    from edgenn.machinecode import MachineCodeError
    from edgenn.machinecode.estimate import estimate, input_rows

    try:
        qm = candidate.shape_model
        return float(estimate(qm, board, rows=input_rows(qm, n=4))["us"])
    except (UserError, MachineCodeError):
        return None


def tune(
    dataset: Dataset,
    board: str | BoardProfile,
    budget_s: float = DEFAULT_BUDGET_S,
    seed: int = 0,
    base: TrainConfig | None = None,
    max_candidates: int | None = None,
    estimate_top: int = 0,
    progress: Callable[[Candidate, int], None] | None = None,
    stage: Callable[[str], None] | None = None,
    front_end: FrontEnd | None = None,
) -> TuneResult:
    """Search, then train the best candidate on every row. Stops starting new candidates once `budget_s`
    has passed (the default network is always scored). `progress` hears of every candidate tried (and
    the size of the space), `stage` of the steps after the search. With a sensor `front_end`, DATA's rows
    are raw windows: candidates are scored on its features and the best keeps it (as `train --features`)."""
    started = time.perf_counter()
    raw = dataset
    if front_end is not None:
        dataset = window_features(raw, front_end)
    base = base or TrainConfig(seed=seed)
    rows = np.arange(dataset.n_rows)
    folds = usable_folds(dataset, rows, base.folds if base.folds >= 2 else 5)
    if folds < 2:
        raise UserError(
            f"{dataset.source}: too few rows per class to cross-validate ({dataset.n_rows} rows); "
            "tune needs at least 2 rows of every class"
        )
    metric = "accuracy" if dataset.task == "classify" else "rmse"
    board_name = board if isinstance(board, str) else board.name
    result = TuneResult(board_name, metric, folds)
    space = search_space(seed, base)
    if max_candidates is not None:
        space = space[:max_candidates]
    for i, (hidden, activation, weight_decay) in enumerate(space):
        if i > 0 and time.perf_counter() - started > budget_s:
            result.stopped_by_budget = True
            break
        candidate = Candidate(hidden, activation, weight_decay, is_default=i == 0)
        _shape_fit(dataset, candidate, board, raw, front_end)
        result.candidates.append(candidate)
        if candidate.fits:
            t0 = time.perf_counter()
            config = replace(base, hidden=hidden, activation=activation, weight_decay=weight_decay)
            cv = cross_validate(dataset, rows, config, folds)
            candidate.cv_mean, candidate.cv_std, candidate.epochs = cv.mean, cv.std, cv.epochs
            candidate.seconds = time.perf_counter() - t0
        if progress is not None:
            progress(candidate, len(space))
    board_ranked = [c for c in result.leaderboard() if c.fits]
    if not board_ranked:
        raise UserError(
            f"no candidate fits the {board_name} board ({result.candidates[0].fit_summary}); "
            "use fewer input features or a board with more memory"
        )
    result.best = board_ranked[0]
    if stage is not None and estimate_top:
        stage(f"estimating the latency of the top {min(estimate_top, len(board_ranked))} on the board's core")
    for candidate in board_ranked[:estimate_top]:
        candidate.latency_us = _latency(candidate, board)
    best_config = replace(
        base,
        hidden=result.best.hidden,
        activation=result.best.activation,
        weight_decay=result.best.weight_decay,
    )
    if stage is not None:
        shape = ",".join(map(str, result.best.hidden))
        stage(f"training the best ({shape} {result.best.activation}) on every row")
    if front_end is None:
        result.model = train(dataset, best_config)
    else:
        result.model = train_windows(raw, front_end, best_config)
    result.model.meta["tune"] = {
        "board": board_name,
        "candidates": len(result.candidates),
        "leaderboard": [c.as_dict() for c in result.leaderboard()[:10]],
    }
    result.seconds = time.perf_counter() - started
    return result
