"""The guest memory both harnesses build: the MicroPython objects a viper function reaches, the stubs
that stand in for `mp_fun_table`, the relocated machine code, the caller's buffers and the call list.

What a viper function needs from MicroPython (py/emitnative.c, py/objfun.h, py/bc.h, py/nativeglue.h):

- A viper function is called as `f(fun_obj, n_args, n_kw, args)` (an inline-asm function as a plain C
  function of up to 4 already converted arguments, `f(a0, a1, a2, a3)`, and its return word is converted
  by MicroPython, not by the code); `fun_obj` is an `mp_obj_fun_bc_t` whose word 1 is
  the module context; the context's words 2 and 3 are its qstr table and constant table, and constant
  number `fun_table_index` is `&mp_fun_table`. The function loads that once into a register.
- Each typed argument goes through `mp_fun_table[3]` (native_from_obj(obj, type)); an int return through
  `mp_fun_table[4]` (native_to_obj(value, type)); `return` without a value loads `mp_fun_table[0]`
  (None). A wrong argument count calls `[44]` (arg_check_num_sig).

Here the "objects" passed as arguments ARE the native values (buffer addresses, ints), so entries 3 and 4
are identity stubs; every other entry is a trap stub that stops the run with its index (a kernel that
allocates, raises or touches Python objects shows up as an error, not as a wrong count).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

from edgenn.errors import UserError
from edgenn.machinecode.mpy import Mpy, RawCode

FUN_TABLE_SIZE = 88  # entries of mp_fun_table_t in MicroPython 1.23-1.29 (nativeglue.h)
NATIVE_FROM_OBJ = 3
NATIVE_TO_OBJ = 4
CONST_NONE, CONST_FALSE, CONST_TRUE = 0x0000_001E, 0x0000_002E, 0x0000_003E  # sentinel "objects"
# A job: the function's address, the 4 argument registers of the call, the args array, the return word
JOB_WORDS = 12
JOB_REGS, JOB_ARGS, JOB_RET = 4, 20, 36  # byte offsets in a job
MAX_ARGS = 4


class MachineCodeError(RuntimeError):
    """The machine code did something the harness does not provide (a trap stub, a fault)."""


class EmulatorMissing(UserError):
    """qemu-xtensa or unicorn is not installed: the message says how to install it."""


@dataclass
class Call:
    """Call `function` with the addresses of buffers `args` (indices into the run's buffer list)."""

    function: str
    args: list[int]
    # True: pass each buffer as MicroPython passes a bytearray/array to viper-kind code that reads the
    # object itself (the inline-assembler kernels): a pointer to an mp_obj_array_t whose word 3 is the
    # data address. False: the "objects" are the buffer addresses (native_from_obj is an identity stub).
    objects: bool = False
    # int arguments after the buffers (a viper `n: int`): passed as they are (native_from_obj is identity)
    ints: tuple[int, ...] = ()


@dataclass
class Result:
    buffers: list[bytes]  # every buffer after all calls
    returns: list[int]  # each call's raw return word (None comes back as CONST_NONE)
    instructions: list[int]  # instructions executed inside the function's own code, per call
    other_instructions: list[int] = field(default_factory=list)  # in the mp_fun_table stubs, per call
    classes: list[dict[str, int]] = field(default_factory=list)  # the function's instructions by class


class Layout:
    """Places everything at fixed addresses from `base`; `image` is the bytes from `base` up."""

    def __init__(self, base: int) -> None:
        self.base = base
        self.image = bytearray()

    def alloc(self, data: bytes | int, align: int = 4) -> int:
        pad = -len(self.image) % align
        self.image += bytes(pad)
        addr = self.base + len(self.image)
        self.image += bytes(data) if not isinstance(data, int) else bytes(data)
        return addr

    def put_word(self, addr: int, value: int) -> None:
        struct.pack_into("<I", self.image, addr - self.base, value & 0xFFFFFFFF)

    def word(self, addr: int) -> int:
        return struct.unpack_from("<I", self.image, addr - self.base)[0]


@dataclass
class Placed:
    """Addresses of what `place_program` laid out."""

    fun_obj: int
    functions: dict[str, tuple[int, int]]  # name -> (start, end) of its machine code
    buffers: list[int]
    jobs: int
    data_start: int  # jobs and buffers live from here to the end of the image
    n_jobs: int


def _relocate(layout: Layout, rc: RawCode, text: int, tables: dict[str, int], stubs: list[int]) -> None:
    rodata = bss = 0
    if rc.rodata or rc.bss_size:
        bss = layout.alloc(rc.bss_size + (-rc.bss_size % 4))
        rodata = layout.alloc(rc.rodata)
    targets = dict(tables, text=text, rodata=rodata, bss=bss)
    for reloc in rc.relocations:
        where = (rodata if reloc.in_rodata else text) + reloc.offset
        dest = stubs[reloc.target] if isinstance(reloc.target, int) else targets[reloc.target]
        for k in range(reloc.count):
            layout.put_word(where + 4 * k, layout.word(where + 4 * k) + dest)


def place_program(
    layout: Layout,
    module: Mpy,
    functions: list[str],
    stubs: list[int],
    buffers: list[bytes],
    calls: list[Call],
) -> Placed:
    """Lay out the runtime objects, the functions' code, then the call list and the buffers.
    `stubs[i]` is the address mp_fun_table[i] should hold (the caller has placed the stub code)."""
    fun_table = layout.alloc(FUN_TABLE_SIZE * 4)
    for i, addr in enumerate(stubs):
        layout.put_word(fun_table + 4 * i, addr)
    for i, value in enumerate((CONST_NONE, CONST_FALSE, CONST_TRUE)):
        layout.put_word(fun_table + 4 * i, value)
    obj_table = layout.alloc(4 * max(1, len(module.objects)))
    if "<mp_fun_table>" in module.objects:  # viper code finds the table there; inline asm needs none
        layout.put_word(obj_table + 4 * module.fun_table_index, fun_table)
    qstr_table = layout.alloc(2 * max(2, len(module.qstrs)))
    context = layout.alloc(struct.pack("<4I", 0, 0, qstr_table, obj_table))
    fun_obj = layout.alloc(struct.pack("<4I", 0, context, 0, 0))
    tables = {"qstr_table": qstr_table, "obj_table": obj_table, "fun_table": fun_table}
    placed_functions = {}
    kinds = {}
    for name in functions:
        rc = module.function(name)
        kinds[name] = rc.kind
        if rc.kind not in ("viper", "asm"):
            raise MachineCodeError(f"{name} is {rc.kind} code; only viper and inline-asm functions run here")
        start = layout.alloc(rc.code, align=4)
        _relocate(layout, rc, start, tables, stubs)
        placed_functions[name] = (start, start + len(rc.code))
    data_start = layout.alloc(b"", align=16)
    jobs = layout.alloc(JOB_WORDS * 4 * len(calls))
    addrs = [layout.alloc(buf, align=16) for buf in buffers]
    for i, call in enumerate(calls):
        if len(call.args) + len(call.ints) > MAX_ARGS:
            raise ValueError(f"at most {MAX_ARGS} arguments per call")
        job = jobs + JOB_WORDS * 4 * i
        layout.put_word(job, placed_functions[call.function][0])
        args = []
        for b in call.args:
            arg = addrs[b]
            if call.objects:
                arg = layout.alloc(struct.pack("<4I", 0, 0, len(buffers[b]), arg), align=16)
            args.append(arg)
        args += [v & 0xFFFF_FFFF for v in call.ints]
        for k, arg in enumerate(args):
            layout.put_word(job + JOB_ARGS + 4 * k, arg)
        if kinds[call.function] == "viper":  # f(fun_obj, n_args, n_kw, args), args converted by the code
            regs = [fun_obj, len(args), 0, job + JOB_ARGS]
        else:  # inline asm: MicroPython converts the arguments and calls f(a0, a1, a2, a3) like C
            regs = args + [0] * (MAX_ARGS - len(args))
        for k, value in enumerate(regs):
            layout.put_word(job + JOB_REGS + 4 * k, value)
    layout.alloc(b"", align=16)
    return Placed(fun_obj, placed_functions, addrs, jobs, data_start, len(calls))


def read_back(placed: Placed, data: bytes, sizes: list[int]) -> tuple[list[bytes], list[int]]:
    """Buffers and return words from the bytes of the data region [data_start, end)."""

    def at(addr: int, n: int) -> bytes:
        off = addr - placed.data_start
        return bytes(data[off : off + n])

    buffers = [at(a, n) for a, n in zip(placed.buffers, sizes)]
    returns = [
        struct.unpack("<I", at(placed.jobs + JOB_WORDS * 4 * i + JOB_RET, 4))[0] for i in range(placed.n_jobs)
    ]
    return buffers, returns
