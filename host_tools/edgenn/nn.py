"""A small multilayer perceptron in NumPy: forward pass, backpropagation, optimizers, training loop.

Notation (one mini-batch of n rows):
    a_0 = x                                   standardized inputs, shape (n, d)
    z_l = a_{l-1} @ W_l + b_l                 W_l has shape (n_in, n_out)
    a_l = f_l(z_l)                            f = relu | sigmoid | tanh for hidden layers, identity last
classify:  p = softmax(z_L),  loss = -mean_i log p[i, y_i]               dL/dz_L = (p - onehot(y)) / n
regress:   loss = mean_i 0.5 * sum_k (z_L[i,k] - t[i,k])**2  (standardized t)   dL/dz_L = (z_L - t) / n
L2 weight decay adds 0.5 * lambda * sum_l ||W_l||**2 (weights only, not biases): dL/dW_l += lambda * W_l.
Backward, for l = L..1:  dW_l = a_{l-1}.T @ dz_l ;  db_l = sum_i dz_l ;  da_{l-1} = dz_l @ W_l.T ;
                         dz_{l-1} = da_{l-1} * f'_{l-1}, with f' written in terms of the output a:
                         relu: a > 0 ;  sigmoid: a * (1 - a) ;  tanh: 1 - a**2.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace

import numpy as np

from edgenn import frontend
from edgenn.data import Dataset, fit_scaling, stratified_folds, stratified_split, usable_folds
from edgenn.errors import UserError
from edgenn.floatmodel import ACTIVATIONS, FloatModel, activate
from edgenn.frontend import FrontEnd

OPTIMIZERS = ("adam", "sgd")
DEFAULT_LR = {"adam": 0.01, "sgd": 0.05}
MIN_IMPROVEMENT = 1e-4  # a validation loss must beat the best by this much to count as better


# ---------------------------------------------------------------------------------------------------
# The network as plain arrays


class Params:
    """All weights and biases of the network in ONE flat vector, with W[l] (n_in, n_out) and b[l] (n_out,)
    as views into it. The math below uses W and b; optimizers and weight decay touch `flat` in one
    vectorized operation each (a per-array loop costs more than the arithmetic for networks this small)."""

    def __init__(self, sizes: list[int], dtype=np.float64, flat: np.ndarray | None = None):
        self.sizes = list(sizes)
        shapes = list(zip(sizes[:-1], sizes[1:]))
        self.n_weights = sum(n_in * n_out for n_in, n_out in shapes)  # weights first, then biases
        total = self.n_weights + sum(n_out for _, n_out in shapes)
        self.flat = np.zeros(total, dtype=dtype) if flat is None else flat
        self.W: list[np.ndarray] = []
        self.b: list[np.ndarray] = []
        w_at, b_at = 0, self.n_weights
        for n_in, n_out in shapes:
            self.W.append(self.flat[w_at : w_at + n_in * n_out].reshape(n_in, n_out))
            self.b.append(self.flat[b_at : b_at + n_out])
            w_at, b_at = w_at + n_in * n_out, b_at + n_out

    @property
    def weights_flat(self) -> np.ndarray:
        return self.flat[: self.n_weights]

    def copy(self) -> Params:
        return Params(self.sizes, self.flat.dtype, self.flat.copy())

    def zeros_like(self) -> Params:
        return Params(self.sizes, self.flat.dtype)

    def arrays(self) -> list[np.ndarray]:
        return self.W + self.b


def init_params(sizes: list[int], activation: str, rng: np.random.Generator, dtype=np.float64) -> Params:
    """He (normal, std sqrt(2/n_in)) for ReLU layers, Xavier/Glorot (uniform +-sqrt(6/(n_in+n_out)))
    for sigmoid/tanh layers and the linear output layer. Biases start at zero."""
    params = Params(sizes, dtype)
    for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        is_hidden = i < len(sizes) - 2
        if is_hidden and activation == "relu":
            params.W[i][...] = rng.normal(0.0, np.sqrt(2.0 / n_in), size=(n_in, n_out))
        else:
            limit = np.sqrt(6.0 / (n_in + n_out))
            params.W[i][...] = rng.uniform(-limit, limit, size=(n_in, n_out))
    return params


def activation_grad(name: str, a: np.ndarray) -> np.ndarray:
    """f'(z) expressed through a = f(z)."""
    if name == "relu":
        return (a > 0).astype(a.dtype)
    if name == "sigmoid":
        return a * (1.0 - a)
    if name == "tanh":
        return 1.0 - a * a
    if name == "identity":
        return np.ones_like(a)
    raise ValueError(f"unknown activation {name!r}")


