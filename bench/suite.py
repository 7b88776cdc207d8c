"""The training benchmark's data sets: each a fixed train CSV and test CSV, nothing downloaded.

Package sets come from data files that ship inside registry packages (scikit-learn's bundled copies,
statsmodels' datasets, palmerpenguins, vega_datasets' local files), split once with a fixed seed.
Sensor sets are generated here: accelerometer windows seen through a randomly mounted sensor (each
window gets its own random rotation), with amplitude, tempo and phase jitter and noise, so the model
must learn the movement and not the mounting. Train and test rows come from different generator seeds.

`build(directory)` writes `<name>_train.csv` / `<name>_test.csv` and returns one `Task` per set.
"""

from __future__ import annotations

import csv
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

LABEL = "label"
SPLIT_SEED = 0


@dataclass
class Task:
    name: str
    source: str
    train: Path
    test: Path
    n_train: int
    n_test: int
    n_features: int
    n_classes: int


def _write(path: Path, X: np.ndarray, y: list[str], names: list[str]) -> None:
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow([*names, LABEL])
        for row, label in zip(X, y):
            w.writerow([f"{v:.6g}" for v in row] + [label])


def _split(y: np.ndarray, test_fraction: float) -> tuple[np.ndarray, np.ndarray]:
    """Stratified, seeded: each class shuffled and cut in the same proportion."""
    rng = np.random.default_rng(SPLIT_SEED)
    train, test = [], []
    for label in np.unique(y):
        rows = np.flatnonzero(y == label)
        rng.shuffle(rows)
        n_test = int(round(test_fraction * len(rows)))
        test.append(rows[:n_test])
        train.append(rows[n_test:])
    return np.sort(np.concatenate(train)), np.sort(np.concatenate(test))


# ---------------------------------------------------------------------------------------------------
# Sets shipped inside packages: (X, labels as text, feature names)


def _sklearn(loader: str):
    def load():
        import sklearn.datasets

        d = getattr(sklearn.datasets, loader)()
        names = [str(n).replace(" ", "_") for n in getattr(d, "feature_names", [])] or [
            f"f{i}" for i in range(d.data.shape[1])
        ]
        if len(names) != d.data.shape[1]:
            names = [f"f{i}" for i in range(d.data.shape[1])]
        return d.data.astype(float), [str(d.target_names[t]) for t in d.target], names

    return load


def _penguins():
    from palmerpenguins import load_penguins

    df = load_penguins().dropna()
    names = ["bill_length_mm", "bill_depth_mm", "flipper_length_mm", "body_mass_g"]
    X = np.column_stack([df[names].to_numpy(float), (df["sex"] == "male").to_numpy(float)])
    return X, [str(s) for s in df["species"]], [*names, "male"]


def _cars():
    from vega_datasets import local_data

    df = local_data.cars().dropna()
    names = ["Miles_per_Gallon", "Cylinders", "Displacement", "Horsepower", "Weight_in_lbs", "Acceleration"]
    X = np.column_stack([df[names].to_numpy(float), df["Year"].dt.year.to_numpy(float)])
    return X, [str(o) for o in df["Origin"]], [*names, "Year"]


def _modechoice():
    """Travel mode chosen by 210 travellers (air, train, bus, car) from the times and costs of all four."""
    import statsmodels.api as sm

    df = sm.datasets.modechoice.load_pandas().data
    modes = {1: "air", 2: "train", 3: "bus", 4: "car"}
    per = ["ttme", "invc", "invt", "gc"]
    rows, labels = [], []
    for _, g in df.groupby("individual"):
        g = g.sort_values("mode")
        rows.append([*g[per].to_numpy(float).ravel(), g["hinc"].iloc[0], g["psize"].iloc[0]])
        labels.append(modes[int(g.loc[g["choice"] == 1, "mode"].iloc[0])])
    names = [f"{p}_{m}" for m in modes.values() for p in per] + ["hinc", "psize"]
    return np.array(rows), labels, names


def _anes96():
    """1996 US election survey: Clinton (0) or Dole (1) from party, ideology, age, education, income."""
    import statsmodels.api as sm

    df = sm.datasets.anes96.load_pandas().data
    names = [c for c in df.columns if c not in ("vote", "logpopul")]
    return df[names].to_numpy(float), ["dole" if v else "clinton" for v in df["vote"]], names


