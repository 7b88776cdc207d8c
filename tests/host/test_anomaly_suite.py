"""The anomaly suite's data (bench/anomaly_suite.py): train files hold normal rows only, test files both;
the generated machine shows each fault where a vibration analyst would look for it; and the benchmark's
goal arithmetic (bench/anomaly.py)."""

from __future__ import annotations

import csv
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the repo root: `bench` is not installed
from bench import anomaly as bench_anomaly  # noqa: E402
from bench import anomaly_suite as suite  # noqa: E402


def _read(path: Path) -> tuple[list[str], np.ndarray, np.ndarray]:
    with open(path, newline="") as fh:
        rows = list(csv.reader(fh))
    header, body = rows[0], rows[1:]
    return header, np.array([[float(v) for v in r[:-1]] for r in body]), np.array([r[-1] for r in body])


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> dict[str, suite.AnomalyTask]:
    tasks = suite.build(
        tmp_path_factory.mktemp("anomaly-suite"), ["vibration", "iris_versicolor", "wine_class_1"]
    )
    return {t.name: t for t in tasks}


def test_train_files_hold_normal_rows_only_and_test_files_both(built) -> None:
    for task in built.values():
        _, X_train, y_train = _read(task.train)
        _, X_test, y_test = _read(task.test)
        assert set(y_train) == {task.normal} and len(y_train) == task.n_train
        assert np.sum(y_test == task.normal) == task.n_test_normal > 0
        assert np.sum(y_test != task.normal) == task.n_test_anomalous > 0
        # no test row was trained on
        train_rows = {tuple(r) for r in X_train}
        assert not any(tuple(r) in train_rows for r in X_test)
    _, _, y = _read(built["iris_versicolor"].test)
    assert set(y) == {"setosa", "versicolor", "virginica"}


def test_vibration_windows_are_axis_major_int16_readings_with_every_fault(built) -> None:
    task = built["vibration"]
    header, X, y = _read(task.test)
    assert header[:2] == ["x0", "x1"] and header[suite.WINDOW] == "y0" and header[-2:] == ["z127", "label"]
    assert task.axes == 3 and X.shape[1] == 3 * suite.WINDOW
    assert np.all(X == np.round(X)) and X.min() >= -32768 and X.max() <= 32767
    assert {k: int(np.sum(y == k)) for k in suite.FAULTS} == dict.fromkeys(
        suite.FAULTS, suite.N_TEST_PER_FAULT
    )
    # gravity sits on z (the sensor is mounted upright), in 8192 LSB per g
    z_mean = X[:, 2 * suite.WINDOW :].mean(axis=1)
    assert np.all(np.abs(z_mean / suite.LSB_PER_G - 1) < 0.1)


def _band(X: np.ndarray, lo_hz: float, hi_hz: float) -> np.ndarray:
    """Vibration energy (g**2) of the radial y axis between lo_hz and hi_hz, per window."""
    y = X[:, suite.WINDOW : 2 * suite.WINDOW] / suite.LSB_PER_G
    spectrum = np.abs(np.fft.rfft(y - y.mean(axis=1, keepdims=True), axis=1)) ** 2
    hz = np.fft.rfftfreq(suite.WINDOW, 1 / suite.RATE_HZ)
    return spectrum[:, (hz >= lo_hz) & (hz <= hi_hz)].sum(axis=1)


def test_each_fault_shows_where_an_analyst_looks(built) -> None:
    _, X, y = _read(built["vibration"].test)
    normal = y == "normal"
    low = _band(X, 7, 35)  # the 1x line (15-30 rev/s)
    high = _band(X, 180, 420)  # the housing resonance a bearing defect rings
    mid = _band(X, 40, 100)  # 2x, 3x harmonics
    # a stalled rotor has no 1x line; an imbalanced one a stronger one
    assert np.median(low[y == "stall"]) < 0.05 * np.median(low[normal])
    assert np.median(low[y == "imbalance"]) > 3 * np.median(low[normal])
    assert np.median(high[y == "bearing"]) > 5 * np.median(high[normal])
    assert np.median(mid[y == "looseness"]) > 3 * np.median(mid[normal])
    # normal operation varies (speed, load): the 1x energy spans a wide range
    assert np.percentile(low[normal], 90) > 2 * np.percentile(low[normal], 10)


def test_train_and_test_windows_come_from_different_seeds() -> None:
    a = suite.vibration(3, ["normal"], suite.TRAIN_SEED)
    b = suite.vibration(3, ["normal"], suite.TEST_SEED)
    assert a.shape == b.shape == (3, 3 * suite.WINDOW)
    assert not np.array_equal(a, b)
    assert np.array_equal(a, suite.vibration(3, ["normal"], suite.TRAIN_SEED))  # and are reproducible


def test_an_unknown_set_is_refused(tmp_path) -> None:
    with pytest.raises(ValueError, match="unknown anomaly set nope"):
        suite.build(tmp_path, ["nope"])


def _results(integer: float, float_: float, board: int) -> dict:
    row = {
        "sklearn": {"isolation_forest": 0.9, "one_class_svm": 0.95, "lof": 0.93},
        "float": float_,
        "integer": integer,
        "integer_float_gap": abs(integer - float_),
    }
    return {
        "datasets": {"vibration": dict(row), "iris": dict(row), "vibration (stats)": {**row, "extra": True}},
        "board": {"vibration": {"rows": 10, "viper": board, "portable": 0}},
    }


def test_goals_compare_integer_with_the_best_detector_and_the_board() -> None:
    met = bench_anomaly.goals(_results(0.96, 0.961, 0))
    assert met["figures"]["best_sklearn"] == "one_class_svm"
    assert met["figures"]["integer_minus_best_sklearn_mean"] == pytest.approx(0.01)
    assert all(met["met"].values())
    missed = bench_anomaly.goals(_results(0.94, 0.955, 1))["met"]
    assert not missed["integer_mean_at_least_best_sklearn"]
    assert not missed["vibration_at_least_0.95"]
    assert not missed["integer_within_0.01_of_float"]
    assert not missed["board_bit_exact"]