def forward(params: Params, activations: list[str], x: np.ndarray) -> list[np.ndarray]:
    """[a_0 = x, a_1, ..., a_L]; the last is z_L (the output layer is linear)."""
    a = [x]
    for W, b, act in zip(params.W, params.b, activations):
        a.append(activate(act, a[-1] @ W + b))
    return a


def softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def output_loss(task: str, z: np.ndarray, target: np.ndarray) -> tuple[float, np.ndarray]:
    """Data loss and dL/dz_L. `target` is class ids (classify) or standardized targets (n, k) (regress)."""
    n = z.shape[0]
    if task == "classify":
        p = softmax(z)
        rows = np.arange(n)
        loss = -np.mean(np.log(p[rows, target] + 1e-12))
        dz = p
        dz[rows, target] -= 1.0
        return float(loss), dz / n
    diff = z - target
    return float(0.5 * np.mean(np.sum(diff * diff, axis=1))), diff / n


def loss_and_grads(
    params: Params,
    activations: list[str],
    task: str,
    x: np.ndarray,
    target: np.ndarray,
    weight_decay: float,
    grads: Params | None = None,
) -> tuple[float, Params]:
    """Loss of one batch and its gradient (written into `grads` if given, to reuse its memory)."""
    a = forward(params, activations, x)
    loss, dz = output_loss(task, a[-1], target)
    w = params.weights_flat
    loss += 0.5 * weight_decay * float(w @ w)
    g = grads if grads is not None else params.zeros_like()
    for l in range(len(params.W) - 1, -1, -1):  # noqa: E741 - l is the layer index of the equations above
        np.matmul(a[l].T, dz, out=g.W[l])
        np.sum(dz, axis=0, out=g.b[l])
        if l > 0:
            dz = (dz @ params.W[l].T) * activation_grad(activations[l - 1], a[l])
    if weight_decay:
        g.weights_flat[...] += weight_decay * w
    return loss, g


# ---------------------------------------------------------------------------------------------------
# Optimizers: update the flat parameter vector in place


class SGD:
    """v <- momentum * v - lr * g ;  p <- p + v"""

    def __init__(self, params: Params, lr: float, momentum: float = 0.9):
        self.lr, self.momentum = lr, momentum
        self.velocity = np.zeros_like(params.flat)

    def step(self, params: Params, grads: Params) -> None:
        self.velocity *= self.momentum
        self.velocity -= self.lr * grads.flat
        params.flat += self.velocity


class Adam:
    """m <- b1 m + (1-b1) g ; v <- b2 v + (1-b2) g^2 ; p <- p - lr * m_hat / (sqrt(v_hat) + eps)"""

    def __init__(
        self, params: Params, lr: float, beta1: float = 0.9, beta2: float = 0.999, eps: float = 1e-8
    ):
        self.lr, self.beta1, self.beta2, self.eps = lr, beta1, beta2, eps
        self.m = np.zeros_like(params.flat)
        self.v = np.zeros_like(params.flat)
        self.t = 0

    def step(self, params: Params, grads: Params) -> None:
        self.t += 1
        g, m, v = grads.flat, self.m, self.v
        m *= self.beta1
        m += (1.0 - self.beta1) * g
        v *= self.beta2
        v += (1.0 - self.beta2) * (g * g)
        m_hat = m / (1.0 - self.beta1**self.t)
        v_hat = v / (1.0 - self.beta2**self.t)
        params.flat -= self.lr * m_hat / (np.sqrt(v_hat) + self.eps)


def make_optimizer(name: str, params: Params, lr: float, momentum: float):
    if name == "adam":
        return Adam(params, lr)
    if name == "sgd":
        return SGD(params, lr, momentum)
    raise UserError(f"unknown optimizer {name!r} (choose from {', '.join(OPTIMIZERS)})")


