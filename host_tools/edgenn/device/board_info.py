"""Asking a MicroPython board what it is, through mpremote's raw-REPL transport (used as a library).

`open_board(port)` returns a connected `mpremote.transport_serial.SerialTransport` in the raw REPL
(or raises UserError with one line that says what to do); `probe(transport)` returns a `BoardInfo`:
MicroPython version, the `.mpy` format it accepts, free heap, free flash and the files at the root with
their sizes and SHA-256 (computed on the board).
"""

from __future__ import annotations

import ast
import contextlib
import fcntl
import io
import time
from dataclasses import dataclass, field

from mpremote.transport import TransportError, TransportExecError
from mpremote.transport_serial import SerialTransport

from edgenn.boards import profile_name_for
from edgenn.device.client import port_problem
from edgenn.errors import UserError

# sys.implementation._mpy bits 10..13 (MP_NATIVE_ARCH_*), named as mpy-cross -march names them.
MPY_ARCH_NAMES = {
    0: None,  # no native code: bytecode only
    1: "x86",
    2: "x64",
    3: "armv6",
    4: "armv6m",
    5: "armv7m",
    6: "armv7em",
    7: "armv7emsp",
    8: "armv7emdp",
    9: "xtensa",
    10: "xtensawin",
    11: "rv32imc",
    12: "rv64imc",
}
READ_TIMEOUT_S = 5
RAW_REPL_ATTEMPTS = 3


@dataclass(frozen=True)
class MpyFormat:
    version: int  # 6 for MicroPython >= 1.19
    sub_version: int  # 3 for >= 1.23; native code needs an exact match
    arch: str | None

    @classmethod
    def from_sys_mpy(cls, value: int) -> MpyFormat:
        return cls(value & 0xFF, (value >> 8) & 3, MPY_ARCH_NAMES.get((value >> 10) & 0xF, "unknown"))

    def __str__(self) -> str:
        return f"{self.version}.{self.sub_version} {self.arch or 'bytecode-only'}"


@dataclass
class BoardInfo:
    version: str  # e.g. "1.25.0"
    machine: str
    platform: str
    mpy: MpyFormat | None  # None: the board does not say (MicroPython < 1.19)
    heap_free: int
    flash_total: int
    flash_free: int
    files: dict[str, tuple[int, str]] = field(default_factory=dict)  # name -> (size, sha256 hex or "")
    vboard_profile: str | None = None  # the profile a virtual board emulates
    exec_free: int | None = None  # executable RAM for native code (largest free block); None: unknown
    exec_total: int | None = None  # ESP32: esp32.idf_heap_info(esp32.HEAP_EXEC) totals

    @property
    def is_virtual(self) -> bool:
        return self.vboard_profile is not None or self.platform == "linux"

    @property
    def likely_board(self) -> str:
        return profile_name_for(
            self.vboard_profile, self.platform, None if self.mpy is None else self.mpy.arch
        )


