# The board side of the virtual board. Runs INSIDE the MicroPython unix port, never in CPython.
#
# The unix port's own REPL is not a board's: raw Ctrl-D exits the process, there is no boot.py/main.py,
# "/" is the host's root. This script is what a board's firmware does in C (pyexec.c): friendly REPL,
# paste mode, raw REPL and raw-paste, soft reset, boot.py then main.py, over stdin/stdout, with the flash
# directory mounted at "/". The supervisor (vboard.py) turns "\n" into "\r\n", turns Ctrl-C into SIGINT
# while user code runs, and restarts this process on a soft reset (exit codes below).
#
# argv: script flash_dir mode(friendly|raw) boot(power|soft) board_name flash_bytes first_area_bytes
#       area_bytes exec_bytes status_fd ack_fd
#
# status channel (fd status_fd, to the supervisor): b"E" = user code is running (Ctrl-C means SIGINT),
# b"I" = waiting for REPL input (Ctrl-C is a byte). Every b"I" is acknowledged by one byte on ack_fd;
# once acknowledged, no SIGINT is in flight, so a late Ctrl-C can never land in this script's own code.
# b"N/path.mpy\n" = how much native code does this .mpy hold? answered b"<bytes>\n" on ack_fd (the
# supervisor reads it with edgenn's .mpy reader).
#
# An ESP32's memory (boards.py): the GC heap is areas of at most area_bytes and no block spans two, so
# at power-on the free heap is cut into runs of area_bytes by one-block "fences" (_split_heap); native
# code from .mpy files goes to executable RAM outside the GC heap, exec_bytes of it, freed only by a
# reset: every import of a .mpy counts its machine code (_import) and fails as the board's does.

import builtins
import gc
import io
import os
import sys

EXIT_SOFT_RESET_FRIENDLY = 10
EXIT_SOFT_RESET_RAW = 11
EXIT_HARD_RESET = 12

CTRL_A = 1
CTRL_B = 2
CTRL_C = 3
CTRL_D = 4
CTRL_E = 5
RAW_PASTE_WINDOW = 256  # bytes; sent as u16 LE (0x00 0x01: no byte the supervisor would translate)
BLOCK = 4096

_script_name = sys.argv[0]
_flash_dir = sys.argv[1]
_mode = sys.argv[2]
_boot = sys.argv[3]
_board = sys.argv[4]
_flash_bytes = int(sys.argv[5])
_first_area_bytes = int(sys.argv[6])  # this script's own heap included
_area_bytes = int(sys.argv[7])
_exec_bytes = int(sys.argv[8])
_status = open("/dev/fd/" + sys.argv[9], "wb")
_ack = open("/dev/fd/" + sys.argv[10], "rb")
_exec_used = 0
_fences = []
_builtin_import = builtins.__import__
_in = sys.stdin.buffer
_out = sys.stdout.buffer
_acks_wanted = 0
_acks_got = 0


def _write(s):
    _out.write(s.encode() if isinstance(s, str) else s)


class _SizedFile(io.IOBase):
    # A writable file on a flash of fixed size: OSError 28 (ENOSPC) once it is full, as littlefs says.
    def __init__(self, f, room):
        self._f = f
        self._room = room

    def write(self, data):
        if len(data) > self._room:
            raise OSError(28)
        self._room -= len(data)
        return self._f.write(data)

    def read(self, *n):
        return self._f.read(*n)

    def readinto(self, buf):
        return self._f.readinto(buf)

    def readline(self):
        return self._f.readline()

    def seek(self, *args):
        return self._f.seek(*args)

    def tell(self):
        return self._f.tell()

    def flush(self):
        return self._f.flush()

    def ioctl(self, request, arg):
        return 0

    def close(self):
        self._f.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self._f.close()