# ---------------------------------------------------------------------------------------------------
# Training loop


@dataclass
class TrainConfig:
    hidden: tuple[int, ...] = (32, 16)
    activation: str = "relu"
    optimizer: str = "adam"
    lr: float | None = None  # None: DEFAULT_LR[optimizer]
    momentum: float = 0.9  # sgd only
    batch_size: int = 32
    epochs: int = 300  # the most epochs a fold may run; without folds, the epochs of the one fit
    weight_decay: float = 1e-2  # measured in bench/training.py: 1e-3 let folds stop after 5-20 epochs
    patience: int = 30  # epochs without a better validation loss before a fold stops; 0 disables
    folds: int = 5  # k-fold cross-validation picks the epochs and estimates the metric; 0 or 1: none
    seed: int = 0
    test_fraction: float = 0.0  # rows held out of one file for a test score (0: every row trains)
    val_fraction: float = 0.0  # rows held out for early stopping when folds < 2 (the old way)
    dtype: str = "float32"  # training precision; float64 for gradient checks

    def check(self) -> None:
        if self.activation not in ACTIVATIONS:
            raise UserError(f"unknown activation {self.activation!r} (choose from {', '.join(ACTIVATIONS)})")
        if self.optimizer not in OPTIMIZERS:
            raise UserError(f"unknown optimizer {self.optimizer!r} (choose from {', '.join(OPTIMIZERS)})")
        if any(h < 1 for h in self.hidden):
            raise UserError(f"hidden layer sizes must be >= 1, got {','.join(map(str, self.hidden))}")
        for name, value in (("epochs", self.epochs), ("batch-size", self.batch_size)):
            if value < 1:
                raise UserError(f"--{name} must be >= 1, got {value}")
        if self.lr is not None and not self.lr > 0:
            raise UserError(f"--lr must be > 0, got {self.lr}")
        if self.weight_decay < 0 or self.patience < 0:
            raise UserError("--weight-decay and --patience must be >= 0")
        if self.folds < 0 or self.folds == 1:
            raise UserError(
                f"--folds {self.folds}: cross-validation needs at least 2 folds (0: train once, no estimate)"
            )

    @property
    def learning_rate(self) -> float:
        return self.lr if self.lr is not None else DEFAULT_LR[self.optimizer]


@dataclass
class EpochReport:
    epoch: int
    epochs: int
    train_loss: float
    val_loss: float | None
    val_metric: float | None  # accuracy (classify) or RMSE in standardized units (regress)
    metric_name: str
    best_epoch: int
    stage: str = ""  # "fold 2/5", "final fit"


@dataclass
class FitResult:
    params: Params
    history: list[dict] = field(default_factory=list)
    best_epoch: int = 0
    epochs_run: int = 0
    seconds: float = 0.0


def _val_metric(task: str, z: np.ndarray, target: np.ndarray) -> float:
    if task == "classify":
        return float(np.mean(np.argmax(z, axis=1) == target))
    return float(np.sqrt(np.mean((z - target) ** 2)))


