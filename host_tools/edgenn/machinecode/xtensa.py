"""xtensawin machine code (ESP32, S2, S3) under Debian's `qemu-xtensa` (user mode), counted exactly.

The harness writes a static little-endian ELF: one RWX segment holding a driver of hand-encoded
instructions, the mp_fun_table stubs, the MicroPython objects and code of `memory.place_program`, the
call list and the buffers. The driver `callx8`s into each job in turn (windowed ABI: arguments in a10..a13
become the callee's a2..a5), stores its return word, and at the end `write`s the data region to stdout
and `exit`s (Linux xtensa syscalls 13 and 118; number in a2, arguments in a6, a3, a4).

CPU: `-cpu dc233c`. mpy-cross's xtensawin code needs the windowed register option (`entry`, `callx8`,
`retw`) and MUL32 (`mull`), which the ESP32's LX6 and the S3's LX7 have; qemu's `lx106` (ESP8266) has no
register windows and `dsp3400` no `mull` (SIGILL). dc233c is the Cadence "diamond" LX core that qemu's
own xtensa tests use, so it is the most exercised of the cores that have both.

Counting: `-d in_asm,exec,nochain` logs every translation block once when translated (with its
instructions) and every execution of a block (`Trace ...`): without chaining every block execution is
logged, so instructions = sum over executed blocks of their length. `-singlestep` gives the same count
one instruction per block (tests check that the two agree); blocks keep the log small on large layers.
"""

from __future__ import annotations

import os
import re
import shutil
import struct
import subprocess
import tempfile
from pathlib import Path

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

CPU = "dc233c"
BASE = 0x0040_0000
EXIT_TRAP = 100  # a trap stub exits with 100 + its mp_fun_table index
TIMEOUT = 600  # seconds; a kernel that loops forever fails the run instead of hanging the caller
SYS_WRITE, SYS_EXIT = 13, 118
A2, A3, A4, A5, A6, A7, A10, A11, A12, A13 = 2, 3, 4, 5, 6, 7, 10, 11, 12, 13


def qemu_path() -> str | None:
    return shutil.which("qemu-xtensa")


# ---------------------------------------------------------------------------- instruction encoding
def _b3(word: int) -> bytes:
    return struct.pack("<I", word)[:3]


def rri8(r: int, t: int, s: int, imm8: int) -> bytes:
    return _b3(2 | (t << 4) | (s << 8) | (r << 12) | ((imm8 & 0xFF) << 16))


def l32i(t: int, s: int, offset: int) -> bytes:
    return rri8(2, t, s, offset >> 2)


def s32i(t: int, s: int, offset: int) -> bytes:
    return rri8(6, t, s, offset >> 2)


def addi(t: int, s: int, imm: int) -> bytes:
    assert -128 <= imm <= 127
    return rri8(0xC, t, s, imm)


def movi(t: int, imm: int) -> bytes:
    assert -2048 <= imm <= 2047
    return rri8(0xA, t, (imm >> 8) & 0xF, imm & 0xFF)


