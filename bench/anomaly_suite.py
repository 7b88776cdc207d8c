"""The anomaly benchmark's data sets: each a fixed train CSV (normal rows only) and a test CSV (normal and
anomalous rows, column `label`), nothing downloaded.

- `vibration`: generated here. 3-axis accelerometer windows of a rotating machine (a motor driving a
  fan on a fixed mounting), axis-major like `edgenn record --window` writes them (x0..x127, y0..,
  z0..), int16 readings at 8192 LSB per g (+-4 g) sampled at 1 kHz, so `--axes 3 --features
  stats|spectral` applies. Normal operation runs at a varying speed (15-30 rev/s) and load, with the
  1x and 2x lines, the fan's blade pass, load-dependent broadband vibration and sensor noise. The
  anomalies, each at a random severity from subtle to plain: `imbalance` (the 1x amplitude up 1.6-4x,
  radial), `bearing` (a structural resonance at 180-420 Hz rung by an outer-race defect at ~3.6x the
  speed: a high-frequency line with sidebands), `looseness` (an impact once per revolution that rings
  for a few milliseconds, plus raised 2x and 3x harmonics), `stall` (the rotor stopped: no rotation
  lines, the motor's 100 Hz magnetic hum). Train and test come from different generator seeds.
- eight one-class tasks from labelled sets shipped inside packages (the training suite's loaders,
  bench/suite.py): train on the train rows of one class; the test file holds the held-out rows of
  every class, every class but the normal one labelled as an anomaly (its own name kept in the label).

`build(directory)` writes `<name>_train.csv` / `<name>_test.csv` and returns one `AnomalyTask` per set.
`python -m bench.anomaly_suite DIR` writes them and prints what it wrote.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bench.suite import LABEL, PACKAGED, _split, _write

NORMAL = "normal"
FAULTS = ("imbalance", "bearing", "looseness", "stall")

# --- the machine -------------------------------------------------------------------------------------
WINDOW = 128  # samples per axis: 128 ms at 1 kHz
RATE_HZ = 1000.0
LSB_PER_G = 8192  # a +-4 g accelerometer (ADXL345 / MPU6050 class), int16 readings
AXES = ("x", "y", "z")  # x, y radial (horizontal, vertical); z axial
SPEED_HZ = (15.0, 30.0)  # 900 .. 1800 rpm: a variable-speed drive
BLADES = 6  # the fan's blade-pass line at 6x
MAINS_HZ = 50.0
BEARING_ORDER = (3.3, 3.9)  # outer-race defect frequency / shaft speed (BPFO-like)
RESONANCE_HZ = (180.0, 420.0)  # the housing resonance a bearing defect rings
SENSOR_NOISE_G = 0.004
# How the sensor sits on the machine: tilted from vertical by a fixed small angle, as glued on once.
MOUNT_TILT = np.radians([4.0, -7.0])
TRAIN_SEED, TEST_SEED = 1701, 4242
N_TRAIN = 400  # normal windows
N_TEST_NORMAL = 200
N_TEST_PER_FAULT = 50


def columns(window: int = WINDOW) -> list[str]:
    return [f"{a}{t}" for a in AXES for t in range(window)]


def _gravity() -> np.ndarray:
    ax, ay = MOUNT_TILT
    g = np.array([np.sin(ay), -np.sin(ax) * np.cos(ay), np.cos(ax) * np.cos(ay)])
    return g / np.linalg.norm(g)


def _line(t: np.ndarray, hz: float, amp: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A sine at hz on every axis, amplitudes amp (3,), one random phase per axis: (3, n)."""
    phase = rng.uniform(0, 2 * np.pi, size=3)
    return amp[:, None] * np.sin(2 * np.pi * hz * t[None, :] + phase[:, None])