# A diverging run overflows; it is reported once, as a UserError naming the epoch, not as NumPy warnings.
@np.errstate(over="ignore", invalid="ignore")
def fit_arrays(
    x_train: np.ndarray,
    t_train: np.ndarray,
    x_val: np.ndarray | None,
    t_val: np.ndarray | None,
    *,
    task: str,
    n_outputs: int,
    config: TrainConfig,
    progress: Callable[[EpochReport], None] | None = None,
    stage: str = "",
) -> FitResult:
    """Train on already standardized arrays for at most `config.epochs` epochs. With validation rows,
    early stopping watches the validation loss and restores the weights of the best epoch; without,
    the weights after the last epoch are kept. Everything random comes from `config.seed`."""
    config.check()
    started = time.perf_counter()
    dtype = np.dtype(config.dtype)
    rng = np.random.default_rng(config.seed)
    sizes = [x_train.shape[1], *config.hidden, n_outputs]
    activations = [config.activation] * len(config.hidden) + ["identity"]
    params = init_params(sizes, config.activation, rng, dtype)
    optimizer = make_optimizer(config.optimizer, params, config.learning_rate, config.momentum)
    x_train = np.ascontiguousarray(x_train, dtype=dtype)
    t_train = t_train if task == "classify" else np.asarray(t_train, dtype=dtype)
    has_val = x_val is not None and len(x_val) > 0
    if has_val:
        x_val = np.ascontiguousarray(x_val, dtype=dtype)
        t_val = t_val if task == "classify" else np.asarray(t_val, dtype=dtype)
    n = len(x_train)
    batch = min(config.batch_size, n)
    grads = params.zeros_like()
    best = FitResult(params.copy())
    best_loss = np.inf
    history = []
    for epoch in range(1, config.epochs + 1):
        order = rng.permutation(n)
        losses = []
        for start in range(0, n, batch):
            rows = order[start : start + batch]
            loss, grads = loss_and_grads(
                params, activations, task, x_train[rows], t_train[rows], config.weight_decay, grads
            )
            optimizer.step(params, grads)
            losses.append(loss * len(rows))
        train_loss = float(sum(losses) / n)
        if not np.isfinite(train_loss):
            raise UserError(f"training diverged at epoch {epoch} (loss {train_loss}); try a smaller --lr")
        # the metric on the training rows with the weights at the end of the epoch (what the
        # history plots beside the validation metric); the loss above is the mean over the epoch's batches
        train_metric = _val_metric(task, forward(params, activations, x_train)[-1], t_train)
        val_loss = val_metric = None
        if has_val:
            z = forward(params, activations, x_val)[-1]
            val_loss, _ = output_loss(task, z, t_val)
            val_metric = _val_metric(task, z, t_val)
            if val_loss < best_loss - MIN_IMPROVEMENT:
                best_loss = val_loss
                best.params, best.best_epoch = params.copy(), epoch
        history.append(
            {
                "epoch": epoch,
                "train_loss": train_loss,
                "train_metric": train_metric,
                "val_loss": val_loss,
                "val_metric": val_metric,
            }
        )
        if progress is not None:
            progress(
                EpochReport(
                    epoch,
                    config.epochs,
                    train_loss,
                    val_loss,
                    val_metric,
                    "accuracy" if task == "classify" else "rmse",
                    best.best_epoch if has_val else epoch,
                    stage,
                )
            )
        if has_val and config.patience and epoch - best.best_epoch >= config.patience:
            break
    if not has_val:
        best.params, best.best_epoch = params, len(history)
    best.history = history
    best.epochs_run = len(history)
    best.seconds = time.perf_counter() - started
    return best


# ---------------------------------------------------------------------------------------------------
# Metrics and the whole journey dataset -> FloatModel


def accuracy(predicted: np.ndarray, y: np.ndarray) -> float:
    return float(np.mean(np.asarray(predicted) == np.asarray(y)))


def rmse(predicted: np.ndarray, y: np.ndarray) -> float:
    predicted = np.asarray(predicted, dtype=np.float64).reshape(len(y), -1)
    return float(np.sqrt(np.mean((predicted - np.asarray(y, dtype=np.float64).reshape(len(y), -1)) ** 2)))


def score(model: FloatModel, X: np.ndarray, y: np.ndarray) -> dict:
    """{"accuracy": ...} or {"rmse": ...} of a float model on raw rows."""
    if model.task == "classify":
        return {"accuracy": accuracy(model.predict(X), y)}
    return {"rmse": rmse(model.predict(X), y)}


def metric_name(task: str) -> str:
    return "accuracy" if task == "classify" else "rmse"


