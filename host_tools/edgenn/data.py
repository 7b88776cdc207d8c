"""Tabular data in: CSV files and the bundled datasets, checked, split and scaled.

CSV rules (what `read_csv` accepts):
- UTF-8 text (a byte-order mark is fine), comma-separated, the first line is a header naming every column;
  column names are unique and non-empty. Blank lines are skipped; cells are stripped of spaces.
- Every feature cell is a finite number. Empty cells and NA/NaN/? are "missing values" and are refused
  (edgenn does not guess replacements).
- The label column may hold text or numbers. Class ids follow the SORTED order of the distinct labels:
  numerically if every label is a number ("2" < "10"), otherwise by text. The order is recorded in the
  model (`labels`), so class id k always means `labels[k]`.
- Errors name the file, the row (spreadsheet numbering: the header is row 1, the first data row is row 2,
  which is also the line number in a text editor) and the column.
"""

from __future__ import annotations

import csv
import hashlib
import json
import math
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

import numpy as np

from edgenn.errors import UserError

BUNDLED_DIR = Path(__file__).parent / "datasets"
MISSING_MARKERS = frozenset({"", "na", "n/a", "nan", "null", "none", "?"})
# A numeric label column with at most this many distinct whole-number values is treated as classes.
MAX_INFERRED_CLASSES = 20


@dataclass
class Dataset:
    """Features and targets of one table, with the names needed to map them back to the file."""

    name: str  # bundled name or file stem
    source: str  # where it came from (path or "bundled:iris")
    X: np.ndarray  # float64 (n, d), raw units
    y: np.ndarray  # int64 class ids (classify) or float64 targets (regress), shape (n,)
    feature_names: list[str]
    label_column: str
    task: str  # "classify" | "regress"
    labels: list[str] = field(default_factory=list)  # class names by id (classify) or [label_column]

    @property
    def n_rows(self) -> int:
        return int(self.X.shape[0])

    @property
    def n_features(self) -> int:
        return int(self.X.shape[1])

    def fingerprint(self) -> str:
        """Short hash of the values, so a later command can tell it is looking at the same data."""
        h = hashlib.sha256()
        h.update(np.ascontiguousarray(self.X, dtype=np.float64).tobytes())
        h.update(np.ascontiguousarray(self.y).astype(np.float64).tobytes())
        return h.hexdigest()[:16]

    def subset(self, rows: np.ndarray) -> Dataset:
        return Dataset(
            self.name,
            self.source,
            self.X[rows],
            self.y[rows],
            self.feature_names,
            self.label_column,
            self.task,
            self.labels,
        )


# ---------------------------------------------------------------------------------------------------
# Reading a CSV into named columns of text


@dataclass
class Table:
    """A CSV as read: the header and the cells as text, plus each data row's row number in the file."""

    path: str
    header: list[str]
    rows: list[list[str]]
    row_numbers: list[int]

    def column(self, name: str) -> list[str]:
        j = self.header.index(name)
        return [r[j] for r in self.rows]

    def where(self, i: int, name: str) -> str:
        """'file.csv, row 7, column "x"' for error messages."""
        return f"{self.path}, row {self.row_numbers[i]}, column {name!r}"


def read_table(path: str | Path) -> Table:
    path = Path(path)
    if not path.exists():
        raise UserError(f"{path}: no such file")
    if path.is_dir():
        raise UserError(f"{path}: is a directory, expected a CSV file")
    with open(path, "rb") as fh:
        magic = fh.read(4)
    if magic.startswith(b"PK") or magic == b"EDNN":
        raise UserError(f"{path}: is an edgenn model, not a CSV file (MODEL comes before DATA)")
    try:
        with open(path, newline="", encoding="utf-8-sig") as fh:
            lines = list(csv.reader(fh))
    except UnicodeDecodeError as exc:
        raise UserError(f"{path}: not UTF-8 text (byte {exc.start}); save the CSV as UTF-8") from None
    except csv.Error as exc:
        raise UserError(f"{path}: not a readable CSV ({exc})") from None
    except OSError as exc:
        raise UserError(f"{path}: cannot read ({exc.strerror})") from None
    numbered = [(i + 1, [c.strip() for c in cells]) for i, cells in enumerate(lines)]
    numbered = [(n, cells) for n, cells in numbered if any(cells)]  # blank lines carry no data
    if not numbered:
        raise UserError(f"{path}: empty file (expected a header row naming the columns, then data rows)")
    header_line, header = numbered[0]
    for j, name in enumerate(header):
        if not name:
            raise UserError(f"{path}, row {header_line}: column {j + 1} of the header has no name")
    duplicates = sorted({h for h in header if header.count(h) > 1})
    if duplicates:
        raise UserError(
            f"{path}, row {header_line}: duplicate column name(s) in the header: {', '.join(duplicates)}"
        )
    if len(header) == 1 and ";" in header[0]:
        raise UserError(
            f"{path}: the header has a single column {header[0]!r}; edgenn reads comma-separated files"
        )
    data = numbered[1:]
    if not data:
        raise UserError(f"{path}: has a header but no data rows")
    for n, cells in data:
        if len(cells) != len(header):
            raise UserError(
                f"{path}, row {n}: {len(cells)} cells but the header has {len(header)} columns (ragged row)"
            )
    return Table(str(path), header, [cells for _, cells in data], [n for n, _ in data])


