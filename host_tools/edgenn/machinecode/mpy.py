"""Reading a `.mpy` file (MicroPython 1.23+, format 6.3): find a viper function's machine code and what it
needs from the runtime around it.

Written from MicroPython's docs/reference/mpyfiles.rst and the loader's behaviour (py/persistentcode.c);
this module is the only place that knows the byte layout. A `.mpy` is:

    header   'M', major version 6, flags byte (bit 6: arch-flags vuint follows; bits 5..2: native arch;
             bits 1..0: sub-version), small-int bits; [arch-flags vuint]
    tables   vuint n_qstr, vuint n_obj, then n_qstr qstrs, then n_obj constant objects
    raw code the module's outer code, its children recursively

A raw code starts with vuint (len << 3 | has_children << 2 | kind) where kind 0 = bytecode, 1 = native
Python, 2 = viper, 3 = inline asm. Native kinds follow their machine code with a prelude offset (native
Python) or scope flags (viper, asm; asm adds n_pos_args and the type signature); viper adds rodata/bss
sizes (and the rodata bytes) when its flags say so. Then the children, then for viper/asm code whose scope
flags have VIPERRELOC, the relocation stream that the loader applies to the code.

A bytecode raw code starts with its prelude (py/bc.h): the signature (n_state - 1, n_exc_stack, n_pos_args,
..., bit-packed over one or more bytes), the sizes (n_info, n_cell) and the function's name as an index into
the qstr table. MicroPython gives a call's frame n_state words plus 3 per exception-stack entry
(mp_exc_stack_t) and takes it from the GC heap when that exceeds VM_MAX_STATE_ON_STACK, 11 words
(py/objfun.c): `bytecode_frames` reads those figures for every function of a module.

The machine code reaches MicroPython through `mp_fun_table`, whose address sits in the module's constant
table (the entry of kind FUN_TABLE): the function object passed as the first argument points to the
module context, which points to that table. `fun_table_index` says where it is.
"""

from __future__ import annotations

from dataclasses import dataclass, field

ARCHES = (
    None,
    "x86",
    "x64",
    "armv6",
    "armv6m",
    "armv7m",
    "armv7em",
    "armv7emsp",
    "armv7emdp",
    "xtensa",
    "xtensawin",
    "rv32imc",
    "rv64imc",
)
KINDS = ("bytecode", "native", "viper", "asm")
# Constant object kinds in the table (persistentcode.h, MP_PERSISTENT_OBJ_*)
OBJ_FUN_TABLE, OBJ_NONE, OBJ_FALSE, OBJ_TRUE, OBJ_ELLIPSIS, OBJ_STR, OBJ_BYTES, OBJ_INT = range(8)
FLAG_VIPERRELOC, FLAG_VIPERRODATA, FLAG_VIPERBSS = 0x10, 0x20, 0x40
# Bytecode opcodes the module's outer code uses to bind a function to its name (py/bc0.h)
BC_MAKE_FUNCTION = 0x32
BC_STORE_NAME = 0x16


# py/objfun.c: a bytecode frame larger than this many machine words comes from the GC heap on every call
VM_MAX_STATE_ON_STACK = 11
EXC_STACK_ENTRY_WORDS = 3  # py/bc.h, mp_exc_stack_t: handler, val_sp, prev_exc


# The start of MicroPython's static qstr list (py/makeqstrdata.py, static_qstr_list; qstr n is entry n - 1):
# a .mpy names these by number, and special methods such as __init__ are among them.
STATIC_QSTRS = (
    "", "__dir__", "\n", " ", "*", "/", "<module>", "_", "__call__", "__class__", "__delitem__",
    "__enter__", "__exit__", "__getattr__", "__getitem__", "__hash__", "__init__", "__int__", "__iter__",
    "__len__", "__main__", "__module__", "__name__", "__new__", "__next__", "__qualname__", "__repr__",
    "__setitem__", "__str__",
)  # fmt: skip


class MpyError(ValueError):
    """The bytes are not a .mpy this reader understands, or lack the requested function."""