def fit_model(
    dataset: Dataset,
    train_rows: np.ndarray,
    val_rows: np.ndarray,
    config: TrainConfig,
    progress: Callable[[EpochReport], None] | None = None,
    stage: str = "",
) -> tuple[FloatModel, FitResult]:
    """Input (and regression target) scaling fitted on `train_rows` only, then `fit_arrays`."""
    if len(train_rows) == 0:
        raise UserError(f"{dataset.source}: too few rows to train ({dataset.n_rows})")
    mean, std = fit_scaling(dataset.X[train_rows])
    if dataset.task == "classify":
        n_outputs = len(dataset.labels)
        target_mean, target_std = np.zeros(0), np.ones(0)
        t_train, t_val = dataset.y[train_rows], dataset.y[val_rows]
    else:
        n_outputs = 1
        target_mean, target_std = fit_scaling(dataset.y[train_rows, None])
        t_train = (dataset.y[train_rows, None] - target_mean) / target_std
        t_val = (dataset.y[val_rows, None] - target_mean) / target_std
    result = fit_arrays(
        (dataset.X[train_rows] - mean) / std,
        t_train,
        (dataset.X[val_rows] - mean) / std,
        t_val,
        task=dataset.task,
        n_outputs=n_outputs,
        config=config,
        progress=progress,
        stage=stage,
    )
    model = FloatModel(
        weights=[w.astype(np.float64) for w in result.params.W],
        biases=[b.astype(np.float64) for b in result.params.b],
        activations=[config.activation] * len(config.hidden) + ["identity"],
        task=dataset.task,
        labels=list(dataset.labels),
        feature_names=list(dataset.feature_names),
        input_mean=mean,
        input_std=std,
        target_mean=target_mean,
        target_std=target_std,
    )
    return model, result


@dataclass
class CrossValidation:
    """k-fold estimate: each fold trains on the other folds with early stopping on its own rows.
    `epochs` is the median of the folds' best epochs (what the final fit on every row runs); `scores`
    are each fold's metric (accuracy, or RMSE in the target's units) at that epoch, or at its last epoch
    if it stopped earlier: one common epoch count, as the final model gets, not each fold's own best."""

    k: int
    metric: str
    scores: list[float]
    best_epochs: list[int]
    epochs: int
    histories: list[list[dict]]
    seconds: float

    @property
    def mean(self) -> float:
        return float(np.mean(self.scores))

    @property
    def std(self) -> float:
        return float(np.std(self.scores))


def cross_validate(
    dataset: Dataset,
    rows: np.ndarray,
    config: TrainConfig,
    k: int,
    progress: Callable[[EpochReport], None] | None = None,
) -> CrossValidation:
    """Stratified k-fold cross-validation over `rows`, folds seeded by `config.seed`."""
    started = time.perf_counter()
    folds = stratified_folds(dataset, rows, k, seed=config.seed)
    best_epochs, histories = [], []
    for f, val_rows in enumerate(folds):
        train_rows = np.sort(np.concatenate([fold for g, fold in enumerate(folds) if g != f]))
        fold_config = replace(config, seed=config.seed * 1000 + f + 1)  # its own init, its own batches
        _, result = fit_model(dataset, train_rows, val_rows, fold_config, progress, f"fold {f + 1}/{k}")
        best_epochs.append(result.best_epoch)
        histories.append(result.history)
    epochs = max(1, int(round(float(np.median(best_epochs)))))
    scores = []
    for history in histories:
        metric = history[min(epochs, len(history)) - 1]["val_metric"]
        if dataset.task == "regress":  # standardized units -> the target's own units
            metric *= float(np.std(dataset.y[rows])) or 1.0
        scores.append(float(metric))
    return CrossValidation(
        k, metric_name(dataset.task), scores, best_epochs, epochs, histories, time.perf_counter() - started
    )


def _rounded(history: list[dict]) -> list[dict]:
    return [{k: (round(v, 6) if isinstance(v, float) else v) for k, v in h.items()} for h in history]


# Warnings: a training metric this far above the estimate means the model learned its rows by heart;
# a best epoch this early means the learning rate or the data left little to learn.
OVERFIT_POINTS = 15.0
EARLY_EPOCHS = 5


CHANCE_POINTS = 2.0  # a classifier this close to always answering the largest class has learned nothing


