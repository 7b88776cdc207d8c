"""Everything the report shows, computed once: the data, each model's predictions, the per-layer
quantization error, what the board answered and whether the model fits the board.

No HTML and no figures here (page.py and figures.py draw what this returns), so tests and notebooks
can read the numbers directly.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from edgenn import golden, modelfile
from edgenn.data import Dataset, load_for_model, read_table, resolve_data_path
from edgenn.errors import UserError
from edgenn.evaluation import load_model, resolve_label_column, training_rows_note
from edgenn.floatmodel import FloatModel
from edgenn.metrics import LayerError, layer_errors
from edgenn.modelfile import QuantModel
from edgenn.nn import split_for_model

if TYPE_CHECKING:
    from edgenn.commands.anomaly_task import Rows

Progress = Callable[[str], None]


@dataclass
class BoardSection:
    """What `--port` measured: eval-device's summary plus the board's own `info`."""

    info: dict[str, Any]
    summary: dict[str, Any]
    predictions: np.ndarray  # class ids (-1 refused) or values (NaN refused)
    latency_us: np.ndarray  # measured by the board, per answered row


@dataclass
class FitSection:
    """The model against a board profile's heap and flash (edgenn.fit, the arithmetic deploy checks),
    and the emulated latency of the board's own machine code when `edgenn estimate` runs for it."""

    fit: Any  # edgenn.fit.FitResult
    estimate: dict[str, Any] | None
    estimate_note: str


@dataclass
class AnomalySection:
    """An anomaly model's scores on DATA (edgenn.anomaly): per source ("float", "integer", "board") the
    score of every row and the threshold it is compared with, which rows DATA says are anomalous (None
    without a label column), and where each integer score comes from."""

    scores: dict[str, np.ndarray]
    thresholds: dict[str, float]
    anomalous: np.ndarray | None  # bool (n,)
    row_labels: list[str] | None  # the label column's value per row
    normal: list[str] | None  # the label values that mean normal
    terms: np.ndarray  # int64 (n, d): each input's share of the integer score (reconstruction + deviation)


@dataclass
class ReportData:
    title: str
    model_path: str
    data_name: str
    dataset: Dataset
    task: str
    labels: list[str]
    feature_names: list[str]
    fm: FloatModel | None
    qm: QuantModel | None
    qm_source: str  # where the integer model came from (file, in-memory quantization, the board)
    predictions: dict[str, np.ndarray] = field(default_factory=dict)  # "float" / "integer" / "board"
    calibrated_range: tuple[np.ndarray, np.ndarray] | None = None  # feature units, per network input
    # what the network's input scaling sees per row: the raw features, or a front end's features
    inputs: np.ndarray | None = None
    input_names: list[str] = field(default_factory=list)
    layers: list[LayerError] | None = None
    board: BoardSection | None = None
    fit: FitSection | None = None
    histories: dict[str, list[dict]] = field(default_factory=dict)
    anomaly: AnomalySection | None = None  # anomaly models: scores instead of predictions
    notes: list[str] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)


