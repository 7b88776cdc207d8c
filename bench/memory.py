"""Memory benchmark (`python -m bench.memory`): what fits on each ESP32 profile of the virtual board.

1. The largest 96-N-4 model (ReLU, classify) that `edgenn deploy` puts on a fresh virtual board, per
   esp32-family profile, found by bisection on N with real deploys (deploy refuses by edgenn.fit's
   arithmetic, or the board refuses when the model does not load: both count as "does not deploy"),
   beside the N that edgenn.fit predicts from the profile alone.
2. The runtime's RAM per model kind (plain, front end, asm): GC heap measured on the virtual board
   (gc.mem_alloc() after `import edgenn_server` + load, minus before) and executable RAM: the machine
   code of the native functions in the .mpy files that kind imports, for xtensawin (what an ESP32 copies
   into IRAM, ports/esp32/main.c esp_native_code_commit).

The virtual board runs the x86-64 unix port: its heap figures are a 64-bit build's (objects larger than
an ESP32's), its timings are not ESP32 timings.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

from edgenn import fit, modelfile, zoo

PROFILES = ("esp32", "esp32s2", "esp32s3", "esp32c3", "esp32c6")
N_INPUTS = 96
N_OUTPUTS = 4
STEP = 8  # bisection resolution in hidden units
DEPLOY_TIMEOUT_S = 60


def model_96(hidden: int, seed: int = 0) -> modelfile.QuantModel:
    return zoo.random_model(
        np.random.default_rng(seed),
        N_INPUTS,
        [hidden],
        ["relu"],
        N_OUTPUTS,
        "classify",
        name=f"96-{hidden}-4",
    )


def _deploys(port: str, hidden: int, workdir: Path) -> bool:
    """`edgenn deploy` as a user runs it (a stuck deploy counts as a failure after DEPLOY_TIMEOUT_S)."""
    path = workdir / f"m{hidden}.enn"
    modelfile.save(model_96(hidden), path)
    try:
        done = subprocess.run(
            [sys.executable, "-m", "edgenn.cli", "deploy", str(path), "--port", port],
            capture_output=True,
            text=True,
            timeout=DEPLOY_TIMEOUT_S,
        )
    except subprocess.TimeoutExpired:
        print(f"  96-{hidden}-4: deploy timed out", file=sys.stderr, flush=True)
        return False
    print(f"  96-{hidden}-4: {'deploys' if done.returncode == 0 else 'refused'}", file=sys.stderr, flush=True)
    return done.returncode == 0


def _bisect(ok, lo: int, hi: int) -> int:
    """Largest n in [lo, hi] (multiple of STEP) with ok(n), given ok(lo) is True and ok(hi) False."""
    while hi - lo > STEP:
        mid = (lo + hi) // 2 // STEP * STEP
        if ok(mid):
            lo = mid
        else:
            hi = mid
    return lo


def fit_largest(board: str) -> int:
    result = fit.check_fit(model_96(4096), board)
    return result.smaller_hidden[0] if result.smaller_hidden else 0


def largest_deployable(board: str) -> dict:
    from edgenn.device.vboard import VirtualBoard

    predicted = fit_largest(board)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        with VirtualBoard(work / "flash", board=board) as vb:
            ok = lambda n: _deploys(vb.port, n, work)  # noqa: E731
            guess = max(2 * STEP, predicted // 2 // STEP * STEP)
            if ok(guess):
                lo, hi = guess, guess * 2
                while ok(hi):
                    lo, hi = hi, hi * 2
            elif ok(STEP):
                lo, hi = STEP, guess
            else:
                return {"board": board, "fit_predicts": predicted, "deploys": None}
            best = _bisect(ok, lo, hi)
    return {"board": board, "fit_predicts": predicted, "deploys": best}


# On the board after a soft reset: the GC heap and executable RAM that importing the runtime takes.
_RUNTIME_RAM = """
import gc, edgenn_vboard
gc.collect()
_a, _x = gc.mem_alloc(), edgenn_vboard.exec_free()
import edgenn_server, edgenn
{extra}
gc.collect()
print(gc.mem_alloc() - _a, _x - edgenn_vboard.exec_free())
"""
KINDS = {"plain": "", "front end": "import edgenn_fe, edgenn_fe_viper"}


def runtime_ram() -> list[dict]:
    """Per model kind: GC heap and executable RAM of the imported runtime, measured on the virtual board
    (x64 code and 64-bit objects), beside the ESP32's executable RAM (xtensawin machine code, counted in
    the .mpy files deploy installs) and its GC heap as edgenn.fit estimates it from the .mpy sizes."""
    from edgenn.device.deploy import ASM_NAME, FRONTEND_MODULE_PREFIX, runtime_modules
    from edgenn.device.vboard import VirtualBoard
    from edgenn.machinecode.mpy import native_code_bytes

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        with VirtualBoard(work / "flash", board="esp32") as vb:
            assert _deploys(vb.port, 16, work)
            for kind, extra in KINDS.items():
                out = subprocess.run(
                    [
                        sys.executable,
                        "-m",
                        "mpremote",
                        "connect",
                        vb.port,
                        "exec",
                        _RUNTIME_RAM.format(extra=extra),
                    ],
                    capture_output=True,
                    text=True,
                    timeout=60,
                ).stdout.split()
                rows.append({"kind": kind, "vboard_heap": int(out[0]), "vboard_exec": int(out[1])})
    esp32 = runtime_modules("xtensawin", True)
    for row in rows:
        files = {
            n: d
            for n, d in esp32.items()
            if n != ASM_NAME and (row["kind"] == "front end" or not n.startswith(FRONTEND_MODULE_PREFIX))
        }
        row["esp32_exec"] = sum(native_code_bytes(d) for d in files.values())
        row["esp32_heap_estimate"] = fit.runtime_heap_bytes(sum(len(d) for d in files.values()))
    plain = {n: d for n, d in esp32.items() if not n.startswith(FRONTEND_MODULE_PREFIX)}
    rows.append(
        {
            "kind": "asm (plain + edgenn_asm)",
            "vboard_heap": None,  # x64 has no asm kernel: not measurable on the virtual board
            "vboard_exec": None,
            "esp32_exec": sum(native_code_bytes(d) for d in plain.values()),
            "esp32_heap_estimate": fit.runtime_heap_bytes(sum(len(d) for d in plain.values())),
        }
    )
    return rows


def print_largest(rows: list[dict]) -> None:
    print("largest 96-N-4 model that deploys on a fresh virtual board (N to", STEP, "units)")
    print(f"{'profile':<10} {'edgenn.fit':>10} {'deploys':>8}")
    for r in rows:
        print(f"{r['board']:<10} {r['fit_predicts']:>10} {r['deploys'] or '-':>8}")


def print_ram(ram: list[dict]) -> None:
    print("runtime RAM per model kind (virtual board, esp32 profile; ESP32 from the xtensawin .mpy files)")
    print(
        f"{'kind':<26} {'vboard heap':>11} {'vboard exec':>11} {'ESP32 exec':>10} {'ESP32 heap (est.)':>17}"
    )
    for r in ram:
        print(
            f"{r['kind']:<26} {r['vboard_heap'] or '-':>11} {r['vboard_exec'] or '-':>11} "
            f"{r['esp32_exec']:>10} {r['esp32_heap_estimate']:>17}"
        )


def run(results_dir: Path | None = None) -> dict:
    """`make bench` (bench/run.py): both tables, printed and returned for bench/results/memory.json."""
    rows = [largest_deployable(b) for b in PROFILES]
    print_largest(rows)
    ram = runtime_ram()
    print_ram(ram)
    return {"largest_96_n_4": rows, "runtime_ram": ram}


def main(argv: list[str] | None = None) -> int:
    """python -m bench.memory [ram | PROFILE ...]: one table, or the largest model on some profiles."""
    argv = sys.argv[1:] if argv is None else argv
    if argv == ["ram"]:
        ram = runtime_ram()
        print_ram(ram)
        print(json.dumps({"runtime_ram": ram}))
        return 0
    rows = [largest_deployable(b) for b in argv or PROFILES]
    print_largest(rows)
    print(json.dumps({"largest_96_n_4": rows}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