def parse_numbers(table: Table, names: list[str]) -> np.ndarray:
    """The named columns as a float64 matrix; the first bad cell is reported by file, row and column."""
    idx = [table.header.index(n) for n in names]
    cells = [[row[j] for j in idx] for row in table.rows]
    try:  # fast path: everything parses
        X = np.array(cells, dtype=np.float64).reshape(len(cells), len(idx))
        if np.isfinite(X).all():
            return X
    except ValueError:
        pass
    for i, row in enumerate(cells):  # slow path, only to find and name the culprit
        for name, cell in zip(names, row):
            if cell.lower() in MISSING_MARKERS:
                raise UserError(
                    f"{table.where(i, name)}: missing value ({cell!r}); fill it in or drop the row"
                )
            try:
                value = float(cell)
            except ValueError:
                raise UserError(
                    f"{table.where(i, name)}: {cell!r} is not a number (every column but the label is a "
                    f"numeric feature; drop or encode text columns)"
                ) from None
            if not math.isfinite(value):
                raise UserError(f"{table.where(i, name)}: {cell!r} is not a finite number")
    raise AssertionError("unreachable: some cell failed to parse")


# ---------------------------------------------------------------------------------------------------
# Labels


def _as_number(text: str) -> float | None:
    try:
        v = float(text)
    except ValueError:
        return None
    return v if math.isfinite(v) else None


def sorted_labels(values: list[str]) -> list[str]:
    """Distinct labels in the recorded order: numeric order if all are numbers, else text order."""
    distinct = sorted(set(values))
    numbers = [_as_number(v) for v in distinct]
    if all(n is not None for n in numbers):
        # "1" and "1.0" are the same class: keep one spelling per value
        by_value: dict[float, str] = {}
        for v, n in zip(distinct, numbers):
            by_value.setdefault(n, v)
        return [by_value[k] for k in sorted(by_value)]
    return distinct


def encode_labels(table: Table, column: str, labels: list[str]) -> np.ndarray:
    """Class ids for the label column given the class order `labels` (from the data or from a model)."""
    index = {lab: k for k, lab in enumerate(labels)}
    numeric_index = {}
    for lab, k in index.items():
        n = _as_number(lab)
        if n is not None:
            numeric_index[n] = k
    ids = np.empty(len(table.rows), dtype=np.int64)
    for i, cell in enumerate(table.column(column)):
        k = index.get(cell)
        if k is None:
            n = _as_number(cell)
            k = numeric_index.get(n) if n is not None else None
        if k is None:
            if cell.lower() in MISSING_MARKERS:
                raise UserError(f"{table.where(i, column)}: missing label ({cell!r})")
            shown = ", ".join(labels[:12]) + (", ..." if len(labels) > 12 else "")
            raise UserError(f"{table.where(i, column)}: label {cell!r} is not one of the classes ({shown})")
        ids[i] = k
    return ids


def infer_task(table: Table, column: str) -> str:
    """Text labels or a few whole numbers -> classify; other numbers -> regress."""
    values = [v for v in table.column(column) if v.lower() not in MISSING_MARKERS]
    numbers = [_as_number(v) for v in values]
    if any(n is None for n in numbers):
        return "classify"
    distinct = set(numbers)
    if all(float(n).is_integer() for n in distinct) and len(distinct) <= MAX_INFERRED_CLASSES:
        return "classify"
    return "regress"


# ---------------------------------------------------------------------------------------------------
# Bundled datasets


