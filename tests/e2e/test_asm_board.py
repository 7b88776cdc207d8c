"""Which kernel serves, as a board reports it: `edgenn doctor` (and the server's `info`, whose kernel it
reads) on a virtual board holding a stand-in asm module. The x86-64 virtual board cannot run xtensawin
code, so the stand-ins are viper functions: one equal to the viper kernel (asm serves), one with a
rounding off-by-one (refused by the load-time self-test; viper serves and doctor names the problem)."""

from __future__ import annotations

import json
from pathlib import Path

from vboard_helpers import edgenn, mpremote, runtime_or_skip

from edgenn import modelfile, zoo
from edgenn.device.client import BoardClient
from edgenn.resources import shipped_dir

EXACT = "+ (1 << (t - 16))) >> (t - 15)"


def _doctor(port: str) -> dict:
    result = edgenn("doctor", "--port", port, "--json")
    assert result.stdout.startswith("{"), result.stderr
    return json.loads(result.stdout)


def test_doctor_says_whether_the_asm_kernel_serves(vboard, tmp_path: Path) -> None:
    runtime_or_skip()
    model = tmp_path / "m.enn"
    modelfile.save(zoo.build_zoo(seed=2)["relu_2"], model)
    assert edgenn("deploy", str(model), "--port", vboard.port).returncode == 0
    d = _doctor(vboard.port)
    assert (d["kernel"], d["asm_kernel"]) == ("viper", "not installed") and d["problems"] == []

    good = tmp_path / "edgenn_asm.py"
    good.write_text("from edgenn_viper import layer\n")
    mpremote(vboard.port, "cp", str(good), ":edgenn_asm.py")
    d = _doctor(vboard.port)
    assert (d["kernel"], d["asm_kernel"]) == ("asm", "ok")
    with BoardClient(vboard.port) as board:  # the serving runtime says the same in `info`
        assert board.connect(reset=True, reset_timeout=60)["kernel"] == "asm"  # a slow CI machine

    viper = (shipped_dir("firmware", "EDGENN_FIRMWARE_DIR") / "edgenn_viper.py").read_text()
    good.write_text(viper.replace(EXACT, "+ (1 << (t - 16)) + 1) >> (t - 15)"))
    mpremote(vboard.port, "cp", str(good), ":edgenn_asm.py")
    d = _doctor(vboard.port)
    assert d["kernel"] == "viper" and d["asm_kernel"].startswith("refused: differs from viper")
    assert any("refused by its self-test" in p for p in d["problems"])
