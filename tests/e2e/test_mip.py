"""Installing the runtime the way MicroPython users do: `mpremote mip install` of the prebuilt `.mpy`
package that `make dist` builds for the board's architecture and .mpy ABI (issue 18, part 4), served over
HTTP from 127.0.0.1, into a virtual board with the plain esp32 profile (no PSRAM: a source install would
need ~150 KB of heap to compile edgenn.py at import); then a model loads and predicts.
And firmware/manifest.py (freezing) lists exactly package.json's modules."""

from __future__ import annotations

import ast
import functools
import json
import os
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest
from vboard_helpers import mpremote, runtime_or_skip

from edgenn import dist, golden, modelfile, zoo
from edgenn.device import mpy as mpy_cross
from edgenn.machinecode import mpy

FIRMWARE = Path(__file__).parents[2] / "firmware"
NATIVE = ("edgenn_viper.mpy", "edgenn_fe_viper.mpy", "edgenn_asm.mpy")  # the modules with machine code


def _package_modules() -> list[str]:
    urls = json.loads((FIRMWARE / "package.json").read_text())["urls"]
    assert all(not src.startswith(("http:", "https:", "github:", "/")) for _dest, src in urls)  # relative
    return [dest for dest, _src in urls if dest.endswith(".py")]


@pytest.fixture(scope="module")
def mip_dir(tmp_path_factory) -> Path:
    """`make dist` (edgenn.dist.build) into a fresh directory."""
    runtime_or_skip()
    if not mpy_cross.available_compilers():
        pytest.skip("mpy-cross is not installed")
    out = tmp_path_factory.mktemp("dist") / "mip"
    dist.build(out)
    return out


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:  # the test output is mpremote's
        pass


@pytest.fixture
def http_root(mip_dir: Path, monkeypatch):
    """dist/mip/ served by http.server on 127.0.0.1 (a thread); yields its base URL."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_QuietHandler, directory=str(mip_dir)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    for var in ("no_proxy", "NO_PROXY"):  # mpremote's urllib must not send 127.0.0.1 to a proxy
        monkeypatch.setenv(var, "127.0.0.1,localhost")
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_every_package_lists_existing_files_of_its_arch_and_abi(mip_dir: Path) -> None:
    compiler = mpy_cross.available_compilers()[0]
    abi = "{}.{}".format(*compiler.emits)
    arches = dist.architectures()
    assert {"xtensawin", "rv32imc", "x64"} <= set(arches)
    names = sorted(p.name for p in mip_dir.iterdir())
    assert names == sorted([f"{arch}_{abi}" for arch in arches] + [dist.SOURCE_PACKAGE])
    runtime = [name.replace(".py", ".mpy") for name in _package_modules()]
    for directory in mip_dir.iterdir():
        manifest = json.loads((directory / "package.json").read_text())
        files = [dest for dest, _src in manifest["urls"]]
        assert all(dest == src for dest, src in manifest["urls"])  # relative to the package.json
        assert manifest["version"] == json.loads((FIRMWARE / "package.json").read_text())["version"]
        assert sorted(p.name for p in directory.iterdir()) == sorted(files + ["package.json"])
        if directory.name == dist.SOURCE_PACKAGE:
            assert files == _package_modules()
            for name in files:
                assert (directory / name).read_bytes() == (FIRMWARE / name).read_bytes()
            continue
        arch = directory.name.rpartition("_")[0]
        assert files[: len(runtime)] == runtime
        assert files[len(runtime) :] == (["edgenn_asm.mpy"] if arch in ("xtensawin", "rv32imc") else [])
        for name in files:
            module = mpy.read((directory / name).read_bytes())
            where = f"{directory.name}/{name}"
            if name in NATIVE:  # machine code: loads only with this arch and sub-version
                assert (module.arch, "{}.{}".format(*module.version)) == (arch, abi), where
            else:  # bytecode only: mpy-cross marks no arch, and any 6.x board loads it
                assert (module.arch, module.version[0]) == (None, 6), where


def test_mip_install_prebuilt_mpy_on_a_plain_esp32_then_predict(
    start_vboard, http_root: str, tmp_path: Path
) -> None:
    vboard = start_vboard(tmp_path / "flash", board="esp32")
    sys_mpy = int(mpremote(vboard.port, "exec", "import sys; print(sys.implementation._mpy)").stdout)
    package = f"x64_{sys_mpy & 0xFF}.{(sys_mpy >> 8) & 3}"  # the vboard runs x86-64 MicroPython
    result = mpremote(vboard.port, "mip", "install", f"{http_root}/{package}/package.json", timeout=60)
    for name in _package_modules():
        assert f"Installing: /lib/{name.replace('.py', '.mpy')}" in result.stdout, result.stdout
    assert not list((vboard.flash_dir / "lib").glob("*.py"))  # compiled code only: nothing to compile
    model = zoo.build_zoo(seed=4)["relu_3"]
    path = tmp_path / "m.enn"
    modelfile.save(model, path)
    mpremote(vboard.port, "cp", str(path), ":model.enn")
    rng = np.random.default_rng(1)
    codes = rng.integers(0, 256, (3, model.n_inputs), dtype=np.uint8)
    code = "import gc, edgenn\nn = edgenn.load('model.enn')\nprint(edgenn.__file__, n.kernel)\n" + "".join(
        f"print(list(n.forward_q(bytes({row.tolist()!r}))))\n" for row in codes
    )
    lines = mpremote(vboard.port, "exec", code).stdout.strip().splitlines()
    assert lines[0] == "/lib/edgenn.mpy viper"  # the mip-installed machine code, not a deployed copy
    assert [ast.literal_eval(line) for line in lines[1:]] == golden.forward_q(model, codes).tolist()
    rows = rng.normal(size=(3, model.n_inputs)).round(3)
    code = "import edgenn\nn = edgenn.load('model.enn')\n" + "".join(
        f"print(n.predict({row.tolist()!r}))\n" for row in rows
    )
    got = [int(line) for line in mpremote(vboard.port, "exec", code).stdout.split()]
    assert got == golden.predict(model, rows).tolist()


def test_manifest_freezes_exactly_the_package_modules(monkeypatch) -> None:
    """Run firmware/manifest.py as MicroPython's build does (cwd = its directory, include/module given)."""
    included, frozen = [], []
    monkeypatch.chdir(FIRMWARE)
    source = (FIRMWARE / "manifest.py").read_text()
    exec(compile(source, "manifest.py", "exec"), {"include": included.append, "module": frozen.append})  # noqa: S102
    assert included == ["$(PORT_DIR)/boards/manifest.py"]
    assert frozen == _package_modules() and all(os.path.isfile(name) for name in frozen)
