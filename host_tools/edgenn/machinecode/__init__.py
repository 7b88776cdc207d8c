"""The ESP32's own machine code, run and counted on this machine.

mpy-cross compiles the device kernels to xtensawin (ESP32, S2, S3) and rv32imc (C3, C6) machine code inside
a `.mpy`; this package runs that code in emulators and counts the instructions it executes.

One owner per concern:
    mpy.py      reading a .mpy: a function's machine code, relocations, constant and qstr tables
    memory.py   the guest memory: MicroPython objects the code reaches, mp_fun_table stubs, calls, buffers
    xtensa.py   xtensawin under Debian qemu-xtensa (-cpu dc233c): a hand-encoded static ELF, exact counts
    rv32.py     rv32imc under PyPI unicorn, in-process, exact counts from block hooks
    kernels.py  the kernel registry (`viper`, and others registered by name), compiling, running layers
    estimate.py instructions and estimated time per inference of a model on a board (`edgenn estimate`)

Typical use:
    from edgenn.machinecode import kernels
    mpy_bytes = kernels.kernel_mpy(kernels.get_kernel("viper"), "xtensawin")
    out, n = kernels.run_layer("xtensawin", mpy_bytes, blob, header, x)
    runs = kernels.run_layers("rv32imc", mpy_bytes, [kernels.quant_layer_job(layer, rows), ...])
"""

from edgenn.machinecode.kernels import (
    ARCHES,
    KERNELS,
    Kernel,
    LayerRun,
    get_kernel,
    kernel_mpy,
    register,
    run_calls,
    run_layer,
    run_layers,
)
from edgenn.machinecode.memory import Call, MachineCodeError, Result

__all__ = [
    "ARCHES",
    "KERNELS",
    "Call",
    "Kernel",
    "LayerRun",
    "MachineCodeError",
    "Result",
    "get_kernel",
    "kernel_mpy",
    "register",
    "run_calls",
    "run_layer",
    "run_layers",
]