def collect(
    model: str,
    data: str,
    float_model: str | None = None,
    label: str | None = None,
    port: str | None = None,
    board: str | None = None,
    baud: int = 115200,
    timeout: float = 5.0,
    progress: Progress | None = None,
    normal: list[str] | None = None,
) -> ReportData:
    """Load MODEL (.npz or .enn) and DATA and compute every section's numbers. `normal`: for an anomaly
    model, the label values that mean normal (default: those it was trained with)."""
    say = progress or (lambda _msg: None)
    t0 = time.perf_counter()
    if board is not None:  # an unknown --board is a one-line error before any slow work
        from edgenn.boards import load_board

        load_board(board)
    loaded = load_model(model)
    fm: FloatModel | None = loaded.float_model
    qm: QuantModel | None = None
    qm_source = ""
    if loaded.kind == "integer":
        qm = modelfile.load(model)
        qm_source = f"{model}"
        if float_model is not None:
            fm = load_model(float_model).float_model
            if fm is None:
                raise UserError(f"--float {float_model}: is not a float model (.npz from `edgenn train`)")
            _check_same_interface(fm, qm, float_model, model)
    elif float_model is not None:
        raise UserError("--float adds the float model beside an integer MODEL.enn; MODEL is already a .npz")

    if loaded.task == "anomaly":
        dataset, rows, row_labels = _anomaly_rows(fm, loaded.feature_names, data, label, normal)
    else:
        if normal:
            raise UserError(
                f"--normal names the normal rows of an anomaly model; this is a {loaded.task} model"
            )
        label = resolve_label_column(loaded, data, label)
        dataset, _ = load_for_model(data, loaded.feature_names, label, loaded.task, loaded.labels)
        rows = None
    if dataset.n_rows == 0:
        raise UserError(f"{data}: no rows")
    X, y = dataset.X, dataset.y
    report = ReportData(
        title=f"{Path(model).name} on {data}",
        model_path=model,
        data_name=data,
        dataset=dataset,
        task=loaded.task,
        labels=list(loaded.labels),
        feature_names=list(loaded.feature_names),
        fm=fm,
        qm=qm,
        qm_source=qm_source,
    )
    report.seconds["load"] = time.perf_counter() - t0

    if fm is not None and rows is not None:
        note = _fitted_rows_note(fm, rows)
        if note:
            report.notes.append(note)
    if fm is not None:
        split = split_for_model(fm, dataset)  # DATA is what the model was trained on
        if split is not None and len(split.train):
            held_out = f"`edgenn evaluate MODEL {data} --split test` scores only the held-out rows"
            report.notes.append(training_rows_note(fm, dataset.n_rows, len(split.train), held_out))
        report.histories = histories(fm.meta)
        if not report.histories and fm.task != "anomaly":  # train --task anomaly keeps no per-epoch record
            report.notes.append(
                "the float model records no training history (trained outside `edgenn train`?)"
            )
    else:
        report.notes.append(
            "no float model: pass --float MODEL.npz for the float predictions, training curves and the "
            "per-layer quantization error"
        )

    if port is not None:
        say(f"running {dataset.n_rows} rows on the board at {port}")
        t = time.perf_counter()
        truth = (
            y if rows is None else rows.anomalous
        )  # an anomaly model's board run: which rows are anomalous
        report.board, board_qm = _run_board(
            port, baud, timeout, qm, model if qm is not None else None, X, truth
        )
        if qm is None:  # a .npz MODEL: compare with what the board runs
            report.qm, report.qm_source = board_qm, "read back from the board"
            _check_same_interface(fm, board_qm, model, "the board's model")
        report.seconds["board"] = time.perf_counter() - t

    if report.qm is None and fm is not None:  # a .npz alone: quantize it the way `edgenn quantize` does
        from edgenn.quantize import quantize

        split = split_for_model(fm, dataset)
        calibration = split.train if split is not None and len(split.train) else np.arange(dataset.n_rows)
        where = "the training rows" if split is not None else "all rows of DATA"
        if rows is not None and rows.anomalous is not None:  # an anomaly model calibrates on normal rows
            calibration, where = np.flatnonzero(~rows.anomalous), "the normal rows of DATA"
        report.qm, _ = quantize(fm, X[calibration], name=str(fm.meta.get("dataset") or dataset.name))
        report.qm_source = (
            f"quantized in memory for this report (calibrated on {where}, as `edgenn quantize --no-qat`)"
        )

    t = time.perf_counter()
    qm = report.qm
    assert qm is not None
    if rows is not None:
        report.anomaly = anomaly_section(fm, qm, rows, row_labels)
        if report.board is not None:  # the board's own scores (NaN where it refused a row)
            report.anomaly.scores["board"] = report.board.predictions
            report.anomaly.thresholds["board"] = float(qm.threshold)
    else:
        if fm is not None:
            report.predictions["float"] = _values(fm.predict(X), report.task)
        report.predictions["integer"] = _values(golden.predict(qm, X), report.task)
        if report.board is not None:
            report.predictions["board"] = report.board.predictions
    a = np.asarray(qm.in_scale, np.float32).astype(np.float64)
    c = np.asarray(qm.in_offset, np.float32).astype(np.float64)
    report.calibrated_range = ((-0.5 - c) / a, (255.5 - c) / a)  # values that round to codes 0..255
    report.inputs = np.asarray(golden.features(qm, X), dtype=np.float64)
    report.input_names = list(qm.feature_names)
    if fm is not None:
        report.layers = layer_errors(fm, qm, X)
    report.seconds["models"] = time.perf_counter() - t

    profile_name = board or _board_profile_name(report.board)
    if profile_name is not None:
        from edgenn.boards import load_board
        from edgenn.machinecode.estimate import CORES

        emulated = load_board(profile_name).chip in CORES  # the virtual board has no cycle model
        say(
            f"memory fit on {profile_name}"
            + ("; estimated latency from its machine code (emulated)" if emulated else "")
        )
        t = time.perf_counter()
        report.fit = fit_section(qm, profile_name)
        report.seconds["fit"] = time.perf_counter() - t
    return report


