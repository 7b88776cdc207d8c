"""Score a trained model (float `.npz` or integer `.enn`) on a table of labelled rows.

`.npz` models run `FloatModel.predict`; `.enn` models run the golden integer forward pass, i.e. exactly
what the board computes. Both are wrapped in `LoadedModel` so the caller never cares which it is.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgenn.data import Dataset, bundled_path, list_datasets, load_for_model, read_table, resolve_data_path
from edgenn.errors import UserError
from edgenn.floatmodel import FloatModel
from edgenn.metrics import classification_summary, regression_summary
from edgenn.nn import accuracy, split_for_model

SPLITS = ("all", "train", "val", "test")


@dataclass
class LoadedModel:
    path: str
    kind: str  # "float" (.npz) | "integer" (.enn)
    task: str
    feature_names: list[str]
    labels: list[str]
    label_column: str | None  # known for .npz (recorded by train); for .enn the regress target name
    predict: Callable[[np.ndarray], np.ndarray]
    float_model: FloatModel | None = None
    # .enn: the .npz it was quantized from, when it lies beside it (quantize's default output name) and
    # matches it; the .enn itself records no split, the .npz does (which rows trained the model)
    quantized_from: FloatModel | None = None

    @property
    def trained_as(self) -> FloatModel | None:
        return self.float_model or self.quantized_from


def load_model(path: str | Path) -> LoadedModel:
    """Tell .npz from .enn by the file's first bytes (a zip archive vs the EDNN magic), not its name."""
    path = Path(path)
    if not path.exists():
        if bundled_path(str(path)) is not None:
            raise UserError(f"{path}: is a bundled dataset, not a model (usage: edgenn evaluate MODEL DATA)")
        raise UserError(f"{path}: no such file (train a model with `edgenn train`, then `edgenn quantize`)")
    if path.is_dir():
        raise UserError(f"{path}: is a directory, expected a .npz or .enn model")
    with open(path, "rb") as fh:
        magic = fh.read(4)
    if magic.startswith(b"PK"):
        fm = FloatModel.load(path)
        return LoadedModel(
            str(path),
            "float",
            fm.task,
            fm.feature_names,
            fm.labels,
            fm.meta.get("label_column"),
            fm.predict,
            fm,
        )
    if magic == b"EDNN":
        from edgenn import golden, modelfile  # the integer side; imported only when needed

        qm = modelfile.load(path)
        label_column = qm.labels[0] if qm.task == "regress" and len(qm.labels) == 1 else None
        return LoadedModel(
            str(path),
            "integer",
            qm.task,
            qm.input_names,
            qm.labels,
            label_column,
            lambda x: golden.predict(qm, x),
            quantized_from=_float_beside(path, qm),
        )
    raise UserError(
        f"{path}: neither a float model (.npz from `edgenn train`) nor an integer model "
        f"(.enn from `edgenn quantize`)"
    )


def _float_beside(path: Path, qm) -> FloatModel | None:
    """NAME.npz next to NAME.enn, if it has the .enn's shape, inputs, labels and task (so the .enn was
    quantized from it, as `edgenn quantize NAME.npz` names its output); else None."""
    npz = path.with_suffix(".npz")
    if not npz.is_file():
        return None
    try:
        fm = FloatModel.load(npz)
    except UserError:
        return None
    shape = [qm.n_inputs] + [layer.n_out for layer in qm.layers]
    if fm.layer_sizes != shape or fm.input_names != qm.input_names or fm.labels != qm.labels:
        return None
    return fm if fm.task == qm.task else None


def resolve_label_column(model: LoadedModel, data: str, label: str | None) -> str:
    """--label if given; the bundled dataset's label; the column the model was trained with; or the one
    column of the file that is not a feature."""
    if label is not None:
        return label
    if bundled_path(data) is not None:
        return next(d["label"] for d in list_datasets() if d["name"] == data)
    table = read_table(resolve_data_path(data))
    if model.label_column and model.label_column in table.header:
        return model.label_column
    non_features = [h for h in table.header if h not in model.feature_names]
    if len(non_features) == 1:
        return non_features[0]
    if not non_features:
        raise UserError(
            f"{data}: no label column (every column is a model feature); evaluation needs the true labels"
        )
    raise UserError(
        f"{data}: which column holds the labels? pass --label (candidates: {', '.join(non_features)})"
    )


def evaluate(model: LoadedModel, data: str, label: str | None = None, split: str = "all") -> dict:
    """Metrics of `model` on DATA (all rows in file order, or one part of the split `train` used)."""
    if split not in SPLITS:
        raise UserError(f"unknown split {split!r} (choose from {', '.join(SPLITS)})")
    label = resolve_label_column(model, data, label)
    dataset, _ = load_for_model(data, model.feature_names, label, model.task, model.labels)
    rows = np.arange(dataset.n_rows)
    trained_on = _training_split(model, dataset)
    if split != "all":
        if trained_on is None:
            why = "the .enn file does not record its split" if model.kind == "integer" else "the data differs"
            raise UserError(
                f"--split {split} needs the .npz model and the exact data it was trained on ({why}); "
                f"use --split all"
            )
        rows = getattr(trained_on, split)
        if len(rows) == 0:
            raise UserError(
                f"--split {split}: the model has no {split} rows: `edgenn train` fitted it on every row of "
                f"{data} (its estimate is the cross-validation score it printed); score it on a separate "
                f"file with `edgenn evaluate MODEL TEST.csv`, or train with --test-fraction to hold rows out"
            )
    predictions = model.predict(dataset.X[rows])
    result: dict = {
        "model": model.path,
        "kind": model.kind,
        "task": model.task,
        "data": data,
        "label_column": label,
        "split": split,
        "n": int(len(rows)),
    }
    y = dataset.y[rows]
    if model.task == "classify":
        result["accuracy"] = accuracy(predictions, y)
        result["correct"] = int(np.sum(predictions == y))
        result["labels"] = model.labels
        result.update(classification_summary(y, predictions, model.labels))
        result["predictions"] = [int(p) for p in predictions]
    else:
        values = np.asarray(predictions, dtype=np.float64).reshape(len(rows), -1)
        result.update(regression_summary(values, y))  # rmse, mae of the first output
        result["predictions"] = [float(v[0]) if len(v) == 1 else [float(x) for x in v] for v in values]
    if split == "all" and trained_on is not None:
        result["includes_training_rows"] = int(len(trained_on.train))
    return result


HELD_OUT = "`--split test` scores only the held-out rows"


def training_rows_note(fm: FloatModel | None, n: int, trained: int, held_out: str = HELD_OUT) -> str:
    """What to say beside figures on n rows of which `trained` taught the model: they are not an estimate
    for new data, and where a fair figure is (the held-out rows, or train's cross-validated estimate)."""
    if trained < n:
        return f"{trained} of these rows were used for training; {held_out}"
    cv = fm.meta.get("cv") if fm is not None else None
    estimate = ""
    if cv:
        shown = f"{100 * cv['mean']:.2f}%" if cv["metric"] == "accuracy" else f"RMSE {cv['mean']:.4g}"
        estimate = f" (train's {cv['k']}-fold cross-validated estimate: {shown})"
    return (
        f"the model was trained on all {trained} of these rows, so this is not how it does on new "
        f"data{estimate}; evaluate a file it never saw for that"
    )


def _training_split(model: LoadedModel, dataset: Dataset):
    if model.trained_as is None:
        return None
    return split_for_model(model.trained_as, dataset)