@dataclass
class Relocation:
    """One loader fix-up: add the address of `target` to the 32-bit word(s) at `offset` of the code
    (or of rodata when `in_rodata`). `target` is "text", "rodata", "bss", "qstr_table", "obj_table",
    "fun_table" or an int: an entry of mp_fun_table."""

    offset: int
    in_rodata: bool
    target: str | int
    count: int = 1


@dataclass
class RawCode:
    kind: str
    code: bytes
    scope_flags: int = 0
    rodata: bytes = b""
    bss_size: int = 0
    children: list[RawCode] = field(default_factory=list)
    relocations: list[Relocation] = field(default_factory=list)


@dataclass(frozen=True)
class Prelude:
    """What a bytecode function's prelude says about its frame (py/bc.h, MP_BC_PRELUDE_SIG_DECODE_INTO)."""

    name: str  # qualified through the enclosing code: "Net.forward_q", "Window.push", "<lambda>"
    n_state: int  # locals + value stack, in words
    n_exc_stack: int  # nested try/with blocks
    n_pos_args: int
    n_kwonly_args: int
    n_def_pos_args: int

    @property
    def state_words(self) -> int:
        """The frame's size in machine words, as fun_bc_call computes it."""
        return self.n_state + EXC_STACK_ENTRY_WORDS * self.n_exc_stack

    @property
    def on_c_stack(self) -> bool:
        return self.state_words <= VM_MAX_STATE_ON_STACK


@dataclass
class Mpy:
    version: tuple[int, int]
    arch: str | None
    small_int_bits: int
    qstrs: list[str | int]  # a string, or the number of a qstr built into the firmware
    objects: list[object]  # constants; the fun table entry as the string "<mp_fun_table>"
    module: RawCode

    @property
    def fun_table_index(self) -> int:
        for i, obj in enumerate(self.objects):
            if obj == "<mp_fun_table>":
                return i
        raise MpyError("the .mpy has no native code (its constant table lacks mp_fun_table)")

    def function(self, name: str) -> RawCode:
        """The module-level function `name` (found by the MAKE_FUNCTION / STORE_NAME pair that binds it)."""
        bc = self.module.code
        for i in range(len(bc) - 1):
            if bc[i] != BC_MAKE_FUNCTION:
                continue
            child, j = _vuint(bc, i + 1)
            if j >= len(bc) or bc[j] != BC_STORE_NAME:
                continue
            qstr, _ = _vuint(bc, j + 1)
            if child < len(self.module.children) and qstr < len(self.qstrs) and self.qstrs[qstr] == name:
                return self.module.children[child]
        names = [q for q in self.qstrs if isinstance(q, str)]
        raise MpyError(f"no function {name!r} at module level in this .mpy (its names: {names})")

    def bytecode_frames(self) -> dict[str, Prelude]:
        """Every bytecode function of the module (methods as "Class.method", nested code under its
        parent's name), keyed by qualified name; the module's own code is left out."""
        out: dict[str, Prelude] = {}

        def walk(rc: RawCode, prefix: str) -> None:
            for child in rc.children:
                if child.kind != "bytecode":
                    continue
                p = prelude(child.code, self.qstrs, prefix)
                out.setdefault(p.name, p)
                walk(child, p.name + ".")

        walk(self.module, "")
        return out


def prelude(code: bytes, qstrs: list[str | int], prefix: str = "") -> Prelude:
    """Decode a bytecode raw code's prelude: signature, sizes, then the name's qstr index."""
    if not code:
        raise MpyError("empty bytecode")
    pos = 0
    z = code[pos]
    pos += 1
    # first byte xSSSSEAA, then while bit 7: xFSSKAED (F: scope flags, unused here)
    s, e, a, k, d = (z >> 3) & 0xF, (z >> 2) & 1, z & 3, 0, 0
    n = 0
    while z & 0x80:
        if pos >= len(code):
            raise MpyError("truncated bytecode prelude")
        z = code[pos]
        pos += 1
        s |= (z & 0x30) << (2 * n)
        e |= (z & 0x02) << n
        a |= (z & 0x04) << n
        k |= ((z & 0x08) >> 3) << n
        d |= (z & 0x01) << n
        n += 1
    while True:  # n_info, n_cell: xIIIIIIC per byte
        if pos >= len(code):
            raise MpyError("truncated bytecode prelude")
        z = code[pos]
        pos += 1
        if not z & 0x80:
            break
    index, _ = _vuint(code, pos)
    name = qstrs[index] if index < len(qstrs) else f"<qstr {index}>"
    if isinstance(name, int):
        name = STATIC_QSTRS[name - 1] if 0 < name <= len(STATIC_QSTRS) else f"<qstr {name}>"
    return Prelude(
        name=prefix + name,
        n_state=s + 1,
        n_exc_stack=e,
        n_pos_args=a,
        n_kwonly_args=k,
        n_def_pos_args=d,
    )


