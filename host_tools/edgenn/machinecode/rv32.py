"""rv32imc machine code (ESP32-C3, C6) under PyPI `unicorn` (RV32), in-process, counted exactly.

The memory of `memory.place_program` is mapped as one RWX region; each call sets the standard RISC-V
calling convention by hand (a0..a3 = fun_obj, n_args, n_kw = 0, args; ra = a return address that stops
the emulator; sp = a fresh stack) and runs until the function returns there. mp_fun_table's conversion
entries point to `c.jr ra` (identity: a0 in, a0 out); every other entry to its own `ebreak`, which stops
the run with an error naming the entry.

Counting: a block hook restricted to the function's code; unicorn reports each executed block's start
and byte size, and the block is split into 16-bit (compressed) and 32-bit instructions by the RISC-V
length rule (low two bits 11 = 32-bit) and classed by opcode. Tests check the count against a
per-instruction hook.
"""

from __future__ import annotations

import struct

from edgenn.machinecode.counting import Block, Tally, summarise
from edgenn.machinecode.memory import (
    FUN_TABLE_SIZE,
    JOB_REGS,
    JOB_RET,
    JOB_WORDS,
    NATIVE_FROM_OBJ,
    NATIVE_TO_OBJ,
    Call,
    EmulatorMissing,
    Layout,
    MachineCodeError,
    Result,
    place_program,
    read_back,
)
from edgenn.machinecode.mpy import Mpy

BASE = 0x0001_0000
STACK_TOP = 0x7FF0_0000
STACK_SIZE = 0x10_0000
C_JR_RA = struct.pack("<H", 0x8082)
EBREAK = struct.pack("<I", 0x0010_0073)
TIMEOUT_US = 120_000_000  # per call; a kernel that loops forever fails instead of hanging (a count
# limit would make unicorn hook every instruction, several times slower)


def available() -> bool:
    try:
        import unicorn  # noqa: F401
    except ImportError:
        return False
    return True


def instruction_class(code: bytes, off: int) -> tuple[str, int]:
    """The cycle-model class of the RISC-V instruction at code[off], and its length in bytes."""
    half = code[off] | (code[off + 1] << 8)
    if half & 3 == 3:
        word = half | (code[off + 2] << 16) | (code[off + 3] << 24)
        opcode = word & 0x7F
        if opcode == 0x03:
            return "load", 4
        if opcode == 0x23:
            return "store", 4
        if opcode == 0x63:
            return "branch", 4
        if opcode in (0x6F, 0x67):
            return "jump", 4
        if opcode == 0x33 and word >> 25 == 1:
            return "mul", 4  # M extension (mul, div and remainder alike)
        return "alu", 4
    quadrant, funct3 = half & 3, half >> 13
    if quadrant == 0:
        return {2: "load", 6: "store"}.get(funct3, "alu"), 2
    if quadrant == 1:
        return {1: "jump", 5: "jump", 6: "branch", 7: "branch"}.get(funct3, "alu"), 2
    if funct3 == 2:
        return "load", 2  # c.lwsp
    if funct3 == 6:
        return "store", 2  # c.swsp
    if funct3 == 4 and (half >> 2) & 0x1F == 0 and (half >> 7) & 0x1F:
        return "jump", 2  # c.jr / c.jalr
    return "alu", 2


def _block(code: bytes, start: int, addr: int, size: int) -> Block:
    off = addr - start
    end = off + size
    kinds = []
    while off < end:
        kind, length = instruction_class(code, off)
        kinds.append(kind)
        off += length
    return summarise(kinds, addr + size)


