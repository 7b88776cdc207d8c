"""Power loss at any moment of a deploy (issue 9): the virtual board is killed (SIGKILL: supervisor and
interpreter die at once, the flash directory keeps what was written) at random moments of a deploy and
powered on again on the same flash. It serves the old model or the new one, never neither, and the
next deploy recovers."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from vboard_helpers import edgenn, launch_vboard, runtime_or_skip

from edgenn import modelfile, zoo
from edgenn.device.client import BoardClient
from edgenn.device.swap import probe_codes

MOMENTS = 8


def _serving(port: str, candidates: dict[str, modelfile.QuantModel]) -> str:
    """The name of the model the board serves, checked against golden; fails when it serves none."""
    with BoardClient(port) as client:
        info = client.connect()
        name = info.get("model")
        assert name in candidates and "error" not in info, info
        codes, want = probe_codes(candidates[name], seed=9)
        assert client.request("q " + ",".join(map(str, codes))).get("q") == want
        return name


def _deploy(path: Path, port: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "edgenn.cli", "deploy", str(path), "--port", port],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _first_line(process: subprocess.Popen) -> float:
    """Waits for the deploy's first line, then for its end; returns when the first line came."""
    process.stdout.readline()
    started = time.monotonic()
    _out, err = process.communicate(timeout=60)
    assert process.returncode == 0, err
    return started


@pytest.mark.slow
def test_power_loss_at_random_moments_of_a_deploy(tmp_path: Path) -> None:
    runtime_or_skip()
    rng = np.random.default_rng(2026)
    models = {}
    paths = {}
    for i, hidden in enumerate(([48], [128, 32])):  # different sizes: the upload takes a while
        model = zoo.random_model(np.random.default_rng(i), 96, hidden, ["relu"] * len(hidden), 4, "classify")
        model.name = f"model-{i}"
        models[model.name] = model
        paths[model.name] = tmp_path / f"{model.name}.enn"
        modelfile.save(model, paths[model.name])
    flash = tmp_path / "flash"
    board = launch_vboard(flash)
    try:
        assert edgenn("deploy", str(paths["model-0"]), "--port", board.port).returncode == 0
        # How long a model change talks to the board, from its first line ("board: ...") to its end:
        # the cuts fall anywhere in that span (and a little beyond, after the last word).
        started = _first_line(_deploy(paths["model-1"], board.port))
        span = time.monotonic() - started
        serving = "model-1"
        seen = set()
        moment = 0
        # at least MOMENTS cuts, and more (up to twice as many) until some landed before the swap and
        # some after it
        while moment < MOMENTS or (len(seen) < 2 and moment < 2 * MOMENTS):
            moment += 1
            new = "model-1" if serving == "model-0" else "model-0"
            cut = float(rng.uniform(0.0, span * 1.1))
            deploy = _deploy(paths[new], board.port)
            deploy.stdout.readline()  # "board: ...": it is talking to the board now
            time.sleep(cut)
            board.process.kill()  # power off: no clean-up of any kind
            board.process.wait()
            _out, err = deploy.communicate(timeout=60)
            assert "Traceback" not in err, err
            board = launch_vboard(flash)  # power on, same flash
            now = _serving(board.port, models)
            seen.add(now == new)
            assert now in (serving, new), f"moment {moment} ({cut:.2f} s): serves {now}"
            # the next deploy recovers: it finishes the job and clears what the cut left behind
            again = edgenn("deploy", str(paths[new]), "--port", board.port)
            assert again.returncode == 0, again.stderr
            assert _serving(board.port, models) == new
            assert not any(p.name.endswith(".part") for p in flash.iterdir())
            serving = new
        assert seen == {True, False}  # cuts landed before the swap (old model kept) and after it
    finally:
        board.stop()
