"""The runtime's choice of kernel, inside real MicroPython (unix port): an asm module that passes the
load-time self-test serves ("asm"); one that differs from viper by a rounding off-by-one, fails to
import, or is not native code is refused and viper serves, with the reason in edgenn.asm_status().
The x64 unix port cannot run xtensawin/rv32imc code, so stand-in asm modules are viper functions
(the real kernels' bytes are proven in test_asm_machinecode.py)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess

import numpy as np
import pytest
from mpy_helpers import FIRMWARE, MICROPYTHON, need_micropython

from edgenn import golden, modelfile, zoo

EXACT = "+ (1 << (t - 16))) >> (t - 15)"
STAND_INS = {
    "good": "from edgenn_viper import layer\n",
    "broken": None,  # edgenn_viper.py with an off-by-one in the rounding
    "import_error": "raise ImportError('no such thing')\n",
    "bytecode": "def layer(w, x, out, h):\n    pass\n",
    # machine code that takes the board down in the middle of the self-test (a reset, here an exit)
    "crash": "import sys\n\n@micropython.viper\ndef layer(w, x, out, h):\n    sys.exit(3)\n",
}
SCRIPT = """
import sys, json, edgenn
net = edgenn.load(sys.argv[1])
xs = json.loads(open(sys.argv[2]).read())
outs = [list(net.forward_q(bytearray(x))) for x in xs]
outs_mv = [list(net.forward_q(memoryview(bytearray(x)))) for x in xs]
print(json.dumps({"kernel": net.kernel, "status": edgenn.asm_status(), "outs": outs, "outs_mv": outs_mv}))
"""


def run_with(kind: str, tmp_path, expect_rc: int = 0, source: str | None = None) -> dict:
    need_micropython()
    d = tmp_path / kind
    d.mkdir(exist_ok=True)
    for name in ("edgenn.py", "edgenn_viper.py"):
        shutil.copy(FIRMWARE / name, d / name)
    source = source or STAND_INS[kind]
    if source is None:
        viper = (FIRMWARE / "edgenn_viper.py").read_text()
        assert viper.count(EXACT) == 1
        source = viper.replace(EXACT, "+ (1 << (t - 16)) + 1) >> (t - 15)")
    asm = d / "edgenn_asm.py"
    if not asm.is_file() or asm.read_text() != source:  # rewriting it would look like a redeploy (mtime)
        asm.write_text(source)
    rng = np.random.default_rng(5)
    model = zoo.random_model(rng, 21, [9], ["relu"], 4, "classify")
    modelfile.save(model, d / "m.enn")
    xs = rng.integers(0, 256, size=(20, 21), dtype=np.uint8)
    (d / "x.json").write_text(json.dumps(xs.tolist()))
    (d / "run.py").write_text(SCRIPT)
    env = dict(os.environ, MICROPYPATH=str(d))
    cmd = [MICROPYTHON, str(d / "run.py"), str(d / "m.enn"), str(d / "x.json")]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=60, env=env)
    assert proc.returncode == expect_rc, proc.stderr
    if expect_rc:
        return {}
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    want = golden.forward_q(model, xs).tolist()
    assert out["outs"] == want and out["outs_mv"] == want  # whichever kernel serves, golden's bytes
    return out


def test_a_good_asm_module_serves(tmp_path):
    out = run_with("good", tmp_path)
    assert (out["kernel"], out["status"]) == ("asm", "ok")


@pytest.mark.parametrize(
    "kind, reason",
    [
        ("broken", "refused: differs from viper"),
        ("import_error", "not installed"),
        ("bytecode", "refused: not native code on this firmware"),
    ],
)
def test_a_bad_asm_module_is_refused_and_viper_serves(kind, reason, tmp_path):
    out = run_with(kind, tmp_path)
    assert out["kernel"] == "viper" and out["status"].startswith(reason), out["status"]


def test_asking_for_a_refused_asm_kernel_is_a_clear_error(tmp_path):
    need_micropython()
    shutil.copy(FIRMWARE / "edgenn.py", tmp_path / "edgenn.py")
    shutil.copy(FIRMWARE / "edgenn_viper.py", tmp_path / "edgenn_viper.py")
    model = zoo.random_model(np.random.default_rng(1), 5, [], [], 2, "classify")
    modelfile.save(model, tmp_path / "m.enn")
    code = f"import edgenn\ntry:\n    edgenn.load('{tmp_path / 'm.enn'}', kernel='asm')\nexcept ValueError as e:\n    print(e)\n"
    env = dict(os.environ, MICROPYPATH=str(tmp_path))
    proc = subprocess.run([MICROPYTHON, "-c", code], capture_output=True, text=True, timeout=60, env=env)
    assert proc.stdout.strip() == "kernel 'asm' not available here: not installed"


def test_an_asm_kernel_that_crashed_its_self_test_is_refused_at_the_next_boot(tmp_path):
    run_with("crash", tmp_path, expect_rc=3)  # the board "resets" during the self-test
    assert (tmp_path / "crash" / "edgenn_asm.py.testing").exists()
    out = run_with("crash", tmp_path)  # next boot: no second crash, viper serves
    assert out["kernel"] == "viper" and out["status"].startswith("refused: its self-test did not finish")
    out = run_with("crash", tmp_path, source=STAND_INS["good"])  # redeployed: tested afresh
    assert (out["kernel"], out["status"]) == ("asm", "ok")
    assert not (tmp_path / "crash" / "edgenn_asm.py.testing").exists()