class Flash:
    # The board's filesystem: a host directory mounted at "/", reporting the profile's capacity
    # (os.statvfs, `mpremote df`) instead of the host disk's. Paths are resolved here, with ".." stopping
    # at "/", so that nothing on the board can reach host files outside the flash directory.
    def __init__(self, root, capacity):
        self._vfs = os.VfsPosix(root)
        self._capacity = capacity
        self._cwd = "/"

    def mount(self, readonly, mkfs):
        pass

    def umount(self):
        pass

    def abs(self, path):
        return self._abs(path)

    def _abs(self, path):
        if not path.startswith("/"):
            path = self._cwd + "/" + path
        parts = []
        for part in path.split("/"):
            if part == "..":
                if parts:
                    parts.pop()
            elif part and part != ".":
                parts.append(part)
        return "/" + "/".join(parts)

    def open(self, path, mode):
        path = self._abs(path)
        f = self._vfs.open(path, mode)
        if "r" in mode and "+" not in mode:
            return f
        # Writable: the file may grow by the free blocks, plus what is left of its own last block.
        free_blocks = self._capacity // BLOCK - 2 - self._blocks_used("/")
        size = self._vfs.stat(path)[6]
        room = free_blocks * BLOCK + max(1, (size + BLOCK - 1) // BLOCK) * BLOCK - size
        return _SizedFile(f, room)

    def stat(self, path):
        return self._vfs.stat(self._abs(path))

    def mkdir(self, path):
        self._vfs.mkdir(self._abs(path))

    def rmdir(self, path):
        self._vfs.rmdir(self._abs(path))

    def remove(self, path):
        self._vfs.remove(self._abs(path))

    def rename(self, old, new):
        # VfsPosix builds root-prefixed paths in one shared buffer, so a rename of two absolute paths
        # renames the second onto itself; paths relative to the process cwd (the flash directory) work.
        self._vfs.rename("." + self._abs(old), "." + self._abs(new))

    def chdir(self, path):
        target = self._abs(path)
        if not self._vfs.stat(target)[0] & 0x4000:
            raise OSError(20)  # ENOTDIR
        self._cwd = target

    def getcwd(self):
        return self._cwd

    def _blocks_used(self, path):
        used = 1  # the directory itself
        for entry in self._vfs.ilistdir(path):
            child = path + "/" + entry[0] if path != "/" else "/" + entry[0]
            if entry[1] == 0x4000:
                used += self._blocks_used(child)
            else:
                size = self._vfs.stat(child)[6]
                used += max(1, (size + BLOCK - 1) // BLOCK)  # littlefs: a file takes whole blocks
        return used

    def ilistdir(self, path):
        # littlefs reports sizes in ilistdir (mpremote ls shows them); VfsPosix does not
        path = self._abs(path)
        for entry in self._vfs.ilistdir(path):
            size = 0
            if entry[1] != 0x4000:
                size = self._vfs.stat(path.rstrip("/") + "/" + entry[0])[6]
            yield (entry[0], entry[1], 0, size)

    def statvfs(self, path):
        total = self._capacity // BLOCK
        free = max(0, total - 2 - self._blocks_used("/"))  # 2 superblocks
        return (BLOCK, BLOCK, total, free, free, 0, 0, 0, 0, 255)

    def __repr__(self):
        return "<VfsLfs2>"


def _exec_free():
    return max(0, _exec_bytes - _exec_used) if _exec_bytes else None


def _exec_used_bytes():
    return _exec_used


class _VBoardModule:
    # `import edgenn_vboard` tells host tools (deploy, doctor) which profile this virtual board emulates,
    # and what an ESP32's esp32.idf_heap_info(esp32.HEAP_EXEC) and mem_info() would say.
    board = _board
    flash_bytes = _flash_bytes
    area_bytes = _area_bytes
    exec_bytes = _exec_bytes
    exec_free = staticmethod(_exec_free)
    exec_used = staticmethod(_exec_used_bytes)


def _split_heap(first, area):
    # Cut the free heap as an ESP32's GC areas cut it: the first area has `first` bytes free after boot
    # (this script's own heap lies below them), the others are at most `area` bytes. Take a block up to
    # the end of an area, put a one-block fence right after it (small holes below are plugged first: the
    # allocator takes the lowest free block), repeat, then give the blocks back.
    import uctypes

    gc.collect()
    fillers = []
    plugs = []
    _fences.append(None)  # the list's first item array, allocated before the fillers
    _fences.pop()
    size = first  # the first area's free space after boot: this script's own heap is below it
    while size > 64:
        try:
            filler = bytearray(size - 64)
        except MemoryError:
            break
        fillers.append(filler)
        end = uctypes.addressof(filler) + len(filler)
        try:
            while True:
                fence = object()
                if id(fence) > end:
                    _fences.append(fence)
                    break
                plugs.append(fence)  # landed in a hole below: keep it there until the fences stand
        except MemoryError:
            break
        size = area
    fillers = None
    plugs = None
    gc.collect()


def _native_size(path):
    # the supervisor reads the .mpy (it knows the format); answers with the bytes of machine code
    _status.write(b"N" + path.encode() + b"\n")
    text = b""
    while True:
        c = _ack.read(1)
        if not c or c == b"\n":
            break
        text += c
    return int(text or b"0")


def _find_module_file(name):
    rel = name.replace(".", "/")
    for d in sys.path:
        if d == ".frozen":
            continue
        base = (d.rstrip("/") + "/" if d else "") + rel
        for ext in (".py", ".mpy"):  # a foo.py beside foo.mpy wins the import
            try:
                os.stat(base + ext)
                return base + ext
            except OSError:
                pass
    return None


def _import(name, *args):
    global _exec_used
    if _exec_bytes and name not in sys.modules and (len(args) < 4 or not args[3]):
        path = _find_module_file(name)
        if path is not None and path.endswith(".mpy"):
            n = _native_size(_FLASH.abs(path))
            if n and _exec_used + n > _exec_bytes:
                # what ports/esp32/main.c esp_native_code_commit raises (m_malloc_fail)
                raise MemoryError(f"memory allocation failed, allocating {n} bytes for native code")
            module = _builtin_import(name, *args)
            _exec_used += n
            return module
    return _builtin_import(name, *args)


_FLASH = Flash(_flash_dir, _flash_bytes)


def _mount_flash():
    os.umount("/")
    os.mount(_FLASH, "/")
    os.chdir("/")
    sys.path.clear()
    sys.path.extend(["", ".frozen", "/lib"])


def _set_running():
    _status.write(b"E")


def _set_idle():
    # Tell the supervisor that user code is over, and wait until it has seen it: after the ack no
    # SIGINT can still be on its way. An interrupt that raced with the end of the code surfaces here.
    global _acks_wanted, _acks_got
    _status.write(b"I")
    _acks_wanted += 1
    while _acks_got < _acks_wanted:
        _ack.read(1)
        _acks_got += 1


def _finish_user_code(err):
    # Called after user code returned or raised; returns the exception to report (or None).
    while True:
        try:
            _set_idle()
            for _ in (0, 1):  # a jump: a pending KeyboardInterrupt is raised here, inside the try
                pass
            return err
        except KeyboardInterrupt as late:
            if err is None:
                err = late


def _print_exception(e):
    # A board's traceback shows the user's frames only; drop this script's frames.
    buf = io.StringIO()
    sys.print_exception(e, buf)
    for line in buf.getvalue().split("\n"):
        if line and _script_name not in line:
            _write(line + "\n")


_globals = {"__name__": "__main__"}


class _Reset(BaseException):
    # Raised by machine.reset()/soft_reset() in user code; the REPL then restarts the interpreter.
    def __init__(self, hard):
        self.hard = hard


class _Machine:
    # The unix port's `machine` plus what a board's has and the virtual board can honour.
    def __init__(self, real):
        self._real = real

    def __getattr__(self, name):
        if self._real is None:
            raise AttributeError(name)
        return getattr(self._real, name)

    def reset(self):
        raise _Reset(True)

    def soft_reset(self):
        raise _Reset(False)


def _run_source(source, filename, mode):
    # Compile and run user code in the board's __main__ namespace; returns the exception or None.
    err = None
    _set_running()
    try:
        exec(compile(source, filename, mode), _globals)
    except BaseException as e:  # noqa: B036 - a board reports everything, KeyboardInterrupt included
        err = e
    err = _finish_user_code(err)
    if isinstance(err, _Reset) and err.hard:  # at once, no more output, as a board's CPU reset
        _status.close()
        sys.exit(EXIT_HARD_RESET)  # the supervisor powers on a fresh interpreter: boot.py, main.py
    return err


def _run_file(name):
    try:
        with open(name) as f:
            source = f.read()
    except OSError:
        return
    err = _run_source(source, name, "exec")
    if isinstance(err, _Reset):
        _soft_reset(_mode)  # boot.py/main.py run before the REPL this process started in
    if err is not None and not isinstance(err, SystemExit):
        _print_exception(err)
    gc.collect()


def _soft_reset(mode):
    _write("MPY: soft reboot\n")
    _status.close()
    sys.exit(EXIT_SOFT_RESET_RAW if mode == "raw" else EXIT_SOFT_RESET_FRIENDLY)


def _read_byte():
    b = _in.read(1)
    if not b:
        sys.exit(0)  # the supervisor closed stdin: power off
    return b[0]


# ---- raw REPL -------------------------------------------------------------------------------------


class _RawPasteSource:
    # Reads raw-paste data with flow control, exactly as mp_reader_stdin does on a board.
    def __init__(self):
        self.remain = RAW_PASTE_WINDOW
        self.interrupted = False

    def read_all(self):
        data = bytearray()
        while True:
            c = _read_byte()
            if c == CTRL_C or c == CTRL_D:
                _write(b"\x04")  # end of data acknowledged
                self.interrupted = c == CTRL_C
                return bytes(data)
            data.append(c)
            self.remain -= 1
            if self.remain == 0:
                _write(b"\x01")  # another window may be sent
                self.remain = RAW_PASTE_WINDOW


def _exec_raw(source):
    err = _run_source(source, "<stdin>", "exec")
    _write(b"\x04")
    if err is not None and not isinstance(err, (SystemExit, _Reset)):
        _print_exception(err)
    _write(b"\x04")
    if isinstance(err, _Reset):
        _soft_reset("raw")


def raw_repl():
    # Returns "friendly" on Ctrl-B; soft reset exits the process.
    _write("raw REPL; CTRL-B to exit\n")
    while True:
        line = bytearray()
        _write(">")
        while True:
            c = _read_byte()
            if c == CTRL_A:
                if len(line) == 2 and line[0] == CTRL_E:
                    if line[1] != ord("A"):
                        _write(b"R\x00")
                        line = bytearray()
                        continue
                    _write(b"R\x01" + bytes((RAW_PASTE_WINDOW & 0xFF, RAW_PASTE_WINDOW >> 8)))
                    src = _RawPasteSource()
                    source = src.read_all()
                    if src.interrupted:
                        _write(b"\x04")
                        _print_exception(KeyboardInterrupt())
                        _write(b"\x04")
                    else:
                        _exec_raw(source)
                    line = bytearray()
                    _write(">")
                    continue
                _write("raw REPL; CTRL-B to exit\n")
                line = bytearray()
                _write(">")
            elif c == CTRL_B:
                _write("\n")
                return "friendly"
            elif c == CTRL_C:
                line = bytearray()
            elif c == CTRL_D:
                break
            else:
                line.append(c)
        _write("OK")
        if not line:
            _write("\n")
            _soft_reset("raw")
        _exec_raw(bytes(line))


# ---- friendly REPL --------------------------------------------------------------------------------

_COMPOUND = ("if", "while", "for", "def", "class", "try", "with", "async", "@", "elif", "else", "match")


def _needs_more(source):
    # The friendly REPL's "..." rule (as repl.c): open brackets or strings, a trailing ":" or "\",
    # or a compound statement that has not been closed with an empty line.
    depth = 0
    quote = None
    i = 0
    n = len(source)
    while i < n:
        ch = source[i]
        if quote:
            if ch == "\\":
                i += 1
            elif source.startswith(quote, i):
                i += len(quote) - 1
                quote = None
        elif ch == "#":
            while i < n and source[i] != "\n":
                i += 1
        elif ch in "'\"":
            quote = ch * 3 if source.startswith(ch * 3, i) else ch
            i += len(quote) - 1
        elif ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth -= 1
        i += 1
    if quote or depth > 0:
        return True
    last = source.split("\n")[-1]
    if last.rstrip().endswith(":") or last.endswith("\\"):
        return True
    first = source.lstrip().split("\n")[0]
    word = first.split(" ")[0].split("(")[0].split(":")[0]
    if first.startswith("@") and last.strip():
        return True  # a decorator: the definition follows
    if "\n" in source and word in _COMPOUND and last.strip():
        return True
    return False


def _banner():
    v = sys.implementation.version
    release = f"v{v[0]}.{v[1]}.{v[2]}"
    if len(v) > 3 and v[3]:
        release += "-" + v[3]
    date = sys.version.split(" on ")[-1] if " on " in sys.version else ""
    board = f"edgenn virtual board ({_board} profile) with x64"
    return f"MicroPython {release} on {date}; {board}\n" + 'Type "help()" for more information.\n'


def _text(raw):
    # Bytes typed at the REPL -> str; line noise (not UTF-8) becomes "?" instead of an exception.
    try:
        return raw.decode()
    except UnicodeError:
        return "".join(chr(b) if b < 128 else "?" for b in raw)


def _readline(prompt):
    # Returns (str, None) for a line, or (None, control_char) for Ctrl-A/B/C/D(empty)/E.
    _write(prompt)
    line = bytearray()
    while True:
        c = _read_byte()
        if c == 13 or c == 10:
            _write("\n")
            return _text(line), None
        if c == CTRL_C:
            _write("\n")
            return None, CTRL_C
        if c in (CTRL_A, CTRL_B, CTRL_E) and not line:
            return None, c
        if c == CTRL_D:
            if not line:
                return None, CTRL_D
            continue
        if c == 8 or c == 127:
            if line:
                line = line[:-1]
                _write("\x08 \x08")
            continue
        if c == 27:  # escape sequence (arrow keys): swallow "[X"
            if _read_byte() == ord("["):
                _read_byte()
            continue
        if c >= 32 or c == 9:
            line.append(c)
            _out.write(bytes((c,)))


def _paste_mode():
    _write("\npaste mode; Ctrl-C to cancel, Ctrl-D to finish\n=== ")
    buf = bytearray()
    while True:
        c = _read_byte()
        if c == CTRL_C:
            _write("\n")
            return
        if c == CTRL_D:
            _write("\n")
            break
        buf.append(c)
        if c == 13:
            _write("\n=== ")
        elif c != 10:
            _out.write(bytes((c,)))
    _report_friendly(_run_source(_text(bytes(buf).replace(b"\r", b"\n")), "<stdin>", "exec"))


def _report_friendly(err):
    if isinstance(err, _Reset):
        _soft_reset("friendly")
    if err is not None and not isinstance(err, SystemExit):
        _print_exception(err)


def friendly_repl():
    # Returns "raw" on Ctrl-A; soft reset exits the process.
    _write(_banner())
    while True:
        text, ctrl = _readline(">>> ")
        if ctrl == CTRL_A:
            _write("\n")
            return "raw"
        if ctrl == CTRL_B:
            _write("\n" + _banner())
            continue
        if ctrl == CTRL_C:
            continue
        if ctrl == CTRL_D:
            _write("\n")
            _soft_reset("friendly")
        if ctrl == CTRL_E:
            _paste_mode()
            continue
        if not text.strip():
            continue
        source = text
        cancelled = False
        while _needs_more(source):
            more, ctrl = _readline("... ")
            if ctrl == CTRL_C:
                cancelled = True
                break
            if ctrl is not None:
                continue
            if not more.strip() and "\n" in source or not more.strip() and not source.rstrip().endswith(":"):
                source += "\n"
                break
            source += "\n" + more
        if cancelled:
            continue
        mode = "exec" if "\n" in source.strip() else "single"
        _report_friendly(_run_source(source + "\n", "<stdin>", mode))


def main():
    _mount_flash()
    sys.modules["edgenn_vboard"] = _VBoardModule
    try:
        import machine
    except ImportError:
        machine = None
    sys.modules["machine"] = _Machine(machine)
    builtins.__import__ = _import
    _finish_user_code(None)  # start in the idle state, acknowledged
    _split_heap(_first_area_bytes, _area_bytes)
    _run_file("boot.py")
    mode = _mode
    if mode == "friendly":
        _run_file("main.py")
    while True:
        try:
            mode = raw_repl() if mode == "raw" else friendly_repl()
        except KeyboardInterrupt:
            pass  # a Ctrl-C that reached the REPL itself: ignore, as at a board's prompt
        except Exception as e:  # noqa: BLE001 - a board's REPL survives any input; say what happened
            _write("vboard REPL: " + repr(e) + "\n")


main()