# ---------------------------------------------------------------------------------------------------
# Generated sensor sets


def _rotation(rng: np.random.Generator, max_degrees: float) -> np.ndarray:
    """A random mounting: rotation about a random axis by up to max_degrees (Rodrigues)."""
    axis = rng.normal(size=3)
    axis /= np.linalg.norm(axis)
    angle = np.radians(rng.uniform(0, max_degrees))
    k = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
    return np.eye(3) + np.sin(angle) * k + (1 - np.cos(angle)) * (k @ k)


GESTURES = ("still", "shake", "circle", "tap", "wave")


def _gesture_window(kind: str, rng: np.random.Generator, n: int = 32) -> np.ndarray:
    """(n, 3) accelerometer window in g: gravity plus the movement, seen through a random mounting."""
    t = np.arange(n) / n
    amp, tempo, phase = rng.uniform(0.6, 1.4), rng.uniform(0.8, 1.25), rng.uniform(0, 2 * np.pi)
    a = np.zeros((n, 3))
    if kind == "shake":
        a[:, 0] = amp * np.sin(2 * np.pi * 4 * tempo * t + phase)
    elif kind == "circle":
        a[:, 0] = amp * 0.7 * np.cos(2 * np.pi * 2 * tempo * t + phase)
        a[:, 1] = amp * 0.7 * np.sin(2 * np.pi * 2 * tempo * t + phase)
    elif kind == "tap":
        at = rng.integers(4, n - 4)
        a[at - 1 : at + 2, 2] = amp * np.array([0.8, 2.0, -0.8])
    elif kind == "wave":
        a[:, 1] = amp * 0.8 * np.sin(2 * np.pi * 1 * tempo * t + phase)
        a[:, 2] = amp * 0.3 * np.cos(2 * np.pi * 2 * tempo * t + phase)
    a[:, 2] += 1.0  # gravity
    a = a @ _rotation(rng, 60).T
    return a + rng.normal(0, 0.15, size=a.shape)


def _gestures(rng: np.random.Generator, per_class: int):
    X, y = [], []
    for _ in range(per_class):
        for kind in GESTURES:
            X.append(_gesture_window(kind, rng).T.ravel())  # x0..x31, y0..y31, z0..z31
            y.append(kind)
    names = [f"{axis}{i}" for axis in "xyz" for i in range(32)]
    return np.array(X), y, names


ACTIVITIES = {"still": (0.0, 0.0), "walk": (1.9, 0.35), "run": (2.8, 0.9), "stairs": (1.5, 0.45)}


def _window_features(a: np.ndarray) -> np.ndarray:
    """What a board computes from a window: per axis mean, std, min, max; magnitude mean and std;
    the magnitude's zero crossings (about its mean)."""
    mag = np.linalg.norm(a, axis=1)
    centred = mag - mag.mean()
    crossings = np.sum(np.signbit(centred[1:]) != np.signbit(centred[:-1]))
    return np.concatenate([a.mean(0), a.std(0), a.min(0), a.max(0), [mag.mean(), mag.std(), crossings]])


def _activity(rng: np.random.Generator, per_class: int):
    X, y = [], []
    t = np.arange(100) / 50.0  # 2 s at 50 Hz
    for _ in range(per_class):
        for kind, (hz, amp) in ACTIVITIES.items():
            hz, amp = hz * rng.uniform(0.85, 1.15), amp * rng.uniform(0.7, 1.3)
            phase = rng.uniform(0, 2 * np.pi)
            a = np.zeros((100, 3))
            a[:, 2] = 1.0 + amp * np.sin(2 * np.pi * hz * t + phase) + 0.3 * amp * np.sin(4 * np.pi * hz * t)
            a[:, 0] = 0.4 * amp * np.sin(2 * np.pi * hz / 2 * t + phase)
            if kind == "stairs":
                a[:, 1] = 0.35 * amp * np.sin(2 * np.pi * hz * t + phase + 1.0) + 0.15
            a = a @ _rotation(rng, 90).T + rng.normal(0, 0.08, size=a.shape)
            X.append(_window_features(a))
            y.append(kind)
    stats = [f"{s}_{axis}" for s in ("mean", "std", "min", "max") for axis in "xyz"]
    return np.array(X), y, [*stats, "mag_mean", "mag_std", "crossings"]


MACHINE_STATES = ("off", "normal", "imbalance", "misalignment", "bearing")