def open_board(port: str, baud: int = 115200, soft_reset: bool = True) -> SerialTransport:
    """Connect and enter the raw REPL. A soft reset first stops main.py and frees the heap."""
    try:
        # A read timeout: on a pty mpremote reads byte by byte, and without one a silent port hangs forever.
        transport = SerialTransport(port, baudrate=baud, timeout=READ_TIMEOUT_S)
    except (TransportError, ValueError):  # ValueError: a URL scheme pyserial does not know
        raise UserError(port_problem(port)) from None
    try:
        # the lock pyserial's exclusive=True takes: edgenn's other commands see the port as busy
        fcntl.flock(transport.serial.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except (AttributeError, ValueError, TypeError):
        pass  # socket:// and rfc2217:// have no descriptor to lock
    except OSError:
        _close_quietly(transport)
        raise UserError(port_problem(port)) from None
    for attempt in range(RAW_REPL_ATTEMPTS):
        printed = io.StringIO()  # mpremote prints what it read instead of the prompt; keep it off stdout
        try:
            with contextlib.redirect_stdout(printed):
                transport.enter_raw_repl(soft_reset=soft_reset)
            return transport
        except (TransportError, OSError) as exc:
            # A Ctrl-C that reaches a board still booting is a plain byte to the main.py that then
            # starts (its Ctrl-C handling is not on yet); the next attempt's Ctrl-C stops it. A port
            # where nothing answered at all is not tried again.
            answered = printed.getvalue().strip() not in ("", "b''")
            if answered and attempt + 1 < RAW_REPL_ATTEMPTS:
                time.sleep(0.3)
                continue
            _close_quietly(transport)
            if answered:
                # Something runs and prints, but Ctrl-C never stopped it: not a missing MicroPython
                raise UserError(
                    f"the board on {port} answers but does not stop for Ctrl-C, so its REPL cannot be "
                    f"reached (it printed {_last_printed(printed.getvalue())!r}): its main.py probably "
                    "calls micropython.kbd_intr(-1) or catches KeyboardInterrupt. Reset the board and send "
                    "Ctrl-C before main.py starts (e.g. `mpremote connect PORT` right after reset), then "
                    "remove or fix that main.py"
                ) from None
            raise UserError(
                f"no MicroPython REPL on {port} ({exc}); is MicroPython flashed (edgenn flash)?"
            ) from None
    raise AssertionError("unreachable")


def _last_printed(text: str) -> str:
    """The last line the board printed, from what mpremote wrote when the prompt did not come (it
    prints the bytes it read as a Python bytes literal)."""
    text = text.strip()
    try:
        data = ast.literal_eval(text) if text.startswith(("b'", 'b"')) else text.encode()
    except (ValueError, SyntaxError):
        data = text.encode()
    lines = [line for line in data.decode("utf-8", "replace").splitlines() if line.strip()]
    last = lines[-1].strip() if lines else ""
    return last if len(last) <= 60 else last[:57] + "..."


def close_board(transport: SerialTransport, restart: bool = False) -> None:
    """Leave the raw REPL; with restart, soft-reset from the friendly REPL so main.py runs again."""
    try:
        transport.exit_raw_repl()
        if restart:
            transport.serial.write(b"\x04")
        transport.serial.flush()
    except OSError:
        pass
    _close_quietly(transport)


def _close_quietly(transport: SerialTransport) -> None:
    try:
        transport.close()
    except OSError:  # the board went away (unplugged, powered off): nothing left to close
        pass


def board_eval(transport: SerialTransport, code: str):
    """Run `code` on the board; its last printed line is a Python literal, returned parsed."""
    try:
        out = transport.exec(code)
    except TransportExecError as exc:
        last = exc.error_output.strip().splitlines()[-1]
        raise UserError(f"the board failed running a query: {last}") from None
    lines = out.decode(errors="replace").strip().splitlines()
    return ast.literal_eval(lines[-1]) if lines else None


_PROBE = """
import sys, os, gc
gc.collect()
try:
    _s = os.statvfs('/')
    _fs = (_s[0] * _s[2], _s[0] * _s[3])
except Exception:
    _fs = (0, 0)
_v = sys.implementation.version
_x = None
try:
    import edgenn_vboard
    _vb = edgenn_vboard.board
    _x = (edgenn_vboard.exec_bytes, edgenn_vboard.exec_free())
except ImportError:
    _vb = None
    try:
        import esp32
        _h = esp32.idf_heap_info(esp32.HEAP_EXEC)
        _x = (sum([h[0] for h in _h]), max([h[2] for h in _h] or [0]))
    except (ImportError, AttributeError):
        pass
print(repr(('%d.%d.%d' % (_v[0], _v[1], _v[2]), getattr(sys.implementation, '_machine', ''), sys.platform,
    getattr(sys.implementation, '_mpy', None), gc.mem_free(), _fs[0], _fs[1], _vb, _x)))
"""

_LIST_AND_HASH = """
import os
try:
    import hashlib, binascii
    def _h(n):
        h = hashlib.sha256()
        b = bytearray(512)
        with open(n, 'rb') as f:
            while True:
                k = f.readinto(b)
                if not k:
                    break
                h.update(b if k == 512 else b[:k])
        return binascii.hexlify(h.digest()).decode()
except ImportError:
    def _h(n):
        return ''
_r = {}
for _e in os.ilistdir():
    if _e[1] != 0x4000:
        _n = _e[0]
        _r[_n] = (os.stat(_n)[6], _h(_n) if _n in _want else '')
print(repr(_r))
"""


def list_files(transport: SerialTransport, hash_names: set[str]) -> dict[str, tuple[int, str]]:
    """Files at the board's root: name -> (size, sha256 hex); hashes only for `hash_names`."""
    return board_eval(transport, f"_want = {sorted(hash_names)!r}\n" + _LIST_AND_HASH)


def probe(transport: SerialTransport, hash_names: set[str] | None = None) -> BoardInfo:
    version, machine, platform, mpy, heap_free, fs_total, fs_free, vboard, exec_ram = board_eval(
        transport, _PROBE
    )
    files = list_files(transport, hash_names or set())
    return BoardInfo(
        version=version,
        machine=machine,
        platform=platform,
        mpy=None if mpy is None else MpyFormat.from_sys_mpy(mpy),
        heap_free=heap_free,
        flash_total=fs_total,
        flash_free=fs_free,
        files=files,
        vboard_profile=vboard,
        exec_free=None if exec_ram is None else exec_ram[1],
        exec_total=None if exec_ram is None else exec_ram[0],
    )