def run(
    module: Mpy, functions: list[str], buffers: list[bytes], calls: list[Call], count: bool = True
) -> Result:
    try:
        from unicorn import UC_ARCH_RISCV, UC_HOOK_BLOCK, UC_MODE_RISCV32, Uc, UcError
        from unicorn import riscv_const as rc
    except ImportError as exc:
        raise EmulatorMissing("PyPI unicorn is not installed (pip install unicorn)") from exc
    layout = Layout(BASE)
    identity = layout.alloc(C_JR_RA)
    stubs = []
    for i in range(FUN_TABLE_SIZE):
        stubs.append(identity if i in (NATIVE_FROM_OBJ, NATIVE_TO_OBJ) else layout.alloc(EBREAK))
    trap_index = {addr: i for i, addr in enumerate(stubs)}
    returned = layout.alloc(EBREAK)  # ra: the emulator stops when the function returns here
    placed = place_program(layout, module, functions, stubs, buffers, calls)
    image = bytes(layout.image)
    size = (len(image) + 0xFFF) & ~0xFFF
    uc = Uc(UC_ARCH_RISCV, UC_MODE_RISCV32)
    uc.mem_map(BASE, size)
    uc.mem_write(BASE, image)
    uc.mem_map(STACK_TOP - STACK_SIZE, STACK_SIZE)

    blocks: dict[int, Block] = {}
    state: dict = {"tally": Tally(), "previous": None}
    if count:
        for start, end in placed.functions.values():
            code = image[start - BASE : end - BASE]

            def on_block(uc, addr, size, user, code=code, start=start):
                block = blocks.get(addr)
                if block is None:
                    block = blocks[addr] = _block(code, start, addr, size)
                tally = state["tally"]
                previous = state["previous"]
                if previous is not None and blocks[previous].branch_end not in (None, addr):
                    tally.taken[previous] += 1
                tally.runs[addr] += 1
                state["previous"] = addr

            uc.hook_add(UC_HOOK_BLOCK, on_block, begin=start, end=end - 1)

        def on_stub(uc, addr, size, user):
            state["stub"] += 1  # the identity stub is one instruction (c.jr ra)

        uc.hook_add(UC_HOOK_BLOCK, on_stub, begin=identity, end=identity + 1)

    arg_regs = (rc.UC_RISCV_REG_A0, rc.UC_RISCV_REG_A1, rc.UC_RISCV_REG_A2, rc.UC_RISCV_REG_A3)
    returns, tallies, stubs_run = [], [], []
    for i, call in enumerate(calls):
        job = placed.jobs + JOB_WORDS * 4 * i
        func = placed.functions[call.function][0]
        regs = struct.unpack_from("<4I", image, job - BASE + JOB_REGS)
        for reg, value in zip(arg_regs, regs):
            uc.reg_write(reg, value)
        uc.reg_write(rc.UC_RISCV_REG_RA, returned)
        uc.reg_write(rc.UC_RISCV_REG_SP, STACK_TOP - 64)
        state["tally"], state["previous"], state["stub"] = Tally(), None, 0
        try:
            uc.emu_start(func, returned, timeout=TIMEOUT_US)
        except UcError as exc:
            pc = uc.reg_read(rc.UC_RISCV_REG_PC)
            if pc in trap_index:
                raise MachineCodeError(
                    f"the machine code called mp_fun_table[{trap_index[pc]}], which the harness does not "
                    "provide (only argument conversion and the return value are stubbed)"
                ) from exc
            raise MachineCodeError(f"rv32 emulation failed at pc 0x{pc:08x}: {exc}") from exc
        pc = uc.reg_read(rc.UC_RISCV_REG_PC)
        if pc != returned:
            raise MachineCodeError(f"{call.function} did not return within {TIMEOUT_US // 1_000_000} s")
        a0 = uc.reg_read(rc.UC_RISCV_REG_A0)
        uc.mem_write(job + JOB_RET, struct.pack("<I", a0 & 0xFFFFFFFF))
        returns.append(a0 & 0xFFFFFFFF)
        tallies.append(state["tally"])
        stubs_run.append(state.get("stub", 0))
    data = bytes(uc.mem_read(placed.data_start, BASE + len(image) - placed.data_start))
    buffers_out, _ = read_back(placed, data, [len(b) for b in buffers])
    return Result(
        buffers_out,
        returns,
        [t.instructions(blocks) for t in tallies],
        stubs_run,
        [t.classes(blocks) for t in tallies] if count else [],
    )