def machine_window(state: str, rng: np.random.Generator, window: int = WINDOW) -> np.ndarray:
    """One (3, window) accelerometer window in g, gravity included, of the machine in `state`."""
    t = (np.arange(window) + rng.uniform(0, 1000)) / RATE_HZ  # a window cut anywhere from the stream
    speed = rng.uniform(*SPEED_HZ)
    load = rng.uniform(0.0, 1.0)
    severity = rng.uniform(0.0, 1.0)
    radial = np.array([1.0, 0.8, 0.25])  # x, y radial; z axial
    one_x = (0.05 + 0.07 * load) * rng.uniform(0.85, 1.15)
    a = np.zeros((3, window))
    if state != "stall":
        ratio_1x = 1.6 + 2.4 * severity if state == "imbalance" else 1.0
        a += _line(t, speed, one_x * ratio_1x * radial, rng)
        two_x = one_x * rng.uniform(0.15, 0.35) * (1 + 3 * (0.4 + 0.6 * severity) * (state == "looseness"))
        a += _line(t, 2 * speed, two_x * np.array([0.7, 1.0, 0.6]), rng)
        a += _line(t, BLADES * speed, (0.01 + 0.02 * load) * np.array([0.5, 0.5, 1.0]), rng)
        broadband = 0.008 + 0.012 * load
    else:
        a += _line(t, 2 * MAINS_HZ, (0.01 + 0.03 * severity) * np.array([1.0, 1.0, 0.4]), rng)
        broadband = 0.004
    if state == "looseness":
        three_x = one_x * (0.3 + 0.7 * severity)
        a += _line(t, 3 * speed, three_x * np.array([0.6, 1.0, 0.4]), rng)
        # an impact once per revolution, ringing at ~250 Hz and dying out in ~4 ms
        peak = 0.15 + 0.6 * severity
        first = rng.uniform(0, 1 / speed)
        ring_hz, direction = rng.uniform(220, 300), np.array([0.4, 1.0, 0.3])
        for start in np.arange(first, t[-1] - t[0] + 1 / speed, 1 / speed) + t[0]:
            dt = t - start
            ring = np.exp(-np.clip(dt, 0, None) / 0.004) * np.sin(2 * np.pi * ring_hz * dt)
            burst = np.where(dt >= 0, ring, 0.0)
            a += peak * direction[:, None] * burst[None, :]
    if state == "bearing":
        defect_hz = speed * rng.uniform(*BEARING_ORDER)
        carrier_hz = rng.uniform(*RESONANCE_HZ)
        depth = 0.02 + 0.08 * severity
        envelope = 0.5 * (1 + np.sin(2 * np.pi * defect_hz * t + rng.uniform(0, 2 * np.pi)))
        a += _line(t, carrier_hz, depth * np.array([0.7, 1.0, 0.5]), rng) * envelope[None, :]
    # broadband machine vibration (low-passed white noise: a 3-tap moving average) and sensor noise
    noise = rng.normal(0, broadband, size=(3, window + 2))
    a += (noise[:, :-2] + noise[:, 1:-1] + noise[:, 2:]) / np.sqrt(3)
    a += _gravity()[:, None] + rng.normal(0, SENSOR_NOISE_G, size=a.shape)
    return a


def vibration(n: int, states: list[str], seed: int, window: int = WINDOW) -> np.ndarray:
    """n windows per state in `states`, interleaved, as int16 readings, axis-major (len, 3 * window)."""
    rng = np.random.default_rng(seed)
    rows = []
    for _ in range(n):
        for state in states:
            raw = np.round(machine_window(state, rng, window) * LSB_PER_G)
            rows.append(np.clip(raw, -32768, 32767).astype(np.int64).reshape(-1))
    return np.array(rows)


# --- the suite ---------------------------------------------------------------------------------------


@dataclass
class AnomalyTask:
    name: str
    source: str
    normal: str  # the label value of normal rows in the test file
    train: Path  # normal rows only (with the label column, all `normal`)
    test: Path
    n_train: int
    n_test_normal: int
    n_test_anomalous: int
    n_features: int
    axes: int = 0  # > 0: raw sensor windows for the front end (`--axes N`)


