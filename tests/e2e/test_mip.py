"""Installing the runtime the way MicroPython users do (issue 9, item 9): `mpremote mip install
firmware/package.json` with the real mpremote against the virtual board, then a model loads and runs.
And firmware/manifest.py (freezing) lists exactly package.json's modules."""

from __future__ import annotations

import ast
import json
import os
import shutil
from pathlib import Path

import numpy as np
from vboard_helpers import mpremote, runtime_or_skip

from edgenn import golden, modelfile, zoo

FIRMWARE = Path(__file__).parents[2] / "firmware"


def _package_modules() -> list[str]:
    urls = json.loads((FIRMWARE / "package.json").read_text())["urls"]
    assert all(not src.startswith(("http:", "https:", "github:", "/")) for _dest, src in urls)  # relative
    return [dest for dest, _src in urls if dest.endswith(".py")]


def test_mip_install_from_a_checkout_then_load_and_run_a_model(
    start_vboard, tmp_path: Path, monkeypatch
) -> None:
    """mip installs source, which the board compiles at import: edgenn.py (~40 KB) needs ~150 KB of heap
    for that, more than an ESP32 without PSRAM has (firmware/README.md), so this board is an ESP32-S3
    with PSRAM: a profile made for the test (the esp32s3 one with a 1 MB heap)."""
    runtime_or_skip()
    boards = tmp_path / "boards"
    shutil.copytree(FIRMWARE.parent / "boards", boards)
    psram = json.loads((boards / "esp32s3.json").read_text())
    psram.update(name="esp32s3_psram", heap_bytes=1024 * 1024, largest_block_bytes=1024 * 1024)
    (boards / "esp32s3_psram.json").write_text(json.dumps(psram))
    monkeypatch.setenv("EDGENN_BOARDS_DIR", str(boards))
    vboard = start_vboard(tmp_path / "flash", board="esp32s3_psram")
    result = mpremote(vboard.port, "mip", "install", str(FIRMWARE / "package.json"), timeout=60)
    modules = _package_modules()
    for name in modules:
        assert f"Installing: /lib/{name}" in result.stdout, result.stdout
        assert (vboard.flash_dir / "lib" / name).read_bytes() == (FIRMWARE / name).read_bytes()
    model = zoo.build_zoo(seed=4)["relu_3"]
    path = tmp_path / "m.enn"
    modelfile.save(model, path)
    mpremote(vboard.port, "cp", str(path), ":model.enn")
    codes = np.random.default_rng(1).integers(0, 256, (3, model.n_inputs), dtype=np.uint8)
    code = "import edgenn\nn = edgenn.load('model.enn')\nprint(edgenn.__file__, n.kernel)\n" + "".join(
        f"print(list(n.forward_q(bytes({row.tolist()!r}))))\n" for row in codes
    )
    lines = mpremote(vboard.port, "exec", code).stdout.strip().splitlines()
    assert lines[0].startswith("/lib/edgenn.py")  # the mip-installed runtime, not a deployed copy
    assert [ast.literal_eval(line) for line in lines[1:]] == golden.forward_q(model, codes).tolist()


def test_manifest_freezes_exactly_the_package_modules(monkeypatch) -> None:
    """Run firmware/manifest.py as MicroPython's build does (cwd = its directory, include/module given)."""
    included, frozen = [], []
    monkeypatch.chdir(FIRMWARE)
    source = (FIRMWARE / "manifest.py").read_text()
    exec(compile(source, "manifest.py", "exec"), {"include": included.append, "module": frozen.append})  # noqa: S102
    assert included == ["$(PORT_DIR)/boards/manifest.py"]
    assert frozen == _package_modules() and all(os.path.isfile(name) for name in frozen)
