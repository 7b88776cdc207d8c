"""The host side of the board's serial protocol (firmware/main.py): the one module that speaks it.

The protocol is line-oriented: the host writes one request line, the board writes one JSON object per
request line. Requests are comma-separated feature values, `q C1,C2,...` (input codes 0..255, raw int8
outputs back), `info` and `help`. When main.py starts it prints a banner `{"ready": true, ...}`.
Anything else the board prints (boot messages, the REPL, a user's prints) is not JSON and is skipped.

`BoardClient` opens any pyserial URL (`/dev/ttyUSB0`, a pty path from `edgenn vboard`,
`socket://host:port`, `rfc2217://...`), makes sure the server is running (soft-resetting a board that
sits at the REPL), and sends requests one at a time (`request`) or pipelined (`stream`).
"""

from __future__ import annotations

import argparse
import fcntl
import json
import math
import os
import re
import stat
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import serial

from edgenn.errors import UserError

DEFAULT_BAUD = 115200
# An ESP32's console receive buffer is ~256 bytes; keep the unanswered request bytes below it so a
# pipelined stream never overruns the board while it is busy computing a reply.
DEFAULT_WINDOW_BYTES = 192
CTRL_B = b"\x02"  # raw REPL -> friendly REPL
CTRL_C = b"\x03"  # interrupt whatever runs
CTRL_D = b"\x04"  # at the friendly REPL: soft reset (boot.py, then main.py)
# The one grammar of a value on the wire, on both sides (firmware/edgenn_server.py's _number_ok is the
# board's copy; tests/number_cases.py holds both to one table): stricter than float(), which also reads
# "nan", "inf" and "1_0" -- and than MicroPython's float(), which reads "e", "." and "1e" as 0.0 or 1.0.
NUMBER = re.compile(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
VALUE_MAX = 32  # characters in one value (the board's field buffer)
_REPL_CHATTER = ("MPY: soft reboot", "MicroPython v", 'Type "help()"', ">>>", "raw REPL")


class _AtPrompt(Exception):
    """The board printed its friendly REPL prompt after a soft reset: nothing runs main.py's server."""


class BoardClient:
    """A connection to a board running edgenn's main.py. Use as a context manager."""

    def __init__(
        self,
        port: str,
        baud: int = DEFAULT_BAUD,
        timeout: float = 5.0,
        window_bytes: int = DEFAULT_WINDOW_BYTES,
    ) -> None:
        self.port = port
        self.baud = baud
        self.timeout = timeout
        self.window_bytes = window_bytes
        self.banner: dict[str, Any] | None = None
        self.noise: deque[str] = deque(maxlen=50)  # recent non-JSON lines, for error messages
        self._serial: serial.SerialBase | None = None
        self._pending = b""
        self.bytes_out = 0  # link traffic, for rows/s against what the baud rate allows
        self.bytes_in = 0
        self._rebooted = False  # "soft reboot" seen since the last reset
        self._line_open = True  # what was sent before us may have left a partial line on the board
        self._stop_at_prompt = False  # while waiting for the ready line: a REPL prompt ends the wait

    # ---- connection ----------------------------------------------------------------------------

    def open(self) -> BoardClient:
        try:
            # exclusive: a second edgenn command on the same port fails here instead of stealing replies
            self._serial = serial.serial_for_url(self.port, baudrate=self.baud, timeout=0.05, exclusive=True)
        except (serial.SerialException, OSError, ValueError):
            raise UserError(port_problem(self.port)) from None
        return self

    def close(self) -> None:
        if self._serial is not None:
            self._serial.close()
            self._serial = None

    def __enter__(self) -> BoardClient:
        if self._serial is None:
            self.open()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def serial(self) -> serial.SerialBase:
        if self._serial is None:
            self.open()
        assert self._serial is not None
        return self._serial

    def connect(self, reset: bool = False, reset_timeout: float = 10.0) -> dict[str, Any]:
        """Make sure main.py is serving; returns its `info` reply.

        Without `reset`, first asks the running server (`info`). If nothing answers -- the board sits
        at the REPL, e.g. after mpremote -- or `reset` is set, soft-resets the board and waits for the
        ready banner."""
        if not reset:
            self._drain(0.1)
            self._write(b"\ninfo\n")  # the "\n" ends a partial line; replies without "protocol" are skipped
            self._line_open = False
            try:
                return self._read_until(lambda d: "protocol" in d, 1.5, "info")
            except UserError:
                pass
        banner = self.soft_reset(reset_timeout)
        if "edgenn" not in banner:
            raise UserError(
                f"the board on {self.port} runs some other main.py (it printed "
                f"{_shorten(json.dumps(banner))}); "
                f"put edgenn's prediction server back with `edgenn deploy MODEL.enn --port {self.port}`"
            )
        self._write(b"info\n")
        return self._read_until(lambda d: "protocol" in d, self.timeout, "info reply")

    def soft_reset(self, timeout: float = 10.0) -> dict[str, Any]:
        """Interrupt what runs, leave the raw REPL, soft-reset, and wait for main.py's ready banner.

        Tried up to three times: control bytes that reach a program which is just starting (before the
        board routes Ctrl-C to it) are plain data to it, and the next attempt's Ctrl-C does stop it."""
        deadline = time.monotonic() + timeout
        for attempt in range(3):
            self.send_soft_reset(echo=False)
            wait = (deadline - time.monotonic()) / (3 - attempt)
            self._rebooted = False
            self._stop_at_prompt = True
            self.noise.clear()
            try:
                self.banner = self._read_until(lambda d: "ready" in d, max(wait, 0.5), "ready banner")
                return self.banner
            except _AtPrompt:
                # the board rebooted and came back to its REPL: no main.py, or one that ended
                said = [n for n in self.noise if not n.startswith(_REPL_CHATTER)]
                ended = f"; it printed {_shorten(said[-1])!r}" if said else ""
                raise UserError(
                    f"no edgenn server on {self.port}: after a soft reset the board is at the MicroPython "
                    f"REPL (no main.py, or main.py ended{ended}). Deploy one with "
                    f"`edgenn deploy MODEL.enn --port {self.port}`"
                ) from None
            except UserError:
                continue
            finally:
                self._stop_at_prompt = False
        raise UserError(
            f"no edgenn server on {self.port}: the board did not print the ready line within "
            f"{timeout:.0f} s of a soft reset{self._noise_hint()}. Deploy one with "
            f"`edgenn deploy MODEL.enn --port {self.port}`."
        )

    def send_soft_reset(self, echo: bool = True) -> None:
        """Ctrl-C (stop what runs), Ctrl-B (leave the raw REPL), Ctrl-D (soft reset at the friendly REPL).
        echo=False throws away what the board prints before the reset."""
        self._pending = b""
        # Two Ctrl-Cs apart: one that lands while a program is still starting (before the board routes
        # Ctrl-C to it as KeyboardInterrupt) is a plain byte to it; the second one then stops it.
        self._write(CTRL_C)
        time.sleep(0.25)
        self._write(CTRL_C)
        time.sleep(0.1)
        self._write(CTRL_B)
        time.sleep(0.1)
        if not echo:
            self._drain(0.2)
        self._write(CTRL_D)

    # ---- requests ------------------------------------------------------------------------------

    def request(self, line: str) -> dict[str, Any]:
        """Send one request line, return the board's JSON reply (which may be {"error": ...})."""
        data = _encode(line)
        self._end_partial_line()
        self._write(data)
        return self.read_reply(line)

    def stream(self, lines: Iterable[str]) -> Iterator[dict[str, Any]]:
        """Pipelined requests: yields one reply per line, in order, keeping several lines in flight
        (at most `window_bytes` unanswered bytes, and always at least one line)."""
        in_flight: deque[tuple[str, int]] = deque()
        unanswered = 0
        for line in lines:
            data = _encode(line)
            self._end_partial_line()
            while in_flight and unanswered + len(data) > self.window_bytes:
                sent, size = in_flight.popleft()
                unanswered -= size
                yield self.read_reply(sent)
            self._write(data)
            in_flight.append((line, len(data)))
            unanswered += len(data)
        while in_flight:
            sent, _ = in_flight.popleft()
            yield self.read_reply(sent)

    def read_model_file(self) -> bytes:
        """The deployed .enn file, read back through the server (`model OFFSET` requests)."""
        data = bytearray()
        while True:
            reply = self.request(f"model {len(data)}")
            if "error" in reply:
                raise UserError(f"cannot read the model back from the board: {reply['error']}")
            chunk = bytes.fromhex(reply["hex"])
            data += chunk
            if not chunk or len(data) >= int(reply["size"]):
                return bytes(data)

    def lines(self, until: float | None = None) -> Iterator[str]:
        """Every line the board prints, decoded leniently, until the port closes or the monotonic
        deadline `until` passes (for `monitor`)."""
        while True:
            raw = self._readline(until, lost_ok=True)
            if raw is None:
                return
            yield raw.decode("utf-8", "replace").rstrip("\r\n")

    # ---- internals -----------------------------------------------------------------------------

    def _end_partial_line(self) -> None:
        """Before the first request: a bare line end closes whatever a person or a killed program left
        half-typed (else it would be glued onto our request), and its reply, if any, is thrown away.
        The server answers an empty line with nothing."""
        if self._line_open:
            self._write(b"\n")
            self._drain(0.2)
            self._line_open = False

    def _write(self, data: bytes) -> None:
        try:
            self.serial.write(data)
            self.bytes_out += len(data)
        except (serial.SerialException, OSError) as exc:
            raise UserError(f"lost the serial port {self.port}: {exc}") from None

    def _readline(self, deadline: float | None, lost_ok: bool = False) -> bytes | None:
        """One line (with its end) or None at the deadline (None: wait for ever). lost_ok: a port that
        goes away ends the lines (None) instead of raising."""
        while True:
            cut = self._pending.find(b"\n")
            if cut >= 0:
                line, self._pending = self._pending[: cut + 1], self._pending[cut + 1 :]
                if b"soft reboot" in line:
                    self._rebooted = True
                return line
            if self._stop_at_prompt and self._rebooted and self._pending.endswith(b">>> "):
                raise _AtPrompt
            if deadline is not None and time.monotonic() > deadline:
                return None
            try:
                chunk = self.serial.read(max(1, self.serial.in_waiting))
            except (serial.SerialException, OSError) as exc:
                if lost_ok:
                    return None  # the port went away: the end of a monitor session
                raise UserError(f"lost the serial port {self.port}: {exc}") from None
            self.bytes_in += len(chunk)
            self._pending += chunk

    def _drain(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while self._readline(deadline) is not None:
            pass
        self._pending = b""

    def _read_json(self, deadline: float) -> dict[str, Any] | None:
        while True:
            raw = self._readline(deadline)
            if raw is None:
                return None
            text = raw.decode("utf-8", "replace").strip()
            if text.startswith("{"):
                try:
                    obj = json.loads(text)
                except json.JSONDecodeError:
                    obj = None
                if isinstance(obj, dict):
                    return obj
            if text:
                self.noise.append(text)

    def _read_until(self, wanted: Callable[[dict[str, Any]], bool], timeout: float, what: str) -> dict:
        deadline = time.monotonic() + timeout
        while True:
            obj = self._read_json(deadline)
            if obj is None:
                raise UserError(f"no {what} from {self.port} within {timeout:.1f} s{self._noise_hint()}")
            if wanted(obj):
                return obj

    def read_reply(self, sent: str) -> dict[str, Any]:
        obj = self._read_json(time.monotonic() + self.timeout)
        if obj is None:
            raise UserError(
                f"no reply from the board on {self.port} within {self.timeout:.1f} s to "
                f"{_shorten(sent)!r}{self._noise_hint()}. Is edgenn's main.py running? "
                f"(`edgenn monitor --port {self.port} --reset` shows what the board prints)"
            )
        if "ready" in obj:
            self.banner = obj
            raise UserError(f"the board on {self.port} restarted while answering {_shorten(sent)!r}")
        return obj

    def _noise_hint(self) -> str:
        if not self.noise:
            return ""
        return f" (last thing it printed: {_shorten(self.noise[-1])!r})"


def _encode(line: str) -> bytes:
    """One request line. Every control character is refused, not only CR and LF: Ctrl-C (0x03) would
    stop the server and leave the rest of the line to the board's REPL, Ctrl-D would reset it."""
    for i, ch in enumerate(line):
        if ord(ch) < 0x20 or ord(ch) == 0x7F:
            raise ValueError(
                f"a request is one line of printable text: control character 0x{ord(ch):02x} at {i}"
            )
    return line.encode("utf-8") + b"\n"


def parse_number(text: str) -> float | None:
    """A value as the board reads it (NUMBER, finite, at most VALUE_MAX characters), or None."""
    if len(text) > VALUE_MAX or NUMBER.fullmatch(text) is None:
        return None
    value = float(text)
    return value if math.isfinite(value) else None


def _shorten(text: str, limit: int = 60) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def format_features(values: Iterable[float]) -> str:
    """A feature line the board parses back to the same doubles: repr is the shortest exact form, and
    whole numbers go without ".0" (fewer bytes on the wire, same value)."""
    return ",".join(_number_text(float(v)) for v in values)


def _number_text(v: float) -> str:
    if v.is_integer() and abs(v) < 1e15:
        return str(int(v))
    return repr(v)


# pyserial's URL handlers (serial.urlhandler.protocol_*) that make sense for a board
URL_SCHEMES = ("socket", "rfc2217", "loop", "spy", "alt", "hwgrep")


def port_problem(port: str) -> str:
    """Why a port cannot be opened, in one line that says what to do; the same in every command."""
    if "://" in port:
        scheme = port.split("://", 1)[0]
        if scheme not in URL_SCHEMES:
            return (
                f"{port} is not a port: {scheme}:// is not a kind of URL this tool opens (use a device "
                "path such as /dev/ttyUSB0, socket://HOST:PORT or rfc2217://HOST:PORT)"
            )
        return f"cannot connect to {port}: is the server behind it running?"
    if not os.path.exists(port):
        return f"serial port {port} does not exist: is the board plugged in (or `edgenn vboard` running)?"
    if not stat.S_ISCHR(os.stat(port).st_mode):
        return (
            f"{port} is not a serial device: pass the board's port (/dev/ttyUSB0, /dev/ttyACM0, COM3) or "
            "the path `edgenn vboard` printed"
        )
    try:
        fd = os.open(port, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
    except PermissionError:
        return f"no permission to open {port}: add yourself to the dialout group (or uucp), then log in again"
    except OSError as exc:
        return f"cannot open {port}: {exc.strerror}"
    if not os.isatty(fd):  # /dev/null, /dev/zero, a sound card: character devices, not serial ports
        os.close(fd)
        return (
            f"{port} is not a serial port (it is not a terminal device): pass the board's port "
            "(/dev/ttyUSB0, /dev/ttyACM0, COM3) or the path `edgenn vboard` printed"
        )
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # what pyserial's exclusive=True takes
        fcntl.flock(fd, fcntl.LOCK_UN)
    except OSError:
        return f"{port} is busy: close the other program using it (mpremote, a terminal, edgenn monitor)"
    finally:
        os.close(fd)
    return f"cannot open {port}: is another program (mpremote, a serial monitor, edgenn monitor) using it?"


def add_port_argument(parser: argparse.ArgumentParser) -> None:
    """--port, defaulting to $EDGENN_PORT: every command that talks to a board takes it the same way."""
    parser.add_argument(
        "--port",
        default=os.environ.get("EDGENN_PORT"),
        help="serial port: /dev/ttyUSB0, COM3, the path `edgenn vboard` printed, socket://HOST:PORT "
        "(default: $EDGENN_PORT)",
    )


def require_port(port: str | None) -> str:
    if not port:
        raise UserError(
            "which board? pass --port PORT (or set EDGENN_PORT); `edgenn vboard` starts a virtual one"
        )
    return port


def add_port_arguments(parser: argparse.ArgumentParser) -> None:
    """--port/--baud/--timeout, shared by the commands that talk to main.py."""
    add_port_argument(parser)
    parser.add_argument("--baud", type=int, default=DEFAULT_BAUD, help="baud rate (default 115200)")
    parser.add_argument(
        "--timeout", type=float, default=5.0, help="seconds to wait for each reply (default 5)"
    )


def client_from_args(args: argparse.Namespace) -> BoardClient:
    return BoardClient(require_port(args.port), baud=args.baud, timeout=args.timeout)