# name -> (packaged set of bench/suite.py, the class that is normal). Chosen before measuring any
# detector: a normal class that is neither trivially separable (iris setosa, penguins Gentoo) nor the only
# large class; for statsmodels' two survey sets, the most common class.
ONE_CLASS: dict[str, tuple[str, str]] = {
    "iris_versicolor": ("iris", "versicolor"),
    "wine_class_1": ("wine", "class_1"),
    "breast_cancer_benign": ("breast_cancer", "benign"),
    "digits_0": ("digits", "0"),
    "penguins_adelie": ("penguins", "Adelie"),
    "cars_usa": ("cars", "USA"),
    # statsmodels' survey sets: the most common class is normal
    "anes96_clinton": ("anes96", "clinton"),
    "modechoice_train": ("modechoice", "train"),
}
NAMES = ["vibration", *ONE_CLASS]


def _vibration_task(directory: Path) -> AnomalyTask:
    cols = columns()
    X_train = vibration(N_TRAIN, [NORMAL], TRAIN_SEED)
    normal = vibration(N_TEST_NORMAL, [NORMAL], TEST_SEED)
    faults = vibration(N_TEST_PER_FAULT, list(FAULTS), TEST_SEED + 1)
    y_faults = [FAULTS[i % len(FAULTS)] for i in range(len(faults))]
    X_test = np.concatenate([normal, faults])
    y_test = [NORMAL] * len(normal) + y_faults
    train, test = directory / "vibration_train.csv", directory / "vibration_test.csv"
    _write(train, X_train, [NORMAL] * len(X_train), cols)
    _write(test, X_test, y_test, cols)
    source = f"generated: 3-axis machine vibration, {WINDOW} samples at {RATE_HZ:g} Hz, faults " + ", ".join(
        FAULTS
    )
    return AnomalyTask(
        "vibration", source, NORMAL, train, test, len(X_train), len(normal), len(faults), len(cols), len(AXES)
    )


def _one_class_task(name: str, directory: Path) -> AnomalyTask:
    packaged, normal = ONE_CLASS[name]
    source, load, test_fraction = PACKAGED[packaged]
    X, labels, features = load()
    y = np.array(labels)
    if normal not in set(labels):
        raise ValueError(f"{name}: no class {normal!r} in {packaged} ({sorted(set(labels))})")
    train_rows, test_rows = _split(y, test_fraction)
    train_rows = train_rows[y[train_rows] == normal]  # never fit on an anomaly
    train, test = directory / f"{name}_train.csv", directory / f"{name}_test.csv"
    _write(train, X[train_rows], list(y[train_rows]), features)
    _write(test, X[test_rows], list(y[test_rows]), features)
    n_normal = int(np.sum(y[test_rows] == normal))
    return AnomalyTask(
        name,
        f"{source}: {normal} is normal",
        normal,
        train,
        test,
        len(train_rows),
        n_normal,
        len(test_rows) - n_normal,
        X.shape[1],
    )


def build(directory: Path, names: list[str] | None = None) -> list[AnomalyTask]:
    directory.mkdir(parents=True, exist_ok=True)
    unknown = sorted(set(names or []) - set(NAMES))
    if unknown:
        raise ValueError(f"unknown anomaly set {', '.join(unknown)}; choose from {', '.join(NAMES)}")
    return [
        _vibration_task(directory) if name == "vibration" else _one_class_task(name, directory)
        for name in names or NAMES
    ]


def test_labels_of(task: AnomalyTask) -> tuple[np.ndarray, np.ndarray]:
    """(is_anomaly bool (n,), label strings (n,)) of the test file's rows."""
    import csv

    with open(task.test, newline="") as fh:
        labels = np.array([row[LABEL] for row in csv.DictReader(fh)])
    return labels != task.normal, labels


if __name__ == "__main__":
    out = Path(sys.argv[1]) if len(sys.argv) > 1 else Path("anomaly_data")
    for task in build(out, sys.argv[2:] or None):
        print(task)
