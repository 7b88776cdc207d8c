"""Quantization-aware fine-tuning: a few epochs in which the forward pass rounds and clamps as the
integer model does, so the weights settle where rounding costs the least.

The float model (the teacher) is quantized once as usual to fix every tensor's grid; then a copy (the
student) trains on the calibration rows to match the teacher's outputs through that grid:

    a_0 = s_in * (u - z_in)                       the input codes u the board computes (fixed)
    Wq  = s_acc * round(W * s_in / s_acc) / s_in  int8 weights, one s_acc = max|W * s_in| / 127 per neuron
    bq  = s_acc * round(b / s_acc)                int32 bias in accumulator units
    z   = a @ Wq + bq
    relu:          a = s * clamp(round(z / s), 0, 255)                       (per neuron s)
    sigmoid/tanh:  q = clamp(round(z / s) + zp, -128, 127) ; a = LUT((q - zp) * s)
                   LUT = round(256 sigmoid) / 256  or  round(128 tanh) / 128 (the 8-bit tables)
    identity:      out = s * clamp(round((z - c) / s), -128, 127) + c        (the int8 output)
    loss: classify  -sum_k softmax(teacher)_k log softmax(out)_k   regress, anomaly  0.5 (out - teacher)^2

Gradients go straight through every round() (d round(x)/dx := 1) and are zero where a clamp bites;
the table's gradient is the activation's own derivative at the rounded input. After each epoch the
student is quantized for real (`edgenn.quantize.quantize`, with every post-training step) and scored on
the calibration rows: argmax agreement with the teacher (classify), RMS difference (regress) or of the
anomaly scores (anomaly: edgenn.anomaly.score_closeness). The best
epoch wins, and epoch 0 is plain post-training quantization, so fine-tuning never makes it worse.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from edgenn import anomaly, golden
from edgenn.errors import UserError
from edgenn.floatmodel import FloatModel, activate
from edgenn.modelfile import QuantModel
from edgenn.nn import Adam, Params, activation_grad, softmax
from edgenn.quantize import LUT_OUTPUT, Calibration, _output_spec, _reconstruction_spec, quantize

EPOCHS = 20
JITTER = 0.0
LR = 1e-3
BATCH = 32


@dataclass
class QATResult:
    model: QuantModel  # the integer model chosen (plain or fine-tuned)
    warnings: list[str]
    used: bool  # True when the fine-tuned model was chosen
    plain_score: float  # agreement (classify) or -RMS vs the float outputs (regress), plain quantization
    qat_score: float  # the same for the best fine-tuned epoch (plain_score if none ran)
    epoch: int  # the chosen fine-tuning epoch (0: plain)
    epochs_run: int


def agreement_score(teacher: FloatModel, qm: QuantModel, x: np.ndarray) -> float:
    """Argmax agreement integer vs float (classify) or minus the RMS difference of their outputs in the
    target's units (regress): higher is better either way."""
    if teacher.task == "classify":
        return float(np.mean(golden.predict(qm, x) == teacher.predict(x)))
    if teacher.task == "anomaly":
        return anomaly.score_closeness(teacher, qm, x)
    diff = golden.predict(qm, x) - teacher.predict(x)
    return -float(np.sqrt(np.mean(diff * diff)))


@dataclass
class _Grid:
    """One layer's fixed output grid from the teacher's calibration."""

    activation: str
    scale: np.ndarray  # (n_out,)
    center: np.ndarray  # (n_out,) identity only
    zero: int  # sigmoid/tanh pre-activation zero point