@cache
def _bundled_metadata() -> dict:
    return json.loads((BUNDLED_DIR / "datasets.json").read_text())


def list_datasets() -> list[dict]:
    """One dict per bundled dataset: name, task, rows, features, label, source."""
    return [{"name": name, **meta} for name, meta in sorted(_bundled_metadata().items())]


def bundled_path(name: str) -> Path | None:
    return BUNDLED_DIR / f"{name}.csv" if name in _bundled_metadata() else None


def _shown(name_or_path: str, path: Path) -> str:
    """How errors name DATA: a bundled set by its name (its file lives inside the package)."""
    return name_or_path if bundled_path(name_or_path) else str(path)


def _names(names: list[str], most: int = 12) -> str:
    """Column names for a message; a sensor window's 96 columns become the first few and a count."""
    if len(names) <= most:
        return ", ".join(names)
    return f"{', '.join(names[: most - 2])}, ..., {names[-1]} ({len(names)} in all)"


def resolve_data_path(name_or_path: str) -> Path:
    """A bundled dataset's CSV or the given file; anything else is a UserError listing the bundled names."""
    path = bundled_path(name_or_path) or Path(name_or_path)
    if not path.exists():
        names = ", ".join(sorted(_bundled_metadata()))
        raise UserError(f"{name_or_path}: no such file, and not a bundled dataset (bundled: {names})")
    return path


RECORDED_LABEL = "label"  # a CSV with a column of this name needs no --label


def load_dataset(name_or_path: str, label: str | None = None, task: str | None = None) -> Dataset:
    """A bundled dataset by name, or a CSV file. `label` may be omitted for bundled datasets;
    `task` is inferred (bundled metadata, else from the label column) unless given."""
    path = resolve_data_path(name_or_path)
    meta = _bundled_metadata().get(name_or_path) if bundled_path(name_or_path) else None
    table = read_table(path)
    shown = _shown(name_or_path, path)
    if label is None and meta is None and RECORDED_LABEL in table.header:
        label = RECORDED_LABEL  # the column `edgenn record` writes
    if label is None:
        if meta is None:
            raise UserError(
                f"{shown}: which column is the label? pass --label COLUMN (columns: {_names(table.header)})"
            )
        label = meta["label"]
    if label not in table.header:
        raise UserError(f"{shown}: no column named {label!r} for the label (columns: {_names(table.header)})")
    feature_names = [h for h in table.header if h != label]
    if not feature_names:
        raise UserError(f"{path}: the label column {label!r} is the only column; there are no features")
    if task is None:
        task = meta["task"] if meta is not None and label == meta["label"] else infer_task(table, label)
    X = parse_numbers(table, feature_names)
    if task == "classify":
        raw = table.column(label)
        labels = sorted_labels([v for v in raw if v.lower() not in MISSING_MARKERS])
        y = encode_labels(table, label, labels)
        if len(labels) < 2:
            only = labels[0] if labels else ""
            raise UserError(
                f"{path}, column {label!r}: only one class ({only!r}); classification needs at least two"
            )
    elif task == "regress":
        for i, v in enumerate(table.column(label)):
            if _as_number(v) is None and v.lower() not in MISSING_MARKERS:
                raise UserError(
                    f"{table.where(i, label)}: {v!r} is not a number: the label holds text, and regression "
                    f"needs a number in every row (use --task classify for text labels)"
                )
        y = parse_numbers(table, [label])[:, 0]
        labels = [label]
    else:
        raise UserError(f"unknown task {task!r} (use classify or regress)")
    name = name_or_path if meta is not None else path.stem
    source = f"bundled:{name_or_path}" if meta is not None else str(path)
    return Dataset(name, source, X, y, feature_names, label, task, labels)


def load_for_model(
    name_or_path: str, feature_names: list[str], label: str, task: str, labels: list[str]
) -> tuple[Dataset, Table]:
    """Read DATA to evaluate an already-trained model: features picked by the model's names (any column
    order), classes encoded in the model's class order. Says exactly which columns are wrong."""
    path = resolve_data_path(name_or_path)
    table = read_table(path)
    shown = _shown(name_or_path, path)
    if label not in table.header:
        raise UserError(
            f"{shown}: no label column {label!r} (columns: {_names(table.header)}); pass --label COLUMN"
        )
    present = [h for h in table.header if h != label]
    missing = [f for f in feature_names if f not in present]
    extra = [h for h in present if h not in feature_names]
    if missing or extra:
        parts = []
        if missing:
            parts.append(f"missing feature column(s) {_names(missing)}")
        if extra:
            parts.append(f"unexpected column(s) {_names(extra)}")
        raise UserError(
            f"{shown}: columns do not match the model: {'; '.join(parts)} "
            f"(the model expects {len(feature_names)} features: {_names(feature_names)}; label {label!r})"
        )
    X = parse_numbers(table, feature_names)
    if task == "classify":
        y = encode_labels(table, label, labels)
    else:
        y = parse_numbers(table, [label])[:, 0]
    name = name_or_path if bundled_path(name_or_path) else path.stem
    return Dataset(name, str(path), X, y, list(feature_names), label, task, list(labels)), table


