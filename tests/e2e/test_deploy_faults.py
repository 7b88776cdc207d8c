"""Issue 19 on a virtual board: deploy removes only its own .part files (item 4), rollback names models by
name and SHA-256 prefix (item 8), a late Ctrl-C during deploy says what the board serves (item 11)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest
from vboard_helpers import edgenn

from edgenn import modelfile, zoo
from edgenn.device import deploy as deploy_mod
from edgenn.device import swap
from edgenn.device.client import BoardClient
from edgenn.device.swap import MODEL_BACKUP, MODEL_PART

pytestmark = pytest.mark.slow


def _model(seed: int) -> modelfile.QuantModel:
    """Models that differ in their weights but are all named 'twin'."""
    return zoo.random_model(np.random.default_rng(seed), 8, [12], ["relu"], 3, "classify", name="twin")


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()[:12]


def _serves(port: str) -> str:
    """The sha256 prefix of the model the board's server reports."""
    with BoardClient(port) as client:
        info = client.connect()
        assert "error" not in info and "warning" not in info, info
    with BoardClient(port) as client:
        data = client.read_model_file()
    return hashlib.sha256(data).hexdigest()[:12]


@pytest.fixture(scope="module")
def board(module_vboard):
    return module_vboard


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> list[Path]:
    d = tmp_path_factory.mktemp("twins")
    paths = []
    for seed in (1, 2, 3):
        path = d / f"twin{seed}.enn"
        modelfile.save(_model(seed), path)
        paths.append(path)
    return paths


def test_rollback_tells_two_models_with_the_same_name_apart(board, models) -> None:
    first, second = models[0], models[1]
    assert edgenn("deploy", str(first), "--port", board.port).returncode == 0
    (board.flash_dir / MODEL_BACKUP).unlink(missing_ok=True)
    result = edgenn("rollback", "--port", board.port)
    assert result.returncode == 2
    assert result.stderr.strip() == (
        f"edgenn rollback: error: the board on {board.port} has no previous model ({MODEL_BACKUP}): nothing "
        f"to roll back to; it has only 'twin' (sha256 {_sha(first)}) (deploying another model keeps this one)"
    )
    result = edgenn("deploy", str(second), "--port", board.port)
    assert result.returncode == 0, result.stderr
    assert f"the board serves 'twin' (sha256 {_sha(second)}), as the golden model" in result.stdout
    result = edgenn("rollback", "--port", board.port)
    assert result.returncode == 0, result.stderr
    assert (
        f"rolled back: the board serves 'twin' (sha256 {_sha(first)}) again; 'twin' (sha256 {_sha(second)}) "
        f"is kept as {MODEL_BACKUP}"
    ) in result.stdout
    assert _serves(board.port) == _sha(first)


def test_deploy_removes_only_its_own_part_files(board, models) -> None:
    # a user's .part file is not ours; the model.enn.part of a killed deploy is
    (board.flash_dir / "sensor_log.part").write_text("1,2,3\n")
    (board.flash_dir / MODEL_PART).write_bytes(b"half a model")
    result = edgenn("deploy", str(models[1]), "--port", board.port)
    assert result.returncode == 0, result.stderr
    assert f"{MODEL_PART}" in result.stdout and "sensor_log.part" not in result.stdout
    assert (board.flash_dir / "sensor_log.part").read_text() == "1,2,3\n"
    assert not (board.flash_dir / MODEL_PART).exists()


def _interrupt_when(text: str):
    def say(line: str) -> None:
        if text in line:
            raise KeyboardInterrupt

    return say


def test_a_late_ctrl_c_says_what_the_board_serves(board, models, monkeypatch) -> None:
    old, new = models[0], models[2]
    assert edgenn("deploy", str(old), "--port", board.port).returncode == 0
    # Ctrl-C once the board has checked the new model, before the swap: the old model serves
    with pytest.raises(KeyboardInterrupt) as caught:
        deploy_mod.deploy(new, board.port, say=_interrupt_when("answers as the golden model"))
    assert str(caught.value) == (
        f"interrupted while the board checked the new model (copied as {MODEL_PART}, not in service): "
        f"the board still serves its previous model.enn (sha256 {_sha(old)}); run deploy again"
    )
    assert _serves(board.port) == _sha(old)

    # Ctrl-C after the swap, before the health check: the new model serves
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(swap, "health_check", interrupted)
    with pytest.raises(KeyboardInterrupt) as caught:
        deploy_mod.deploy(new, board.port, say=lambda line: None)
    assert str(caught.value).startswith(
        f"interrupted after the swap: the board serves the new model 'twin' (sha256 {_sha(new)}), not yet "
        "health-checked"
    )
    monkeypatch.undo()
    assert _serves(board.port) == _sha(new)


def test_a_main_py_that_turns_ctrl_c_off_is_named(start_vboard, tmp_path, models) -> None:
    """Item 5: a board whose main.py calls micropython.kbd_intr(-1) cannot be reached; the message says
    why instead of suggesting that MicroPython is not flashed."""
    flash = tmp_path / "flash"
    flash.mkdir()
    (flash / "main.py").write_text(
        "import micropython, sys\nmicropython.kbd_intr(-1)\nwhile True:\n"
        "    sys.stdout.write('got %r\\n' % sys.stdin.read(1))\n"
    )
    vb = start_vboard(flash)
    result = edgenn("deploy", str(models[0]), "--port", vb.port)
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "micropython.kbd_intr(-1)" in lines[0], result.stderr
    assert "does not stop for Ctrl-C" in lines[0] and "flashed" not in lines[0]