def entry(s: int, frame: int) -> bytes:
    return _b3(0x36 | (s << 8) | ((frame // 8) << 12))


def callx8(s: int) -> bytes:
    return _b3(0xE0 | (s << 8))


RETW = _b3(0x90)
SYSCALL = _b3(0x5000)


class _Asm:
    """Just enough of an assembler for the driver: literals placed first, then code with branches."""

    def __init__(self, layout: Layout) -> None:
        self.layout = layout

    def literal(self, value: int) -> int:
        return self.layout.alloc(struct.pack("<I", value & 0xFFFFFFFF))

    def here(self) -> int:
        return self.layout.base + len(self.layout.image)

    def emit(self, code: bytes) -> int:
        addr = self.here()
        self.layout.image += code
        return addr

    def l32r(self, t: int, literal: int) -> None:
        pc = self.here()
        offset = (literal - ((pc + 3) & ~3)) >> 2
        assert -65536 <= offset < 0
        self.emit(_b3(1 | (t << 4) | ((offset & 0xFFFF) << 8)))

    def patch_branch(self, at: int, target: int, kind: str) -> None:
        offset = target - (at + 4)
        if kind == "j":
            word = 6 | ((offset & 0x3FFFF) << 6)
        else:  # beqz as: n=1, m=0; the register is already in the placeholder
            old = struct.unpack(
                "<I", bytes(self.layout.image[at - self.layout.base : at - self.layout.base + 3]) + b"\0"
            )[0]
            word = (old & 0xFFF) | ((offset & 0xFFF) << 12)
        self.layout.image[at - self.layout.base : at - self.layout.base + 3] = _b3(word)


def _elf(layout: Layout, entry_point: int) -> bytes:
    """A static ELF32 executable: one PT_LOAD segment (RWX) mapping the whole image at `layout.base`."""
    image = bytes(layout.image)
    ident = b"\x7fELF" + bytes([1, 1, 1, 0]) + bytes(8)
    ehdr = ident + struct.pack("<HHIIIIIHHHHHH", 2, 94, 1, entry_point, 52, 0, 0, 52, 32, 1, 0, 0, 0)
    phdr = struct.pack("<IIIIIIII", 1, 0, layout.base, layout.base, len(image), len(image) + 65536, 7, 4096)
    head = ehdr + phdr
    return head + image[len(head) :]


def build(module: Mpy, functions: list[str], buffers: list[bytes], calls: list[Call]) -> tuple[bytes, dict]:
    """The ELF and the addresses the log parser needs."""
    layout = Layout(BASE)
    layout.alloc(bytes(52 + 32))  # ELF and program header, overwritten by _elf
    asm = _Asm(layout)
    # stubs: identity for the two conversions, a trap (exit 100 + index) for every other entry
    layout.alloc(b"", align=4)
    identity = asm.emit(entry(1, 32) + RETW)
    stubs = []
    for i in range(FUN_TABLE_SIZE):
        if i in (NATIVE_FROM_OBJ, NATIVE_TO_OBJ):
            stubs.append(identity)
        else:
            layout.alloc(b"", align=4)
            stubs.append(asm.emit(entry(1, 32) + movi(A6, EXIT_TRAP + i) + movi(A2, SYS_EXIT) + SYSCALL))
    placed = place_program(layout, module, functions, stubs, buffers, calls)
    end = layout.base + len(layout.image)
    lit_jobs = asm.literal(placed.jobs)
    lit_n = asm.literal(placed.n_jobs)
    lit_data = asm.literal(placed.data_start)
    lit_len = asm.literal(end - placed.data_start)
    layout.alloc(b"", align=4)
    start = asm.here()
    asm.l32r(A4, lit_jobs)
    asm.l32r(A5, lit_n)
    enter = asm.emit(_b3(0))  # j loop: ends the first block, so every job starts at a block on `loop`
    loop = asm.emit(_b3(0x16 | (A5 << 8)))  # beqz a5, done (patched below)
    asm.emit(l32i(A7, A4, 0))
    for k, reg in enumerate((A10, A11, A12, A13)):  # become the callee's a2..a5
        asm.emit(l32i(reg, A4, JOB_REGS + 4 * k))
    asm.emit(callx8(A7))
    asm.emit(s32i(A10, A4, JOB_RET))
    asm.emit(addi(A4, A4, JOB_WORDS * 4))
    asm.emit(addi(A5, A5, -1))
    back = asm.emit(_b3(0))
    asm.patch_branch(back, loop, "j")
    asm.patch_branch(enter, loop, "j")
    done = asm.here()
    asm.patch_branch(loop, done, "beqz")
    asm.l32r(A3, lit_data)
    asm.l32r(A4, lit_len)
    asm.emit(movi(A6, 1) + movi(A2, SYS_WRITE) + SYSCALL)
    asm.emit(movi(A6, 0) + movi(A2, SYS_EXIT) + SYSCALL)
    info = {"placed": placed, "loop": loop, "end": end}
    return _elf(layout, start), info


_TRACE = re.compile(rb"^Trace \d+: 0x[0-9a-f]+ \[[0-9a-f]+/([0-9a-f]+)/", re.M)


_LOADS = {"l8ui", "l16ui", "l16si", "l32i", "l32r", "l32ai"}
_STORES = {"s8i", "s16i", "s32i", "s32ri"}
_JUMPS = {"j", "jx", "call0", "call4", "call8", "call12", "callx0", "callx4", "callx8", "callx12"}
_JUMPS |= {"ret", "retw", "syscall"}


def instruction_class(mnemonic: str) -> str:
    """The cycle-model class of an xtensa instruction, by its mnemonic as qemu prints it."""
    m = mnemonic.removesuffix(".n")
    if m in _LOADS:
        return "load"
    if m in _STORES:
        return "store"
    if m.startswith(("mul", "mula", "muls")):
        return "mul"
    if m in _JUMPS:
        return "jump"
    if m.startswith("b") and m not in ("break",):
        return "branch"
    return "alu"  # incl. entry, loop setup, moves, shifts, adds


def _block(lines: list[bytes]) -> tuple[int, Block]:
    kinds = []
    first = last = 0
    last_mnemonic = ""
    for k, line in enumerate(lines):
        addr_text, _, rest = line.partition(b":")
        addr = int(addr_text, 16)
        if k == 0:
            first = addr
        last = addr
        last_mnemonic = rest.split()[0].decode()
        kinds.append(instruction_class(last_mnemonic))
    fallthrough = last + (2 if last_mnemonic.endswith(".n") else 3)
    return first, summarise(kinds, fallthrough)


def count_log(
    log: bytes, loop: int, functions: dict[str, tuple[int, int]], n_jobs: int
) -> tuple[list[Tally], list[Tally], dict[int, Block]]:
    """Per job: block executions inside the called functions' code, and in the stubs (driver excluded)."""
    blocks: dict[int, Block] = {}
    inside = [Tally() for _ in range(n_jobs)]
    outside = [Tally() for _ in range(n_jobs)]
    ranges = list(functions.values())
    job = -1
    previous: Block | None = None
    previous_pc = 0
    tally: Tally | None = None
    lines = log.split(b"\n")
    i, n = 0, len(lines)
    while i < n:
        line = lines[i]
        if line.startswith(b"IN:"):
            j = i + 1
            while j < n and lines[j].startswith(b"0x"):
                j += 1
            if j > i + 1:
                pc, block = _block(lines[i + 1 : j])
                blocks[pc] = block
            i = j
            continue
        if line.startswith(b"Trace"):
            pc = int(_TRACE.match(line).group(1), 16)
            if previous is not None and previous.branch_end is not None and pc != previous.branch_end:
                tally.taken[previous_pc] += 1
            previous = None
            if pc == loop:
                job += 1
            elif 0 <= job < n_jobs:
                if any(a <= pc < b for a, b in ranges):
                    tally = inside[job]
                elif pc < loop:  # stubs sit below the driver
                    tally = outside[job]
                else:
                    tally = None
                if tally is not None:
                    tally.runs[pc] += 1
                    previous, previous_pc = blocks[pc], pc
        i += 1
    return inside, outside, blocks


def run(
    module: Mpy, functions: list[str], buffers: list[bytes], calls: list[Call], count: bool = True
) -> Result:
    """Run `calls` in one qemu-xtensa process; instructions per call when `count`."""
    qemu = qemu_path()
    if qemu is None:
        raise EmulatorMissing("qemu-xtensa is not installed (Debian: apt-get install qemu-user)")
    elf, info = build(module, functions, buffers, calls)
    with tempfile.TemporaryDirectory(prefix="edgenn-xtensa-") as tmp:
        exe = Path(tmp) / "run.elf"
        exe.write_bytes(elf)
        os.chmod(exe, 0o755)
        cmd = [qemu, "-cpu", CPU]
        log = Path(tmp) / "trace.log"
        if count:
            cmd += ["-d", "in_asm,exec,nochain", "-D", str(log)]
        proc = subprocess.run(cmd + [str(exe)], capture_output=True, timeout=TIMEOUT)
        if proc.returncode >= EXIT_TRAP and proc.returncode < EXIT_TRAP + FUN_TABLE_SIZE:
            raise MachineCodeError(
                f"the machine code called mp_fun_table[{proc.returncode - EXIT_TRAP}], which the harness "
                "does not provide (only argument conversion and the return value are stubbed)"
            )
        if proc.returncode != 0:
            raise MachineCodeError(
                f"qemu-xtensa exited with {proc.returncode}: {proc.stderr.decode()[-500:]}"
            )
        placed = info["placed"]
        buffers_out, returns = read_back(placed, proc.stdout, [len(b) for b in buffers])
        result = Result(buffers_out, returns, [0] * len(calls), [0] * len(calls))
        if count:
            inside, outside, blocks = count_log(log.read_bytes(), info["loop"], placed.functions, len(calls))
            result.instructions = [t.instructions(blocks) for t in inside]
            result.other_instructions = [t.instructions(blocks) for t in outside]
            result.classes = [t.classes(blocks) for t in inside]
    return result