# ---------------------------------------------------------------------------------------------------
# Splits and scaling


@dataclass
class Split:
    train: np.ndarray  # row indices, sorted
    val: np.ndarray
    test: np.ndarray


def _strata(dataset: Dataset, n_bins: int = 10) -> np.ndarray:
    """Classes for classify; target quantile bins for regress (so every split sees the whole range)."""
    if dataset.task == "classify":
        return dataset.y
    edges = np.quantile(dataset.y, np.linspace(0, 1, n_bins + 1)[1:-1])
    return np.searchsorted(edges, dataset.y, side="right")


def stratified_split(
    dataset: Dataset, test_fraction: float = 0.2, val_fraction: float = 0.15, seed: int = 0
) -> Split:
    """Each class (or target bin) is shuffled with `seed` and cut into test / val / train in the given
    fractions (rounded per class); every class keeps at least one training row."""
    if not (0 <= test_fraction < 1 and 0 <= val_fraction < 1 and test_fraction + val_fraction < 1):
        raise UserError(
            f"split fractions test={test_fraction}, val={val_fraction} must be >= 0 and sum to < 1"
        )
    rng = np.random.default_rng(seed)
    strata = _strata(dataset)
    train, val, test = [], [], []
    for s in np.unique(strata):
        rows = np.flatnonzero(strata == s)
        rng.shuffle(rows)
        n_test = int(round(test_fraction * len(rows)))
        n_val = int(round(val_fraction * len(rows)))
        while n_test + n_val >= len(rows) and (n_test or n_val):  # keep a training row for tiny classes
            if n_val >= n_test and n_val:
                n_val -= 1
            else:
                n_test -= 1
        test.append(rows[:n_test])
        val.append(rows[n_test : n_test + n_val])
        train.append(rows[n_test + n_val :])
    return Split(*(np.sort(np.concatenate(part)).astype(np.int64) for part in (train, val, test)))


def stratified_folds(dataset: Dataset, rows: np.ndarray, k: int, seed: int = 0) -> list[np.ndarray]:
    """`rows` cut into k disjoint folds (row indices, sorted) with every class (or target quantile bin,
    for regression) spread as evenly as the counts allow. Each stratum is shuffled with `seed`, the
    strata are laid end to end, and row i of that order goes to fold i % k, so fold sizes differ by at
    most one and a class of m rows puts floor(m/k) or ceil(m/k) rows in every fold."""
    rows = np.asarray(rows, dtype=np.int64)
    if not 2 <= k <= len(rows):
        raise UserError(f"--folds {k}: needs 2 <= folds <= rows ({len(rows)})")
    rng = np.random.default_rng(seed)
    strata = _strata(dataset.subset(rows), n_bins=max(1, min(10, len(rows) // k)))
    order = []
    for s in np.unique(strata):
        members = rows[strata == s]
        rng.shuffle(members)
        order.append(members)
    order = np.concatenate(order)
    return [np.sort(order[f::k]) for f in range(k)]


def usable_folds(dataset: Dataset, rows: np.ndarray, k: int) -> int:
    """The most folds (at most k) that still give every fold a row of every class (classify) or two rows
    (regress); below 2 there is no cross-validation."""
    if dataset.task == "classify":
        smallest = min(int(c) for c in np.bincount(dataset.y[rows]) if c > 0) if len(rows) else 0
        return min(k, smallest)
    return min(k, len(rows) // 2)


def fit_scaling(X_train: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-feature mean and std of the TRAINING rows only; a constant feature gets std 1 (it maps to 0)."""
    mean = X_train.mean(axis=0)
    std = X_train.std(axis=0)
    std = np.where(std > 1e-12 * np.maximum(1.0, np.abs(mean)), std, 1.0)
    return mean, std
