"""The best model that fits the board: a small seeded search scored by cross-validation.

Candidates are drawn (seeded) from a fixed space of front ends (with sensor windows: raw values,
statistics, spectral), hidden sizes and depths, activations and weight decays; the default network
(`TrainConfig()`) on every front end is scored first, so the winner is at least as good as the defaults
by the same yardstick. A candidate COUNT decides what is tried, never the clock, so the same data and
seed give the same leaderboard on any machine under any load; an optional time budget may stop the
search early, and the result says so. Before any training, each candidate's integer form (its shape
quantized with placeholder weights: the file size and layer blocks depend only on the shape) is checked
against the board profile with `edgenn.fit.check_fit`; models that do not fit are listed, not trained.
Every candidate is scored by the same stratified k-fold cross-validation as `edgenn train` (same folds
for every candidate, from `seed`), and the best is then trained on every row like `edgenn train` does.
The top `estimate_top` candidates also get an estimated latency (`edgenn.machinecode.estimate`).
`run_candidates` is the search loop alone, for other searches to reuse: `tune_anomaly` (`tune --task
anomaly`) searches autoencoder shapes with it, scored by ROC AUC (see there).
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
DEFAULT_CANDIDATES = 24  # how many candidates are scored (the defaults first): what decides the result


@dataclass
class Candidate:
    hidden: tuple[int, ...]
    activation: str
    weight_decay: float
    features: str = "raw"  # the front end: raw | stats | spectral (frontend.KINDS)
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
            "features": self.features,
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
    planned: int = 0  # candidates the count asked for (more than were tried when the budget stopped it)
    latency_note: str = ""  # why the latency column is empty, when the estimate could not run

    def leaderboard(self) -> list[Candidate]:
        """Scored candidates best first (ties: fewer MACs), then the ones that do not fit."""
        scored = [c for c in self.candidates if c.cv_mean is not None]
        sign = -1.0 if self.metric in ("accuracy", "auc") else 1.0
        # equal scores (to 9 places: fold means that differ only in the last bit are ties) rank the
        # smaller model first, then the order tried (a stable sort): the same order on every machine
        scored.sort(key=lambda c: (sign * round(c.cv_mean, 9), c.macs))
        return scored + [c for c in self.candidates if not c.fits]


Point = tuple[tuple[int, ...], str, float, str]  # hidden, activation, weight decay, front end kind


def search_space(seed: int, default: TrainConfig, kinds: tuple[str, ...] = ("raw",)) -> list[Point]:
    """Every combination: the default network on each front end first, the rest in a seeded random
    order (a pure function of `seed`: the same on every machine)."""
    net = (tuple(default.hidden), default.activation, default.weight_decay)
    firsts = [(*net, kind) for kind in kinds]
    rest = [
        (h, a, w, kind)
        for kind in kinds
        for h in HIDDEN_SPACE
        for a in ACTIVATION_SPACE
        for w in WEIGHT_DECAY_SPACE
        if (h, a, w, kind) not in firsts
    ]
    order = np.random.default_rng(seed).permutation(len(rest))
    return firsts + [rest[i] for i in order]


def run_candidates(
    space: list[Candidate],
    score: Callable[[Candidate], None],
    budget_s: float | None = None,
    progress: Callable[[Candidate, int], None] | None = None,
    keep: int | None = None,
) -> tuple[list[Candidate], bool]:
    """The search loop: `score` each candidate in order (the first always, however long it takes).
    `keep` candidates are scored (all by default): a count, so the outcome does not depend on the
    machine's speed; `budget_s` may stop it earlier. Returns (the candidates tried, stopped early by
    the budget)."""
    started = time.perf_counter()
    todo = space if keep is None else space[:keep]
    tried: list[Candidate] = []
    for i, candidate in enumerate(todo):
        if i > 0 and budget_s is not None and time.perf_counter() - started > budget_s:
            return tried, True
        score(candidate)
        tried.append(candidate)
        if progress is not None:
            progress(candidate, len(todo))
    return tried, False


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
    n_out = {"classify": len(dataset.labels), "anomaly": dataset.n_features}.get(dataset.task, 1)
    sizes = [dataset.n_features, *candidate.hidden, n_out]
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
    if dataset.task == "anomaly":  # the score's weights and threshold are placeholders too
        placeholder.score_weights = np.ones(n_out)
        placeholder.deviation_weights = np.full(n_out, 0.5)
        placeholder.threshold = 1.0
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


def _latency(candidate: Candidate, board: str | BoardProfile) -> tuple[float | None, str]:
    """Estimated µs per inference from the board's own machine code in an emulator, with the kernel
    deploy installs there (the instruction counts depend on the shape, not the weights), or None and
    why not (no cycle model for the board, the emulator missing: qemu-user on Debian)."""
    from edgenn.machinecode import MachineCodeError
    from edgenn.machinecode.estimate import estimate, input_rows

    try:
        qm = candidate.shape_model
        return float(estimate(qm, board, rows=input_rows(qm, n=4))["us"]), ""
    except (UserError, MachineCodeError) as exc:
        return None, str(exc)


def _pick_best(
    result: TuneResult, board: str | BoardProfile, estimate_top: int, stage: Callable[[str], None] | None
) -> None:
    """The best candidate that fits the board (a one-line error when none does), and the estimated
    latency of the top `estimate_top`."""
    board_ranked = [c for c in result.leaderboard() if c.fits]
    if not board_ranked:
        raise UserError(
            f"no candidate fits the {result.board} board ({result.candidates[0].fit_summary}); "
            "use fewer input features or a board with more memory"
        )
    result.best = board_ranked[0]
    if stage is not None and estimate_top:
        stage(f"estimating the latency of the top {min(estimate_top, len(board_ranked))} on the board's core")
    for candidate in board_ranked[:estimate_top]:
        candidate.latency_us, why = _latency(candidate, board)
        if candidate.latency_us is None and why and not result.latency_note:
            result.latency_note = why


def tune(
    dataset: Dataset,
    board: str | BoardProfile,
    budget_s: float | None = None,
    seed: int = 0,
    base: TrainConfig | None = None,
    max_candidates: int | None = DEFAULT_CANDIDATES,
    estimate_top: int = 0,
    progress: Callable[[Candidate, int], None] | None = None,
    stage: Callable[[str], None] | None = None,
    front_end: FrontEnd | None = None,
    front_ends: dict[str, FrontEnd | None] | None = None,
) -> TuneResult:
    """Search `max_candidates` candidates (None: the whole space), then train the best on every row.
    `budget_s` (None: no limit) stops starting new candidates once passed (the first is always scored)
    and sets `stopped_by_budget`. `progress` hears of every candidate tried (and how many are planned),
    `stage` of the steps after the search. With sensor windows, DATA's rows are raw windows:
    `front_ends` maps kinds ("raw", "stats", "spectral") to the front ends to search (None: raw values
    as features); `front_end` is the one-kind shorthand (as `train --features`). Candidates are scored on
    their front end's features and the best keeps its front end."""
    started = time.perf_counter()
    raw = dataset
    if front_ends is None:
        front_ends = {"raw": None} if front_end is None else {front_end.kind: front_end}
    features = {kind: raw if fe is None else window_features(raw, fe) for kind, fe in front_ends.items()}
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
    space = [
        Candidate(h, a, w, kind, is_default=i < len(front_ends))
        for i, (h, a, w, kind) in enumerate(search_space(seed, base, tuple(front_ends)))
    ]
    result.planned = len(space) if max_candidates is None else min(max_candidates, len(space))

    def score(candidate: Candidate) -> None:
        data = features[candidate.features]
        _shape_fit(data, candidate, board, raw, front_ends[candidate.features])
        if candidate.fits:
            t0 = time.perf_counter()
            c = candidate
            config = replace(base, hidden=c.hidden, activation=c.activation, weight_decay=c.weight_decay)
            cv = cross_validate(data, rows, config, folds)
            candidate.cv_mean, candidate.cv_std, candidate.epochs = cv.mean, cv.std, cv.epochs
            candidate.seconds = time.perf_counter() - t0

    result.candidates, result.stopped_by_budget = run_candidates(
        space, score, budget_s, progress, max_candidates
    )
    _pick_best(result, board, estimate_top, stage)
    best_config = replace(
        base,
        hidden=result.best.hidden,
        activation=result.best.activation,
        weight_decay=result.best.weight_decay,
    )
    if stage is not None:
        shape = ",".join(map(str, result.best.hidden))
        stage(f"training the best ({result.best.features} {shape} {result.best.activation}) on every row")
    best_fe = front_ends[result.best.features]
    if best_fe is None:
        result.model = train(dataset, best_config)
    else:
        result.model = train_windows(raw, best_fe, best_config)
    result.model.meta["tune"] = {
        "board": board_name,
        "candidates": len(result.candidates),
        "leaderboard": [c.as_dict() for c in result.leaderboard()[:10]],
    }
    result.seconds = time.perf_counter() - started
    return result