def _vibration(rng: np.random.Generator, per_class: int):
    """Log energy in 16 frequency bands of a 256-sample vibration signal at 1 kHz, random sensor gain."""
    n, fs = 256, 1000.0
    t = np.arange(n) / fs
    X, y = [], []
    for _ in range(per_class):
        for state in MACHINE_STATES:
            rpm_hz = 25.0 * rng.uniform(0.85, 1.15)
            s = rng.normal(0, 0.05, n)
            if state != "off":
                s += 0.5 * np.sin(2 * np.pi * rpm_hz * t + rng.uniform(0, 6.3))
            if state == "imbalance":
                s += rng.uniform(0.6, 1.2) * np.sin(2 * np.pi * rpm_hz * t + rng.uniform(0, 6.3))
            if state == "misalignment":
                s += rng.uniform(0.3, 0.7) * np.sin(2 * np.pi * 2 * rpm_hz * t + rng.uniform(0, 6.3))
            if state == "bearing":
                f = rng.uniform(280, 340)
                s += rng.uniform(0.1, 0.3) * np.sin(2 * np.pi * f * t) * (1 + np.sin(2 * np.pi * rpm_hz * t))
            s *= rng.uniform(0.5, 2.0)  # how the sensor was mounted
            power = np.abs(np.fft.rfft(s * np.hanning(n))) ** 2
            bands = np.array_split(power[1:], 16)
            X.append(np.log10(np.array([b.sum() for b in bands]) + 1e-6))
            y.append(state)
    return np.array(X), y, [f"band{i}" for i in range(16)]


Loader = Callable[[], tuple[np.ndarray, list[str], list[str]]]
Generator = Callable[[np.random.Generator, int], tuple[np.ndarray, list[str], list[str]]]

# name -> (source, loader, test fraction) for packaged sets
PACKAGED: dict[str, tuple[str, Loader, float]] = {
    "iris": ("scikit-learn load_iris", _sklearn("load_iris"), 0.3),
    "wine": ("scikit-learn load_wine", _sklearn("load_wine"), 0.3),
    "breast_cancer": ("scikit-learn load_breast_cancer", _sklearn("load_breast_cancer"), 0.3),
    "digits": ("scikit-learn load_digits", _sklearn("load_digits"), 0.3),
    "penguins": ("palmerpenguins load_penguins", _penguins, 0.3),
    "cars": ("vega_datasets local cars (Origin)", _cars, 0.3),
    "modechoice": ("statsmodels modechoice", _modechoice, 0.3),
    "anes96": ("statsmodels anes96 (vote)", _anes96, 0.3),
}
# name -> (description, generator, train rows per class, test rows per class)
GENERATED: dict[str, tuple[str, Generator, int, int]] = {
    "gestures": ("generated: 32x3 accelerometer window, random mounting", _gestures, 30, 40),
    "activity": ("generated: window statistics, random mounting", _activity, 25, 50),
    "vibration": ("generated: 16 log band energies, random gain", _vibration, 30, 40),
}


def build(directory: Path, names: list[str] | None = None) -> list[Task]:
    directory.mkdir(parents=True, exist_ok=True)
    tasks = []
    for name in names or [*PACKAGED, *GENERATED]:
        if name in PACKAGED:
            source, load, test_fraction = PACKAGED[name]
            X, labels, features = load()
            y = np.array(labels)
            train_rows, test_rows = _split(y, test_fraction)
            parts = ((X[train_rows], y[train_rows]), (X[test_rows], y[test_rows]))
        else:
            source, generate, n_train, n_test = GENERATED[name]
            seed = sum(map(ord, name))
            train_part = generate(np.random.default_rng(seed), n_train)
            X_test, y_test, features = generate(np.random.default_rng(seed + 1), n_test)
            parts = ((train_part[0], np.array(train_part[1])), (X_test, np.array(y_test)))
        paths = (directory / f"{name}_train.csv", directory / f"{name}_test.csv")
        for path, (X_part, y_part) in zip(paths, parts):
            _write(path, X_part, list(y_part), features)
        tasks.append(
            Task(
                name,
                source,
                *paths,
                len(parts[0][1]),
                len(parts[1][1]),
                parts[0][0].shape[1],
                len(set(parts[0][1])),
            )
        )
    return tasks


if __name__ == "__main__":
    import tempfile

    for task in build(Path(tempfile.mkdtemp())):
        print(task)
