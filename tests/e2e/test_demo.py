"""`make demo` runs `python -m edgenn.demo --out out`: it must finish, succeed, and show each step.

CI also runs `make demo` itself on a fresh clone; this is the quick in-suite check.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

from edgenn.device.deploy import firmware_dir

pytestmark = pytest.mark.skipif(
    not (firmware_dir() / "edgenn.py").exists(), reason="device runtime firmware/edgenn.py not there yet"
)


def test_demo_runs_end_to_end(tmp_path):
    out = tmp_path / "out"
    result = subprocess.run(
        [sys.executable, "-m", "edgenn.demo", "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    for heading in (
        "[1/6] Train",
        "[2/6] Quantize",
        "[3/6] Start a virtual board",
        "[4/6] Deploy",
        "[5/6] eval-device",
        "[6/6] A few predictions",
    ):
        assert heading in result.stdout
    assert "agreement  100.00%" in result.stdout
    assert "the training rows: this checks the board, not new data" in result.stdout  # no held-out claim
    assert result.stdout.count('"label": ') == 3  # three predictions shown as the board's JSON replies
    assert (out / "iris.enn").is_file() and (out / "iris.npz").is_file()
    assert (out / "vboard" / "model.enn").read_bytes() == (out / "iris.enn").read_bytes()