def _grids(
    teacher: FloatModel, x: np.ndarray, cal: Calibration, plain: QuantModel | None = None
) -> list[_Grid]:
    """Each layer's output grid; an anomaly model's output shares the input grid of `plain`."""
    grids = []
    for (z, a), act in zip(teacher.forward_layers(x), teacher.activations):
        if act == "identity" and teacher.task == "anomaly" and plain is not None:
            in_scale = np.asarray(plain.in_scale, np.float64)
            s_in = 1.0 / (np.asarray(teacher.input_std, np.float64) * in_scale)
            z_in = np.asarray(plain.in_offset, np.float64) + np.asarray(teacher.input_mean) * in_scale
            spec = _reconstruction_spec(s_in, z_in)
        else:
            spec = _output_spec(act, teacher.task, z, a, cal)
        grids.append(_Grid(act, spec.scale, spec.center, spec.out_zero))
    return grids


def _input_tensor(teacher: FloatModel, qm: QuantModel, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(a_0, s_in): the standardized value each input code stands for, and the per-feature step."""
    in_scale = np.asarray(qm.in_scale, np.float64)
    in_offset = np.asarray(qm.in_offset, np.float64)
    s_in = 1.0 / (np.asarray(teacher.input_std, np.float64) * in_scale)
    z_in = in_offset + np.asarray(teacher.input_mean, np.float64) * in_scale
    u = golden.quantize_input(qm, x).astype(np.float64)
    return s_in * (u - z_in), s_in


def _lut(act: str, zq: np.ndarray) -> np.ndarray:
    if act == "sigmoid":
        return np.clip(np.round(256.0 * activate("sigmoid", zq)), 0, 255) / 256.0
    return np.clip(np.round(128.0 * np.tanh(zq)), -128, 127) / 128.0


def fake_forward(params: Params, grids: list[_Grid], a0: np.ndarray, s_in: np.ndarray):
    """The simulated integer forward pass; returns (output, cache for backward)."""
    a, step = a0, s_in  # step: the real value of one code of the layer's input, per input
    cache = []
    for W, b, g in zip(params.W, params.b, grids):
        w_u = W * step[:, None]
        s_acc = np.abs(w_u).max(axis=0) / 127.0
        s_acc = np.where(s_acc > 0, s_acc, 1.0)
        Wq = np.round(w_u / s_acc) * s_acc / step[:, None]
        bq = np.round(b / s_acc) * s_acc
        z = a @ Wq + bq
        if g.activation == "relu":
            q = np.round(z / g.scale)
            mask = (q >= 0) & (q <= 255)
            out = np.clip(q, 0, 255) * g.scale
            d_out = mask.astype(z.dtype)
            step = g.scale
        elif g.activation in LUT_OUTPUT:
            q = np.round(z / g.scale) + g.zero
            mask = (q >= -128) & (q <= 127)
            zq = (np.clip(q, -128, 127) - g.zero) * g.scale
            out = _lut(g.activation, zq)
            d_out = mask * activation_grad(g.activation, activate(g.activation, zq))
            step = np.full(z.shape[1], LUT_OUTPUT[g.activation][0])
        else:
            q = np.round((z - g.center) / g.scale)
            mask = (q >= -128) & (q <= 127)
            out = np.clip(q, -128, 127) * g.scale + g.center
            d_out = mask.astype(z.dtype)
        cache.append((a, Wq, d_out))
        a = out
    return a, cache


def fake_grads(params: Params, cache: list, d_final: np.ndarray) -> Params:
    """Backward through the simulated pass, straight through every rounding."""
    grads = params.zeros_like()
    dz = d_final * cache[-1][2]
    for l in range(len(cache) - 1, -1, -1):  # noqa: E741 - l is the layer index, as in nn.py
        a_in, Wq, _ = cache[l]
        grads.W[l][...] = a_in.T @ dz
        grads.b[l][...] = dz.sum(axis=0)
        if l > 0:
            dz = (dz @ Wq.T) * cache[l - 1][2]
    return grads


def _loss_grad(task: str, out: np.ndarray, target: np.ndarray) -> np.ndarray:
    n = out.shape[0]
    if task == "classify":
        return (softmax(out) - target) / n  # target: the teacher's probabilities
    return (out - target) / n


def _student(params: Params, teacher: FloatModel) -> FloatModel:
    student = copy.copy(teacher)
    student.weights = [w.copy() for w in params.W]
    student.biases = [b.copy() for b in params.b]
    return student


def _score(
    teacher: FloatModel, qm: QuantModel, x: np.ndarray, teacher_out: np.ndarray
) -> tuple[float, float]:
    """(agreement or -RMS, -RMS of the outputs in the teacher's units): compared as a tuple, so among
    models that agree equally often the one whose outputs are closer to the float model's wins."""
    integer_out = golden.dequantize(qm, golden.forward_q(qm, golden.quantize_input(qm, x)))
    if teacher.task == "regress":  # back to standardized units, as the teacher's forward()
        integer_out = (integer_out - teacher.target_mean) / teacher.target_std
    closeness = -float(np.sqrt(np.mean((integer_out - teacher_out) ** 2)))
    return agreement_score(teacher, qm, x), closeness


def fine_tune(
    teacher: FloatModel,
    x_calib: np.ndarray,
    name: str = "",
    calibration: Calibration | None = None,
    epochs: int = EPOCHS,
    lr: float = LR,
    seed: int = 0,
    force: bool = False,
    jitter: float = JITTER,
    progress: Callable[[int, float], None] | None = None,
) -> QATResult:
    """Plain quantization, then up to `epochs` of fine-tuning; the better integer model on the
    calibration rows is returned: higher agreement, or equal agreement and outputs closer to the float
    model's (with `force`, the best fine-tuned epoch even if it is not better). Each epoch trains on the
    calibration rows moved by Gaussian noise of `jitter` standard deviations per feature (fresh every
    epoch), so the student matches the teacher around the rows, not only on them."""
    cal = calibration or Calibration()
    x = np.asarray(x_calib, np.float64)
    plain, plain_warnings = quantize(teacher, x, name=name, calibration=cal)
    teacher_out = teacher.forward(x)
    plain_score = _score(teacher, plain, x, teacher_out)
    best = (plain_score, 0, plain, plain_warnings)
    best_tuned = None
    epochs_run = 0
    if epochs > 0:
        grids = _grids(teacher, x, cal, plain)
        sizes = teacher.layer_sizes
        params = Params(sizes)
        for l, (w, b) in enumerate(zip(teacher.weights, teacher.biases)):  # noqa: E741
            params.W[l][...], params.b[l][...] = w, b
        optimizer = Adam(params, lr)
        rng = np.random.default_rng(seed)
        n = len(x)
        std = np.asarray(teacher.input_std, np.float64)
        for epoch in range(1, epochs + 1):
            x_epoch = x + jitter * std * rng.normal(size=x.shape) if jitter else x
            a0, s_in = _input_tensor(teacher, plain, x_epoch)
            out_epoch = teacher.forward(x_epoch)
            target = softmax(out_epoch) if teacher.task == "classify" else out_epoch
            order = rng.permutation(n)
            for start in range(0, n, BATCH):
                rows = order[start : start + BATCH]
                out, cache = fake_forward(params, grids, a0[rows], s_in)
                optimizer.step(params, fake_grads(params, cache, _loss_grad(teacher.task, out, target[rows])))
            epochs_run = epoch
            try:
                qm, warnings = quantize(_student(params, teacher), x, name=name, calibration=cal)
            except UserError:  # a fine-tuned model the format cannot hold is simply not chosen
                continue
            score = _score(teacher, qm, x, teacher_out)
            if progress is not None:
                progress(epoch, score[0])
            if best_tuned is None or score > best_tuned[0]:
                best_tuned = (score, epoch, qm, warnings)
    use_tuned = best_tuned is not None and (force or best_tuned[0] > plain_score)
    chosen = best_tuned if use_tuned else best
    return QATResult(
        model=chosen[2],
        warnings=chosen[3],
        used=use_tuned,
        plain_score=plain_score[0],
        qat_score=best_tuned[0][0] if best_tuned is not None else plain_score[0],
        epoch=chosen[1],
        epochs_run=epochs_run,
    )