def train_warnings(
    task: str,
    train_metric: float,
    estimate: float | None,
    epochs: int,
    history: list[dict] | None = None,
    chance: float | None = None,
    config: TrainConfig | None = None,
) -> list[str]:
    """What the user should know about a finished training. history: the final fit's epochs (a loss
    that ends above where it started diverged); chance: the largest class's share of the rows."""
    warnings = []
    lr = f"--lr {config.learning_rate:g}" if config is not None else "the learning rate"
    default_lr = ""
    if config is not None:
        default_lr = f" (the default for {config.optimizer} is {DEFAULT_LR[config.optimizer]:g})"
    if history and len(history) > 1 and history[-1]["train_loss"] > history[0]["train_loss"]:
        warnings.append(
            f"training diverged: the loss rose from {history[0]['train_loss']:.4g} (epoch 1) to "
            f"{history[-1]['train_loss']:.4g} (epoch {len(history)}); {lr} is probably too large{default_lr}"
        )
    if task == "classify" and chance is not None and 100 * (train_metric - chance) <= CHANCE_POINTS:
        warnings.append(
            f"the model is no better than chance: training accuracy {100 * train_metric:.1f}%, and always "
            f"answering the largest class gives {100 * chance:.1f}%; check {lr}{default_lr} and the labels"
        )
    if task == "classify" and estimate is not None and 100 * (train_metric - estimate) > OVERFIT_POINTS:
        warnings.append(
            f"training accuracy {100 * train_metric:.1f}% is {100 * (train_metric - estimate):.1f} points "
            f"above the estimate {100 * estimate:.1f}%: the model overfits; more rows, a larger "
            f"--weight-decay or smaller --hidden may help"
        )
    if epochs <= EARLY_EPOCHS:
        warnings.append(
            f"training stopped after {epochs} epoch(s): the model may be under-trained; "
            f"try a smaller --lr or a larger --patience"
        )
    return warnings


def train(
    dataset: Dataset,
    config: TrainConfig | None = None,
    progress: Callable[[EpochReport], None] | None = None,
    test: Dataset | None = None,
) -> FloatModel:
    """The model to deploy, fitted on every training row, and an honest estimate of how it does.

    1. Optional holdout: `test_fraction` of the rows (stratified, seeded) never train; `val_fraction`
       rows are held out for early stopping only when there is no cross-validation.
    2. Cross-validation (`folds` >= 2, fewer when a class has fewer rows than folds): each fold stops
       early on its own rows; the median best epoch is the number of epochs of the final fit.
    3. The final fit: scaling and weights fitted on all training rows for that many epochs.
    4. Scores: training rows, cross-validation, holdout rows and `test` (another file's rows).
    The model's meta records the split, so the same held-out rows can be found again, and the
    per-epoch history of every fold and of the final fit."""
    config = config or TrainConfig()
    config.check()
    folds_asked = config.folds if config.folds >= 2 else 0
    split = stratified_split(
        dataset, config.test_fraction, 0.0 if folds_asked else config.val_fraction, seed=config.seed
    )
    _check_enough_rows(dataset, split.train, folds_asked)
    notes = []
    folds = usable_folds(dataset, split.train, folds_asked) if folds_asked else 0
    if folds_asked and folds < folds_asked:
        what = "rows in its smallest class" if dataset.task == "classify" else "rows"
        notes.append(
            f"{len(split.train)} training rows, {_smallest(dataset, split.train)} {what}: "
            + (f"{folds} folds instead of {folds_asked}" if folds >= 2 else "too few for cross-validation")
        )
    cv = None
    if folds >= 2:
        cv = cross_validate(dataset, split.train, config, folds, progress)
        final_config = replace(config, epochs=cv.epochs)
    else:
        final_config = config
    model, result = fit_model(dataset, split.train, split.val, final_config, progress, "final fit")
    metrics = {
        part: score(model, dataset.X[rows], dataset.y[rows]) | {"n": int(len(rows))}
        for part, rows in (("train", split.train), ("val", split.val), ("test", split.test))
        if len(rows)
    }
    if test is not None:
        metrics["test_file"] = score(model, test.X, test.y) | {"n": test.n_rows, "source": test.source}
    name = metric_name(dataset.task)
    estimate = (
        cv.mean
        if cv is not None
        else metrics.get("test_file", metrics.get("test", metrics.get("val", {}))).get(name)
    )
    chance = None
    if dataset.task == "classify":
        chance = float(np.bincount(dataset.y[split.train]).max() / len(split.train))
    warnings = train_warnings(
        dataset.task, metrics["train"][name], estimate, result.best_epoch, result.history, chance, config
    )
    model.meta = {
        "dataset": dataset.name,
        "source": dataset.source,
        "label_column": dataset.label_column,
        "data_fingerprint": dataset.fingerprint(),
        "n_rows": dataset.n_rows,
        "split": {
            "seed": config.seed,
            "test_fraction": config.test_fraction,
            "val_fraction": 0.0 if folds_asked else config.val_fraction,
            "method": "stratified",
        },
        "config": {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(config).items()},
        "epochs": result.epochs_run,  # what the saved weights were trained for
        "epochs_run": result.epochs_run,
        "best_epoch": result.best_epoch,
        "train_seconds": round(result.seconds + (cv.seconds if cv is not None else 0.0), 4),
        "metrics": metrics,
        "cv": None
        if cv is None
        else {
            "k": cv.k,
            "metric": cv.metric,
            "mean": cv.mean,
            "std": cv.std,
            "folds": cv.scores,
            "best_epochs": cv.best_epochs,
            "epochs": cv.epochs,
        },
        "notes": notes,
        "warnings": warnings,
        "history": {
            "final": _rounded(result.history),
            "folds": [_rounded(h) for h in cv.histories] if cv is not None else [],
        },
    }
    return model