def _vuint(data: bytes, pos: int) -> tuple[int, int]:
    value = 0
    while True:
        if pos >= len(data):
            raise MpyError("truncated .mpy (a variable-length integer runs past the end)")
        b = data[pos]
        pos += 1
        value = (value << 7) | (b & 0x7F)
        if not b & 0x80:
            return value, pos


class _Reader:
    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0
        # per asm raw code: (end of its kind vuint, start and end of its n_pos_args + type_sig fields)
        self.asm_fields: list[tuple[int, int, int]] = []

    def byte(self) -> int:
        if self.pos >= len(self.data):
            raise MpyError("truncated .mpy")
        self.pos += 1
        return self.data[self.pos - 1]

    def bytes(self, n: int) -> bytes:
        if self.pos + n > len(self.data):
            raise MpyError("truncated .mpy")
        self.pos += n
        return self.data[self.pos - n : self.pos]

    def uint(self) -> int:
        value, self.pos = _vuint(self.data, self.pos)
        return value

    def qstr(self) -> str | int:
        n = self.uint()
        if n & 1:  # a qstr built into the firmware, by number
            return n >> 1
        text = self.bytes(n >> 1).decode("utf-8")
        self.byte()  # NUL terminator
        return text

    def obj(self) -> object:
        kind = self.byte()
        if kind == OBJ_FUN_TABLE:
            return "<mp_fun_table>"
        if kind in (OBJ_NONE, OBJ_FALSE, OBJ_TRUE, OBJ_ELLIPSIS):
            return (None, False, True, ...)[kind - OBJ_NONE]
        n = self.uint()
        if kind == 10:  # tuple: n nested objects
            return tuple(self.obj() for _ in range(n))
        raw = self.bytes(n)
        if kind in (OBJ_STR, OBJ_BYTES):
            self.byte()  # NUL terminator
            return raw.decode("utf-8") if kind == OBJ_STR else raw
        if kind == OBJ_INT:
            return int(raw.decode())
        return raw.decode()  # float / complex, as their text

    def raw_code(self) -> RawCode:
        head = self.uint()
        head_end = self.pos
        kind = KINDS[head & 3]
        rc = RawCode(kind=kind, code=self.bytes(head >> 3))
        if kind == "native":
            self.uint()  # prelude offset
        elif kind in ("viper", "asm"):
            rc.scope_flags = self.uint()
            if kind == "asm":
                start = self.pos
                self.uint()  # n_pos_args
                self.uint()  # type signature
                self.asm_fields.append((head_end, start, self.pos))
        if kind == "viper":
            rodata_size = self.uint() if rc.scope_flags & FLAG_VIPERRODATA else 0
            rc.bss_size = self.uint() if rc.scope_flags & FLAG_VIPERBSS else 0
            rc.rodata = self.bytes(rodata_size)
        if head & 4:
            rc.children = [self.raw_code() for _ in range(self.uint())]
        if kind != "bytecode" and rc.scope_flags & FLAG_VIPERRELOC:
            rc.relocations = self.relocations()
        return rc

    def relocations(self) -> list[Relocation]:
        out: list[Relocation] = []
        where = (0, False)
        while (op := self.byte()) != 0xFF:
            if op & 1:
                addr = self.uint()
                where = (addr >> 1, bool(addr & 1))
            op >>= 1
            count = 1
            if op <= 5:
                if op & 1:
                    count = self.uint()
                target: str | int = ("text", "rodata", "bss")[op >> 1]
            elif op in (6, 7, 8):
                target = ("qstr_table", "obj_table", "fun_table")[op - 6]
            else:
                target = op - 9
            out.append(Relocation(offset=where[0] * 4, in_rodata=where[1], target=target, count=count))
            where = (where[0] + count, where[1])
        return out