def _fitted_rows_note(fm: FloatModel, rows: Rows) -> str | None:
    """An anomaly model is fitted on every normal row it is given (its threshold comes from their
    out-of-fold scores): when DATA's normal rows are those rows, their scores here are lower than new
    normal data would get."""
    from edgenn import anomaly

    info = fm.meta.get("anomaly", {})
    normal = rows.X if rows.anomalous is None else rows.X[~rows.anomalous]
    if not len(normal) or info.get("normal_fingerprint") != anomaly.rows_fingerprint(normal):
        return None
    return (
        f"the model was fitted on all {len(normal)} normal rows here, so their scores are lower than new "
        "normal data would get (the threshold comes from their out-of-fold scores); score a file it never "
        "saw for how it does on new data"
    )


def _anomaly_rows(
    fm: FloatModel | None, names: list[str], data: str, label: str | None, normal: list[str] | None
) -> tuple[Dataset, Rows, list[str] | None]:
    """DATA for an anomaly model, read as `edgenn evaluate` reads it (edgenn.commands.anomaly_task):
    -> (a Dataset whose classes are normal / anomalous, the Rows, each row's label or None). Without
    --label/--normal: those the float model was trained with."""
    from edgenn.commands.anomaly_task import read_rows

    info = fm.meta.get("anomaly", {}) if fm is not None else {}
    rows = read_rows(data, label or info.get("label_column"), normal or info.get("normal"), names)
    y = np.zeros(len(rows.X), np.int64) if rows.anomalous is None else rows.anomalous.astype(np.int64)
    # the label values themselves, to show beside the scores
    labels = read_table(resolve_data_path(data)).column(rows.label_column) if rows.label_column else None
    dataset = Dataset(
        Path(rows.source).stem,
        rows.source,
        rows.X,
        y,
        list(names),
        rows.label_column or "",
        "anomaly",
        ["normal", "anomalous"],
    )
    return dataset, rows, labels


def anomaly_section(
    fm: FloatModel | None, qm: QuantModel, rows: Rows, row_labels: list[str] | None
) -> AnomalySection:
    """Float and integer scores of every row, and each input's term of the integer score
    S = sum_d c_d (u_d - r_d)**2 + e_d (u_d - m_d)**2 (docs/model-format.md), to say why a row scores high."""
    from edgenn import anomaly

    scores: dict[str, np.ndarray] = {}
    thresholds: dict[str, float] = {}
    if fm is not None:
        scores["float"], thresholds["float"] = anomaly.scores(fm, rows.X)
    scores["integer"], thresholds["integer"] = anomaly.scores(qm, rows.X)
    u = golden.quantize_input(qm, rows.X).astype(np.int64)
    r = golden.forward_q(qm, u).astype(np.int64) + 128
    c, e = np.asarray(qm.score_weights, np.int64), np.asarray(qm.deviation_weights, np.int64)
    terms = c * (u - r) ** 2 + e * (u - np.asarray(qm.score_center, np.int64)) ** 2
    return AnomalySection(scores, thresholds, rows.anomalous, row_labels, rows.normal, terms)


