"""Machine-code kernels side by side: viper vs the inline-assembler kernels (firmware/edgenn_asm_*.py),
instructions per multiply-accumulate and estimated µs per inference (edgenn.machinecode.estimate: exact
instruction counts from the emulators, time from its per-instruction-class cycle model, an estimate),
on the three bench networks, for the ESP32 (xtensawin) and the ESP32-C3 (rv32imc)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from edgenn import zoo
from edgenn.boards import load_board
from edgenn.machinecode.estimate import estimate

NETWORKS = ([4, 16, 3], [64, 32, 10], [256, 128, 64, 10])  # as bench/runtime.py
BOARDS = ("esp32", "esp32c3")
KERNELS = ("viper", "asm")


def run(results_dir: Path | None = None) -> dict:
    rows = []
    for sizes in NETWORKS:
        rng = np.random.default_rng(sum(sizes))
        hidden = sizes[1:-1]
        model = zoo.random_model(rng, sizes[0], hidden, ["relu"] * len(hidden), sizes[-1], "classify")
        name = "-".join(str(s) for s in sizes)
        for board in BOARDS:
            profile = load_board(board)
            row = {"network": name, "board": board}
            for kernel in KERNELS:
                r = estimate(model, profile, kernel)
                per_mac = round(r["kernel_instructions"] / r["macs"], 2)
                row[kernel] = {"per_mac": per_mac, "us": round(r["us"], 1)}
                row["arch"] = r["arch"]
            row["speedup"] = round(row["viper"]["us"] / row["asm"]["us"], 2)
            rows.append(row)
    print(
        f"{'network':<16} {'board':<8} {'arch':<10} {'viper/MAC':>9} {'asm/MAC':>8} "
        f"{'viper µs':>9} {'asm µs':>8} {'x':>5}"
    )
    for r in rows:
        print(
            f"{r['network']:<16} {r['board']:<8} {r['arch']:<10} {r['viper']['per_mac']:>9} "
            f"{r['asm']['per_mac']:>8} {r['viper']['us']:>9} {r['asm']['us']:>8} {r['speedup']:>5}"
        )
    print("µs: estimated from exact instruction counts and a per-instruction-class cycle model (not timed)")
    result = {"rows": rows}
    if results_dir is not None:
        (Path(results_dir) / "kernels.json").write_text(json.dumps(result, indent=2))
    return result