MIN_ROWS_PER_CLASS = 2  # below this a class cannot be both learned and checked
MIN_ROWS_REGRESS = 4


def _check_enough_rows(dataset: Dataset, rows: np.ndarray, folds: int = 0) -> None:
    """folds: the cross-validation asked for (0: none), which the message mentions only when asked."""
    if dataset.task == "classify":
        counts = np.bincount(dataset.y[rows], minlength=len(dataset.labels))
        if counts.min() < MIN_ROWS_PER_CLASS:
            k = int(np.argmin(counts))
            raise UserError(
                f"{dataset.source}: {len(rows)} training rows, and class {dataset.labels[k]!r} has "
                f"{int(counts[k])}; training needs at least {MIN_ROWS_PER_CLASS} rows of every class"
                + (f" ({folds}-fold cross-validation: {folds} of every class)" if folds >= 2 else "")
            )
    elif len(rows) < MIN_ROWS_REGRESS:
        raise UserError(
            f"{dataset.source}: {len(rows)} training rows; regression needs at least {MIN_ROWS_REGRESS}"
            + (f" ({folds}-fold cross-validation: {2 * folds})" if folds >= 2 else "")
        )


def _smallest(dataset: Dataset, rows: np.ndarray) -> int:
    if dataset.task == "classify":
        return min(int(c) for c in np.bincount(dataset.y[rows]) if c > 0)
    return len(rows)


def split_for_model(model: FloatModel, dataset: Dataset):
    """The train/val/test rows `train` used, if `dataset` is the data the model was trained on
    (same values, checked by fingerprint); None otherwise."""
    split = model.meta.get("split")
    if not split or model.meta.get("data_fingerprint") != dataset.fingerprint():
        return None
    return stratified_split(dataset, split["test_fraction"], split["val_fraction"], seed=split["seed"])


def window_features(data: Dataset, front_end: FrontEnd) -> Dataset:
    """DATA's raw windows as the front end's float features (what the network is trained on)."""
    try:
        feats = frontend.features_float(front_end, data.X)
    except ValueError as exc:
        raise UserError(f"{data.source}: {exc}") from None
    return replace(data, X=feats, feature_names=front_end.feature_names())


def train_windows(
    dataset: Dataset,
    front_end: FrontEnd,
    config: TrainConfig | None = None,
    progress: Callable[[EpochReport], None] | None = None,
    test: Dataset | None = None,
) -> FloatModel:
    """`train` on the front end's float features of DATA's raw windows; the model keeps the front end,
    so it takes raw windows (predict, evaluate, quantize) and its feature names are DATA's columns."""
    featured = window_features(dataset, front_end)
    model = train(featured, config, progress, test=None if test is None else window_features(test, front_end))
    model.frontend = front_end
    model.feature_names = list(dataset.feature_names)
    # the split depends only on the labels and the seed: the raw data's fingerprint finds it again
    model.meta["data_fingerprint"] = dataset.fingerprint()
    model.meta["frontend"] = frontend.describe(front_end)
    return model