def _values(pred: np.ndarray, task: str) -> np.ndarray:
    if task == "classify":
        return np.asarray(pred, dtype=np.int64)
    return np.asarray(pred, dtype=np.float64).reshape(len(pred), -1)[:, 0]


def _check_same_interface(fm: FloatModel, qm: QuantModel, fm_name: str, qm_name: str) -> None:
    if fm.input_names != qm.input_names or list(fm.labels) != list(qm.labels):
        raise UserError(
            f"{fm_name} and {qm_name} are not the same model (their features or labels differ); "
            f"pass the .npz the .enn was quantized from"
        )


def histories(meta: dict) -> dict[str, list[dict]]:
    """Per-epoch training records by run name ("final fit", "fold 1", ...), from the .npz meta.

    `meta["history"]` is the final fit: a list of {"epoch", "train_loss", "val_loss", "val_metric"}
    (or a dict with "final" and "folds"); `meta["fold_histories"]`, when present, is one such list per
    cross-validation fold."""
    out: dict[str, list[dict]] = {}
    history = meta.get("history")
    folds = meta.get("fold_histories") or []
    if isinstance(history, dict):
        folds = history.get("folds") or folds
        history = history.get("final")
    for k, fold in enumerate(folds):
        if isinstance(fold, dict):
            fold = fold.get("history", [])
        if fold:
            out[f"fold {k + 1}"] = list(fold)
    if history:
        out["final fit"] = list(history)
    return out


def _run_board(
    port: str,
    baud: int,
    timeout: float,
    qm: QuantModel | None,
    local: str | None,
    X: np.ndarray,
    y: np.ndarray,
) -> tuple[BoardSection, QuantModel]:
    from edgenn.device.board_eval import golden_model_for_board, run_rows, summarize
    from edgenn.device.client import BoardClient

    with BoardClient(port, baud=baud, timeout=timeout) as client:
        info = client.connect()
        board_qm = golden_model_for_board(
            client, info, local, f"or give report the model the board runs (`edgenn doctor --port {port}`)"
        )
        run = run_rows(client, board_qm, X, float_bits=int(info.get("float_bits", 64)))
    summary = summarize(run, board_qm, y, X)
    return BoardSection(info, summary, run.board_pred, run.latency_us), board_qm


def _board_profile_name(board: BoardSection | None) -> str | None:
    """The profile of the board on --port: the one `doctor` and `deploy` name (boards.profile_name_for)."""
    if board is None:
        return None
    from edgenn.boards import profile_name_for

    info = board.info
    return profile_name_for(info.get("board"), str(info.get("platform") or ""))


def fit_section(qm: QuantModel, board_name: str) -> FitSection:
    from edgenn.fit import check_fit

    fit = check_fit(qm, board_name)  # the profile's figures (UserError naming an unknown board)
    estimate, note = _estimate(qm, board_name)
    return FitSection(fit, estimate, note)


def _estimate(qm: QuantModel, board_name: str) -> tuple[dict[str, Any] | None, str]:
    """`edgenn estimate`'s figures (the kernel deploy installs on that board), or why there are none."""
    try:
        from edgenn.boards import load_board
        from edgenn.machinecode import MachineCodeError
        from edgenn.machinecode.estimate import CORES, estimate
    except ImportError:
        return None, "not available: this edgenn has no `edgenn estimate` (machine-code emulation)"
    profile = load_board(board_name)
    if profile.chip not in CORES:
        return None, (
            f"not available for {profile.name}: `edgenn estimate` models the cores of "
            f"{', '.join(CORES)} (pass --board esp32 for an ESP32's figure)"
        )
    try:
        return estimate(qm, profile), ""
    except (MachineCodeError, UserError, OSError) as exc:
        return None, f"not available: {exc}"
