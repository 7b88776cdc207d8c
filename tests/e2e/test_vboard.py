"""The virtual board driven by the real `mpremote` command line, as a user would drive an ESP32."""

from __future__ import annotations

import os
import pty
import select
import signal
import subprocess
import time
from pathlib import Path

import pytest
import serial
from vboard_helpers import MPREMOTE, mpremote


def test_filesystem_commands_round_trip(vboard, tmp_path: Path) -> None:
    local = tmp_path / "data.bin"
    payload = bytes(range(256)) * 5 + b"\r\n\n\x00\x03\x04"  # control bytes must survive the console
    local.write_bytes(payload)
    mpremote(vboard.port, "mkdir", "lib", "+", "cp", str(local), ":lib/data.bin")
    assert (vboard.flash_dir / "lib" / "data.bin").read_bytes() == payload

    listing = mpremote(vboard.port, "ls", "lib").stdout
    assert f"{len(payload)} data.bin" in " ".join(listing.split())

    back = tmp_path / "back.bin"
    mpremote(vboard.port, "cp", ":lib/data.bin", str(back))
    assert back.read_bytes() == payload

    (vboard.flash_dir / "note.txt").write_text("written on the host side\n")
    assert "written on the host side" in mpremote(vboard.port, "cat", "note.txt").stdout

    mpremote(vboard.port, "rm", "lib/data.bin", "+", "rmdir", "lib")
    assert not (vboard.flash_dir / "lib").exists()


def test_exec_eval_run_report_like_a_board(vboard, tmp_path: Path) -> None:
    assert mpremote(vboard.port, "eval", "6*7").stdout.strip() == "42"
    out = mpremote(vboard.port, "exec", "import sys; print(sys.path); print('a\\nb')").stdout
    assert "['', '.frozen', '/lib']" in out
    assert "a\r\nb\r\n" in out or "a\nb\n" in out  # mpremote passes the board's CRLF through

    script = tmp_path / "job.py"
    script.write_text("import os\nprint('cwd', os.getcwd(), sorted(os.listdir('/')))\n")
    (vboard.flash_dir / "marker").write_text("x")
    assert "cwd / ['marker']" in mpremote(vboard.port, "run", str(script)).stdout

    failed = mpremote(vboard.port, "exec", "def f():\n  1/0\nf()", check=False)
    assert failed.returncode == 1
    assert 'File "<stdin>", line 2, in f' in failed.stdout + failed.stderr
    assert "vboard_repl" not in failed.stdout + failed.stderr  # supervisor frames are hidden


def test_heap_and_flash_are_the_profiles(vboard) -> None:
    free = int(mpremote(vboard.port, "exec", "import gc; gc.collect(); print(gc.mem_free())").stdout)
    assert 90_000 < free <= 110_000 + 4096  # esp32 profile heap_bytes = 110000
    df = mpremote(vboard.port, "df").stdout
    size = [line.split() for line in df.splitlines() if line.rstrip().endswith(" /")][0][1]
    assert int(size) == 2031616
    too_big = mpremote(vboard.port, "exec", "b = bytearray(200_000)", check=False)
    assert "MemoryError" in too_big.stdout + too_big.stderr


def test_a_full_flash_refuses_writes_like_littlefs(vboard, tmp_path: Path) -> None:
    (vboard.flash_dir / "filler.bin").write_bytes(bytes(2031616 - 8 * 4096))  # leaves ~5 blocks
    local = tmp_path / "blob.bin"
    local.write_bytes(bytes(30_000))
    full = mpremote(vboard.port, "cp", str(local), ":blob.bin", check=False)
    assert full.returncode != 0 and "No space left" in full.stdout + full.stderr
    local.write_bytes(bytes(8_000))
    mpremote(vboard.port, "rm", "blob.bin", "+", "cp", str(local), ":small.bin")  # the partial file went
    assert (vboard.flash_dir / "small.bin").stat().st_size == 8_000


