"""Instructions and estimated time of one inference on a board, from the board's own machine code.

Every layer of the model runs through the kernel compiled for the board's architecture, in the emulator,
on the input the layer really gets (golden's forward pass of a few input rows; the counts are averaged
over them). Instructions are counted exactly; TIME IS AN ESTIMATE: the counted instructions, by class,
times the cycles per class of the core below, divided by the clock. It leaves out memory wait states,
interrupts (Wi-Fi), and the MicroPython code around the kernel (the bytecode loop of `forward_q`, the
call into viper and MicroPython's real buffer conversion per argument), which costs per layer, not per
multiply-accumulate.

The cycle model (cycles per instruction class; change it here, with its source, when a board measures
otherwise, e.g. with the cycle counter as in the ctrlsrc.io article cited below):

| class | LX6/LX7 (ESP32, S2, S3) | C3/C6 RISC-V |
| --- | --- | --- |
| alu (add, shift, move, entry, ...) | 1 | 1 |
| load | 2 | 2 |
| store | 1 | 1 |
| mul | 2 | 1 |
| branch taken | 3 | 3 |
| branch not taken | 1 | 1 |
| jump, call, return | 3 | 3 |

Sources and assumptions:
- Xtensa: GCC's pipeline description (gcc/config/xtensa/xtensa.md, define_insn_reservation) gives loads
  and MUL32 a 2-cycle result latency and every other instruction 1; viper code uses a loaded value in the
  next instruction almost always, so a load is priced at its latency. The LX6/LX7 pipeline is 5 stages
  (Cadence Xtensa LX datasheets); a taken branch, jump, call or return is assumed to cost 2 refill cycles.
- C3/C6: the ESP32-C3 Technical Reference Manual (ESP-RISC-V CPU chapter) describes an in-order 4-stage
  RV32IMC pipeline with a hardware multiplier; the 1-cycle load-use bubble and 2 refill cycles for taken
  branches and jumps are assumptions of the same kind as for the Xtensa. "Counting CPU cycles on ESP32-C3
  and ESP32-C6 microcontrollers" (ctrlsrc.io, 2023) shows how to measure them on a board.
- Clock: MicroPython's ESP32-family ports boot at 160 MHz (`machine.freq()`); the ESP32 and S3 can run
  at 240 MHz (`machine.freq(240_000_000)`), 1.5x faster.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from edgenn import golden
from edgenn.boards import BoardProfile, load_board
from edgenn.errors import UserError
from edgenn.machinecode import kernels
from edgenn.machinecode.counting import CLASSES
from edgenn.modelfile import QuantModel

ROWS = 4  # inputs averaged over: the codes of all-zero features, then seeded random codes
SEED = 0


@dataclass(frozen=True)
class CoreModel:
    name: str
    mhz: int
    cycles: dict[str, int]  # per instruction class of counting.CLASSES


XTENSA_LX = {"alu": 1, "load": 2, "store": 1, "mul": 2, "branch_taken": 3, "branch_not_taken": 1, "jump": 3}
RISCV_ESP = {"alu": 1, "load": 2, "store": 1, "mul": 1, "branch_taken": 3, "branch_not_taken": 1, "jump": 3}
CORES = {
    "esp32": CoreModel("Xtensa LX6", 160, XTENSA_LX),
    "esp32s2": CoreModel("Xtensa LX7", 160, XTENSA_LX),
    "esp32s3": CoreModel("Xtensa LX7", 160, XTENSA_LX),
    "esp32c3": CoreModel("ESP-RISC-V (C3)", 160, RISCV_ESP),
    "esp32c6": CoreModel("ESP-RISC-V (C6)", 160, RISCV_ESP),
}
UNCOUNTED = (
    "MicroPython around the kernel: the bytecode loop of forward_q, the call into viper and the real "
    "buffer conversion per argument (per layer, not per multiply-accumulate)"
)


def default_kernel(board: BoardProfile) -> str:
    """The kernel `edgenn deploy` installs on this board: asm where deploy installs the asm kernel for the
    board's arch (edgenn.device.deploy.ASM_SOURCES), else viper."""
    from edgenn.device.deploy import ASM_SOURCES  # the one list of where asm is installed

    if board.mpy_arch in ASM_SOURCES and board.mpy_arch in kernels.get_kernel("asm").sources:
        return "asm"
    return "viper"