def read(data: bytes) -> Mpy:
    """Parse a whole .mpy; raises MpyError on anything else."""
    return _parse(_Reader(bytes(data)))


def retag_asm_as_viper(data: bytes) -> bytes:
    """The same .mpy with every inline-assembler function stored as viper code.

    mpy-cross 1.29 assembles `@micropython.asm_xtensa` / `@micropython.asm_rv32` functions as raw code
    of kind "asm". A board makes a function object of that kind only when its firmware was built with
    the inline assembler (MICROPY_EMIT_INLINE_XTENSA / _RV32), which the stock ESP32 port is not: its
    py/emitglue.c then falls through to the bytecode branch and would run the machine code as bytecode.
    Every firmware that runs viper code loads the "viper" kind, which differs only in the calling
    convention: the code receives (function object, n_args, n_kw, args[]) instead of up to four
    converted arguments. So: kind bits 3 -> 2 and the asm-only n_pos_args and type_sig fields dropped;
    the kernels in firmware/edgenn_asm_*.py are written for the viper convention."""
    r = _Reader(bytes(data))
    module = _parse(r)
    if r.pos != len(data):
        raise MpyError(f"{len(data) - r.pos} unexpected bytes after the module's code")
    if not r.asm_fields:
        raise MpyError("no inline-assembler function in this .mpy")
    if _any_asm_with(module.module, FLAG_VIPERRELOC | FLAG_VIPERRODATA | FLAG_VIPERBSS):
        raise MpyError("an inline-assembler function with viper-only scope flags")
    out = bytearray()
    done = 0
    for head_end, cut, cut_end in r.asm_fields:
        out += data[done:head_end]
        out[-1] = (out[-1] & ~3) | KINDS.index("viper")  # the kind is the low bits of the vuint's last byte
        out += data[head_end:cut]
        done = cut_end
    return bytes(out + data[done:])


def _any_asm_with(rc: RawCode, flags: int) -> bool:
    return (rc.kind == "asm" and bool(rc.scope_flags & flags)) or any(
        _any_asm_with(c, flags) for c in rc.children
    )


def _parse(r: _Reader) -> Mpy:
    data = r.data
    if len(data) < 4 or r.byte() != ord("M"):
        raise MpyError("not a .mpy file (it must start with 'M'; compile the .py with mpy-cross)")
    major = r.byte()
    flags = r.byte()
    bits = r.byte()
    if major != 6:
        raise MpyError(f".mpy major version {major}; this reader understands 6 (MicroPython 1.19+)")
    if flags & 0x40:
        r.uint()  # architecture-specific flags (RISC-V extensions)
    arch_no = (flags >> 2) & 0xF
    arch = ARCHES[arch_no] if arch_no < len(ARCHES) else f"arch{arch_no}"
    n_qstr = r.uint()
    n_obj = r.uint()
    qstrs = [r.qstr() for _ in range(n_qstr)]
    objects = [r.obj() for _ in range(n_obj)]
    module = r.raw_code()
    return Mpy(
        version=(major, flags & 3),
        arch=arch,
        small_int_bits=bits,
        qstrs=qstrs,
        objects=objects,
        module=module,
    )


NATIVE_NODE_BYTES = 4  # ports/esp32/main.c: each committed block carries a next pointer (native_code_node_t)


def native_code_bytes(data: bytes) -> int:
    """Executable RAM a board takes when it imports this .mpy: every native, viper and asm function's
    machine code, each rounded up to 4 bytes plus a list node, as ports/esp32/main.c esp_native_code_commit
    allocates it (viper rodata and bss go to the GC heap: py/persistentcode.c). 0 for bytecode only."""

    def walk(rc: RawCode) -> int:
        own = 0
        if rc.kind != "bytecode":
            own = -(-len(rc.code) // 4) * 4 + NATIVE_NODE_BYTES
        return own + sum(walk(child) for child in rc.children)

    return walk(read(data).module)