def test_ctrl_c_stops_a_running_program_and_the_next_command_works(vboard) -> None:
    looping = subprocess.Popen(
        [MPREMOTE, "connect", vboard.port, "exec", "while True: pass"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    time.sleep(1.5)
    assert looping.poll() is None  # really stuck in the loop
    looping.send_signal(signal.SIGINT)
    looping.wait(timeout=10)
    assert mpremote(vboard.port, "eval", "'alive'", timeout=20).stdout.strip() == "alive"


def test_soft_reset_restarts_the_interpreter_and_resume_keeps_state(vboard) -> None:
    (vboard.flash_dir / "boot.py").write_text("import sys\nsys.boot_count = 1\nprint('boot ran')\n")
    mpremote(vboard.port, "exec", "x_marker = 5")
    assert mpremote(vboard.port, "resume", "eval", "x_marker").stdout.strip() == "5"
    mpremote(vboard.port, "soft-reset")
    gone = mpremote(vboard.port, "resume", "eval", "'x_marker' in globals()").stdout.strip()
    assert gone == "False"


def _read_for(fd: int, seconds: float, until: bytes | None = None) -> bytes:
    out = b""
    end = time.monotonic() + seconds
    while time.monotonic() < end and not (until and until in out):
        ready, _, _ = select.select([fd], [], [], 0.05)
        if ready:
            try:
                out += os.read(fd, 4096)
            except OSError:
                break
    return out


def test_mpremote_repl_is_a_friendly_repl(vboard) -> None:
    pid, fd = pty.fork()  # mpremote repl wants a terminal
    if pid == 0:
        os.execv(MPREMOTE, [MPREMOTE, "connect", vboard.port, "repl"])
    try:
        _read_for(fd, 15, until=b"Ctrl-x to exit")
        os.write(fd, b"\r")
        assert b">>> " in _read_for(fd, 15, until=b">>> ")
        os.write(fd, b"for i in range(2):\r")
        _read_for(fd, 15, until=b"... ")
        os.write(fd, b"  print(i * 10)\r\r")
        assert b"0\r\n10\r\n>>> " in _read_for(fd, 15, until=b"10\r\n>>> ")
        os.write(fd, b"\x04")  # soft reset from the friendly REPL
        out = _read_for(fd, 15, until=b"for more information.\r\n>>> ")
        assert b"MPY: soft reboot\r\n" in out
        assert b"MicroPython v" in out
        os.write(fd, b"\x1d")  # Ctrl-] leaves mpremote
        _read_for(fd, 2)
    finally:
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        os.waitpid(pid, 0)
        os.close(fd)


def test_power_on_runs_boot_then_main_and_ctrl_c_interrupts_main(start_vboard, tmp_path: Path) -> None:
    flash = tmp_path / "flash"
    flash.mkdir()
    (flash / "boot.py").write_text("print('boot.py ran')\n")
    (flash / "main.py").write_text(
        "import sys\nprint('main.py ran')\ntry:\n while True:\n  line = sys.stdin.readline()\n"
        "  print('echo', line.strip())\nexcept KeyboardInterrupt:\n print('main.py interrupted')\n"
    )
    vb = start_vboard(flash)
    with serial.Serial(vb.port, 115200, timeout=0.2) as ser:
        ser.write(b"hello\r\n")
        seen = b""
        end = time.monotonic() + 15
        while b"echo hello" not in seen and time.monotonic() < end:
            seen += ser.read(256)
        assert b"echo hello" in seen  # main.py serves on stdin
        ser.write(b"\x03")
        end = time.monotonic() + 15
        while b">>> " not in seen and time.monotonic() < end:
            seen += ser.read(256)
        assert b"main.py interrupted" in seen and seen.endswith(b">>> ")
        assert b"echo hello\r\n" in seen and seen.count(b"\n") == seen.count(b"\r\n")  # CRLF, as an ESP32
    # the host closed the port; a new host connects and finds a working REPL
    assert mpremote(vb.port, "resume", "eval", "1+1").stdout.strip() == "2"


def test_flash_directory_is_the_whole_filesystem(vboard, tmp_path: Path) -> None:
    secret = tmp_path / "outside.txt"  # next to the flash directory, on the host
    secret.write_text("host file")
    out = mpremote(
        vboard.port,
        "exec",
        (
            "import os\nr = []\n"
            "for p in ('../outside.txt', '/../outside.txt', '/lib/../../outside.txt'):\n"
            "    try:\n        open(p); r.append('READ')\n    except OSError:\n        r.append('no')\n"
            "os.chdir('..')\nprint(r, os.getcwd(), os.listdir())"
        ),
    ).stdout
    assert out.strip() == "['no', 'no', 'no'] / []"


def _read_until(ser: serial.Serial, marker: bytes, seconds: float = 15) -> bytes:
    seen = b""
    end = time.monotonic() + seconds
    while marker not in seen and time.monotonic() < end:
        seen += ser.read(256)
    return seen


def test_raw_repl_protocol_bytes(vboard) -> None:
    """The exact bytes a board sends in the raw REPL (what mpremote and pyboard.py rely on)."""
    with serial.Serial(vboard.port, 115200, timeout=0.1) as ser:
        ser.write(b"\r\x03\r\x01")
        assert _read_until(ser, b"raw REPL; CTRL-B to exit\r\n>").endswith(b"raw REPL; CTRL-B to exit\r\n>")
        ser.write(b"print(6*7)\x04")  # plain raw mode: OK, stdout, EOF, stderr, EOF, prompt
        assert _read_until(ser, b"\x04\x04>") == b"OK42\r\n\x04\x04>"
        ser.write(b"1/0\x04")
        out = _read_until(ser, b"\x04>")
        assert out.startswith(b"OK\x04Traceback") and b"ZeroDivisionError" in out and out.endswith(b"\x04>")
        ser.write(b"\x05A\x01")  # raw-paste: R\x01 + window size, then flow control
        header = _read_until(ser, b"R\x01", 10) + ser.read(2)
        assert header[:2] == b"R\x01" and int.from_bytes(header[2:4], "little") > 0
        ser.write(b"print('pasted')\x04")
        assert _read_until(ser, b"\x04\x04>") == b"\x04pasted\r\n\x04\x04>"
        ser.write(b"\x04")  # soft reset from the raw REPL stays in the raw REPL
        reboot = b"OK\r\nMPY: soft reboot\r\nraw REPL; CTRL-B to exit\r\n>"
        assert _read_until(ser, b"CTRL-B to exit\r\n>") == reboot
        ser.write(b"\x02")  # back to the friendly REPL: banner and prompt
        assert _read_until(ser, b">>> ").endswith(b'Type "help()" for more information.\r\n>>> ')


def _interpreters_on(flash_dir: Path) -> int:
    """Running vboard interpreters whose command line names this flash directory."""
    count = 0
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        # the REPL runs as `-m vboard_repl` (compiled) or as the vboard_repl.py script
        repl = any(arg.endswith(b"vboard_repl.py") or arg == b"vboard_repl" for arg in cmdline)
        if repl and str(flash_dir).encode() in cmdline:
            count += 1
    return count


def test_flash_survives_a_restart_and_stop_leaves_nothing_running(start_vboard, tmp_path: Path) -> None:
    flash = tmp_path / "flash"
    first = start_vboard(flash)
    mpremote(first.port, "exec", "open('main.py', 'w').write('main_ran = 1')")
    assert _interpreters_on(flash.resolve()) == 1
    first.stop()
    assert first.process.returncode == 0
    assert _interpreters_on(flash.resolve()) == 0  # SIGTERM cleaned up the interpreter too

    second = start_vboard(flash)  # power-on with the same flash: main.py runs
    assert mpremote(second.port, "resume", "eval", "main_ran").stdout.strip() == "1"  # REPL shares globals


def test_python_api_context_manager(tmp_path: Path) -> None:
    from edgenn.device.vboard import VirtualBoard

    with VirtualBoard(tmp_path / "flash", board="esp32c3") as vb:
        assert vb.port.startswith("/dev/")
        assert mpremote(vb.port, "eval", "6*7").stdout.strip() == "42"
        free = int(mpremote(vb.port, "exec", "import gc; gc.collect(); print(gc.mem_free())").stdout)
        assert abs(free - vb.profile.heap_bytes) < 8192  # the esp32c3 profile's heap, not esp32's
    assert _interpreters_on((tmp_path / "flash").resolve()) == 0


def test_machine_reset_powers_on_again_and_soft_reset_keeps_the_raw_repl(vboard) -> None:
    (vboard.flash_dir / "main.py").write_text("booted_by_main = True\n")
    mpremote(vboard.port, "exec", "marker = 1")
    mpremote(vboard.port, "reset")  # mpremote's `reset` = machine.reset(): boot.py and main.py run again
    state = mpremote(vboard.port, "resume", "eval", "('marker' in globals(), 'booted_by_main' in globals())")
    assert state.stdout.strip() == "(False, True)"
    done = mpremote(vboard.port, "exec", "import machine\nmarker = 2\nmachine.soft_reset()", timeout=20)
    assert done.returncode == 0  # the raw REPL finished the exec (EOF markers) before resetting
    assert mpremote(vboard.port, "resume", "eval", "'marker' in globals()").stdout.strip() == "False"


def test_reset_button_recovers_a_board_that_ignores_ctrl_c(vboard) -> None:
    stubborn = "while True:\n try:\n  while True:\n   pass\n except KeyboardInterrupt:\n  pass"
    looping = subprocess.Popen([MPREMOTE, "connect", vboard.port, "exec", stubborn])
    time.sleep(1.5)
    looping.kill()
    looping.wait()
    with serial.Serial(vboard.port, 115200, timeout=0.1) as ser:
        ser.write(b"\r\x03")
        time.sleep(0.5)
        ser.write(b"\r\x03\r\x01")
        assert b"raw REPL" not in _read_until(ser, b"raw REPL", 3)  # stuck, as a board would be
    vboard.process.send_signal(signal.SIGUSR1)  # `edgenn vboard`: SIGUSR1 = the EN/RESET button
    assert mpremote(vboard.port, "eval", "'back'", timeout=20).stdout.strip() == "back"


def test_native_code_from_mpy_files_draws_on_the_profiles_executable_ram(start_vboard, tmp_path, monkeypatch):
    """Issue 18: an ESP32 copies the machine code of viper/asm functions in a .mpy into executable RAM
    (ports/esp32/main.c esp_native_code_commit), a budget outside the GC heap, freed only by a reset."""
    import json
    import shutil

    from edgenn.boards import boards_dir
    from edgenn.device import mpy
    from edgenn.device.board_info import MpyFormat
    from edgenn.device.deploy import firmware_dir
    from edgenn.machinecode.mpy import native_code_bytes

    compiler = mpy.compiler_for(MpyFormat(6, 3, "x64"))
    if compiler is None:
        pytest.skip("no mpy-cross for the unix port's .mpy 6.3")
    code = mpy.compile_source(compiler, firmware_dir() / "edgenn_viper.py", "x64")
    native = native_code_bytes(code)
    boards = tmp_path / "boards"
    shutil.copytree(boards_dir(), boards)
    tight = json.loads((boards / "esp32.json").read_text())
    tight.update(name="esp32_tight", exec_ram_bytes=native - 100)
    (boards / "esp32_tight.json").write_text(json.dumps(tight))
    monkeypatch.setenv("EDGENN_BOARDS_DIR", str(boards))
    probe = "import edgenn_vboard as v\nprint(v.exec_free())\nimport edgenn_viper\nprint(v.exec_free())"

    roomy = start_vboard(tmp_path / "roomy", board="esp32")
    (roomy.flash_dir / "edgenn_viper.mpy").write_bytes(code)
    before, after = mpremote(roomy.port, "exec", probe).stdout.split()
    assert int(before) == 32768 and int(before) - int(after) == native > 5000

    small = start_vboard(tmp_path / "small", board="esp32_tight")
    (small.flash_dir / "edgenn_viper.mpy").write_bytes(code)
    result = mpremote(small.port, "exec", probe, check=False)
    assert f"MemoryError: memory allocation failed, allocating {native} bytes for native code" in (
        result.stdout + result.stderr
    )
    # deploy counts the same machine code before it copies anything, and names executable RAM
    from vboard_helpers import edgenn

    from edgenn import modelfile, zoo

    (small.flash_dir / "edgenn_viper.mpy").unlink()
    model = tmp_path / "m.enn"
    modelfile.save(zoo.build_zoo(seed=2)["relu_2"], model)
    refused = edgenn("deploy", str(model), "--port", small.port)
    assert refused.returncode == 2
    assert "of executable RAM, the esp32_tight board has" in refused.stderr
    assert "nothing was copied" in refused.stderr and refused.stderr.count("\n") == 1
    assert sorted(p.name for p in small.flash_dir.iterdir()) == []


def test_the_heap_is_cut_into_gc_areas(vboard) -> None:
    """No block larger than a GC area (the esp32 profile: 56 KiB first area), though the heap is ~107 KB."""
    code = (
        "import gc\ngc.collect()\nfree = gc.mem_free()\nok = []\n"
        "for n in (40000, 52000, 60000, 80000):\n"
        "    try:\n        b = bytearray(n)\n        ok.append(n)\n        b = None\n        gc.collect()\n"
        "    except MemoryError:\n        pass\nprint(free, ok)"
    )
    free, ok = mpremote(vboard.port, "exec", code).stdout.split(" ", 1)
    assert int(free) > 95_000
    assert ok.strip() == "[40000, 52000]"


def test_a_program_flooding_the_console_leaves_little_to_read_after_ctrl_c(tmp_path: Path) -> None:
    """A program printing as fast as it can while the host does not read: after a Ctrl-C the host reads
    through what the link buffered, as from a board behind a USB-UART bridge (a few KB, plus the pty's
    own buffer), then the prompt; and mpremote, which reads that backlog a byte at a time, gets in."""
    from vboard_helpers import launch_vboard

    flash = tmp_path / "flash"
    flash.mkdir()
    (flash / "main.py").write_text("while True:\n    print('0123456789' * 7)\n")
    board = launch_vboard(flash)
    try:
        with serial.serial_for_url(board.port, baudrate=115200, timeout=0.2) as link:
            time.sleep(1.5)  # the program prints; nobody reads
            link.write(b"\r\x03")
            data, deadline = b"", time.monotonic() + 30
            while not data.endswith(b">>> ") and time.monotonic() < deadline:
                data += link.read(65536)
            link.write(b"\x04")  # soft reset: main.py floods again, for mpremote
        assert data.endswith(b">>> ") and b"KeyboardInterrupt" in data
        assert len(data) < 48 * 1024, f"{len(data)} bytes buffered before the prompt"  # was 147 KB
        time.sleep(1.5)
        assert mpremote(board.port, "exec", "print(6*7)", timeout=60).stdout.strip().endswith("42")
    finally:
        board.stop()


def test_a_killed_supervisor_takes_its_interpreter_down(tmp_path: Path) -> None:
    """SIGKILL of `edgenn vboard` is a power cut: its interpreter, here in a loop that never reads or
    writes (so no closed pipe would stop it), goes too."""
    from vboard_helpers import launch_vboard

    flash = tmp_path / "flash"
    flash.mkdir()
    (flash / "main.py").write_text("while True:\n    pass\n")
    board = launch_vboard(flash)
    time.sleep(1.0)
    assert _interpreters_on(flash.resolve()) == 1
    board.process.kill()
    board.process.wait()
    deadline = time.monotonic() + 5
    while _interpreters_on(flash.resolve()) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert _interpreters_on(flash.resolve()) == 0