def core_for(board: BoardProfile) -> CoreModel:
    if board.chip not in CORES:
        known = ", ".join(CORES)
        raise UserError(f"no cycle model for board {board.name!r}; estimate runs for {known} (--board)")
    return CORES[board.chip]


def input_rows(model: QuantModel, n: int = ROWS, seed: int = SEED) -> np.ndarray:
    zero = golden.quantize_input(model, np.zeros((1, len(model.input_names))))  # a raw window, if any
    rng = np.random.default_rng(seed)
    return np.concatenate([zero, rng.integers(0, 256, size=(n - 1, model.n_inputs), dtype=np.uint8)])


def estimate(
    model: QuantModel, board: BoardProfile | str, kernel: str | None = None, rows: np.ndarray | None = None
) -> dict:
    """One inference of `model` on `board` (a profile or a board name) with `kernel` (default: the one
    deploy installs there, default_kernel): MACs, exact instruction counts, estimated µs. UserError for a
    board without a cycle model or a missing emulator."""
    board = load_board(board) if isinstance(board, str) else board
    kernel = kernel or default_kernel(board)
    core = core_for(board)
    arch = board.mpy_arch
    k = kernels.get_kernel(kernel)
    code = kernels.kernel_mpy(k, arch)
    rows = input_rows(model) if rows is None else np.asarray(rows, dtype=np.uint8)
    outs = golden.forward_layers_q(model, rows)
    jobs = [kernels.quant_layer_job(layer, u) for layer, u in zip(model.layers, [rows, *outs[:-1]])]
    runs = kernels.run_layers(arch, code, jobs, kernel=k)
    n = len(rows)
    layers = []
    classes = dict.fromkeys(CLASSES, 0.0)
    total_kernel = total_other = 0.0
    for layer, run in zip(model.layers, runs):
        macs = layer.n_in * layer.n_out
        instr = sum(run.instructions) / n
        for name in CLASSES:
            classes[name] += sum(c[name] for c in run.classes) / n
        total_kernel += instr
        total_other += sum(run.other_instructions) / n
        layers.append(
            {
                "n_in": layer.n_in,
                "n_out": layer.n_out,
                "activation": layer.activation,
                "macs": macs,
                "kernel_instructions": round(instr),
                "instructions_per_mac": round(instr / macs, 2),
            }
        )
    macs = sum(entry["macs"] for entry in layers)
    cycles = sum(classes[name] * core.cycles[name] for name in CLASSES)
    return {
        "board": board.name,
        "arch": arch,
        "kernel": kernel,
        "core": core.name,
        "clock_mhz": core.mhz,
        "macs": macs,
        "kernel_instructions": round(total_kernel),
        "instructions": round(total_kernel + total_other),
        "instructions_per_mac": round(total_kernel / macs, 2),
        "instruction_classes": {name: round(v) for name, v in classes.items()},
        "cycles": round(cycles),
        "us": round(cycles / core.mhz, 1),
        "us_is_estimate": True,
        "rows_averaged": n,
        **_frontend(model, arch, core),
        "uncounted": UNCOUNTED,
        "layers": layers,
    }


def _frontend(model: QuantModel, arch: str, core: CoreModel) -> dict:
    """A model with a sensor front end: its cost per window too (viper machine code, counted apart from
    the layers: `frontend` in the result)."""
    if model.frontend is None:
        return {}
    from edgenn.machinecode.frontend import estimate_frontend

    return {"frontend": estimate_frontend(model.frontend, arch, core.cycles, core.mhz)}