# ---------------------------------------------------------------------------------------------------
# tune --task anomaly: autoencoder shapes, scored by ROC AUC of out-of-fold normal scores


ANOMALY_ACTIVATION_SPACE = ("tanh", "relu")
ANOMALY_WEIGHT_DECAY_SPACE = (1e-4, 1e-3, 1e-2)


def anomaly_shapes(d: int) -> list[tuple[int, ...]]:
    """Autoencoder shapes for d inputs: wide-narrow-wide (outer d or 2d within 8..64, bottleneck d/8,
    d/4 or d/2, at least 2) and a single bottleneck layer; the default shape (anomaly.default_hidden)
    is among them."""
    outers = sorted({int(min(64, max(8, m * d))) for m in (1, 2)})
    necks = sorted({max(2, d // k) for k in (8, 4, 2)})
    return [(o, b, o) for o in outers for b in necks if b < o] + [(b,) for b in necks]


def anomaly_search_space(seed: int, dims: dict[str, int]) -> list[Point]:
    """The default autoencoder (train_anomaly's defaults) on each front end first, then every other
    shape, activation and weight decay in a seeded random order."""
    import inspect

    from edgenn.anomaly import default_hidden, train_anomaly

    defaults = inspect.signature(train_anomaly).parameters  # one source for the defaults
    act, wd = defaults["activation"].default, defaults["weight_decay"].default
    firsts = [(default_hidden(d), act, wd, kind) for kind, d in dims.items()]
    rest = [
        (h, a, w, kind)
        for kind, d in dims.items()
        for h in anomaly_shapes(d)
        for a in ANOMALY_ACTIVATION_SPACE
        for w in ANOMALY_WEIGHT_DECAY_SPACE
        if (h, a, w, kind) not in firsts
    ]
    order = np.random.default_rng(seed).permutation(len(rest))
    return firsts + [rest[i] for i in order]


def permuted_rows(F: np.ndarray, seed: int) -> np.ndarray:
    """Synthetic anomalies when DATA has none: every feature shuffled on its own across the normal rows.
    Each value is a normal one, but the rows break the way normal features go together, which is what
    an autoencoder is for (a value far out of range the score's deviation term catches anyway)."""
    rng = np.random.default_rng(seed)
    return np.stack([rng.permutation(F[:, j]) for j in range(F.shape[1])], axis=1)


def tune_anomaly(
    X_normal: np.ndarray,
    board: str | BoardProfile,
    feature_names: list[str],
    X_anomalous: np.ndarray | None = None,
    front_ends: dict[str, FrontEnd | None] | None = None,
    budget_s: float | None = None,
    seed: int = 0,
    folds: int = 5,
    threshold_quantile: float | None = None,
    max_candidates: int | None = DEFAULT_CANDIDATES,
    estimate_top: int = 0,
    progress: Callable[[Candidate, int], None] | None = None,
    stage: Callable[[str], None] | None = None,
    source: str = "data",
) -> TuneResult:
    """The best anomaly model that fits the board. Each candidate is an autoencoder trained by
    `anomaly.train_anomaly` on the normal rows (through its front end), whose k-fold cross-validation
    scores every normal row with a model that did not see it; its yardstick is the ROC AUC of those
    out-of-fold normal scores against the scores of rows that are not normal and were never fitted: DATA's
    anomalous rows when it has some (X_anomalous), else `permuted_rows` of the normal rows. The best is
    the model train_anomaly fitted (threshold from its own out-of-fold scores), keeping its front end."""
    from edgenn import anomaly
    from edgenn.metrics import roc_auc

    started = time.perf_counter()
    front_ends = front_ends or {"raw": None}
    anomaly.check_rows(len(X_normal), folds, source)
    if X_anomalous is not None and not len(X_anomalous):
        X_anomalous = None
    normal, others, datasets = {}, {}, {}
    raw = Dataset(
        source, source, X_normal, np.zeros(len(X_normal), np.int64), list(feature_names), "", "anomaly", []
    )
    for kind, fe in front_ends.items():
        f = X_normal if fe is None else anomaly.window_features(fe, X_normal, source)
        normal[kind] = f
        if X_anomalous is None:
            others[kind] = permuted_rows(f, seed)
        else:
            others[kind] = X_anomalous if fe is None else anomaly.window_features(fe, X_anomalous, source)
        names = list(feature_names) if fe is None else fe.feature_names()
        # an anomaly model's labels name its outputs: the inputs it reconstructs
        datasets[kind] = Dataset(source, source, f, np.zeros(len(f), np.int64), names, "", "anomaly", names)
    board_name = board if isinstance(board, str) else board.name
    result = TuneResult(board_name, "auc", folds)
    space = [
        Candidate(h, a, w, kind, is_default=i < len(front_ends))
        for i, (h, a, w, kind) in enumerate(
            anomaly_search_space(seed, {k: f.shape[1] for k, f in normal.items()})
        )
    ]
    result.planned = len(space) if max_candidates is None else min(max_candidates, len(space))
    options = {"seed": seed, "folds": folds, "source": source}
    if threshold_quantile is not None:
        options["threshold_quantile"] = threshold_quantile
    models: dict[int, FloatModel] = {}

    def score(c: Candidate) -> None:
        _shape_fit(datasets[c.features], c, board, raw, front_ends[c.features])
        if c.fits:
            t0 = time.perf_counter()
            fm = anomaly.train_anomaly(
                normal[c.features],
                hidden=c.hidden,
                activation=c.activation,
                weight_decay=c.weight_decay,
                **options,
            )
            oof = np.asarray(fm.meta["anomaly"]["oof_scores"])
            s = anomaly.float_scores(fm, others[c.features])
            c.cv_mean = roc_auc(np.r_[oof, s], np.r_[np.zeros(len(oof)), np.ones(len(s))])
            c.epochs = int(fm.meta["epochs"])
            c.seconds = time.perf_counter() - t0
            models[id(c)] = fm

    result.candidates, result.stopped_by_budget = run_candidates(
        space, score, budget_s, progress, max_candidates
    )
    _pick_best(result, board, estimate_top, stage)
    best = models[id(result.best)]  # already fitted on every normal row (train_anomaly's final fit)
    fe = front_ends[result.best.features]
    if fe is not None:  # the model takes raw windows and computes the features itself
        anomaly.with_front_end(best, fe)
    else:
        best.feature_names = list(feature_names)
        best.labels = list(feature_names)
    best.meta["tune"] = {
        "board": board_name,
        "metric": "auc",
        "anomalies": "other rows of DATA"
        if X_anomalous is not None
        else "normal rows with shuffled features",
        "candidates": len(result.candidates),
        "leaderboard": [c.as_dict() for c in result.leaderboard()[:10]],
    }
    result.model = best
    result.seconds = time.perf_counter() - started
    return result
