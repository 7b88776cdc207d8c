"""Every ```console sample in README.md and docs/ runs, and prints what the page says it prints.

One test per page: its samples run in order in one fresh directory, with what the page's
`<!-- samples: ... -->` comment asks for (a virtual board, the iris models, a broker; see
tests/doc_samples.py and docs/contributing.md). A `$ edgenn vboard` line starts a virtual board
and is compared with what it printed; `$ export NAME=VALUE` sets NAME for the page's later commands.
Everything else runs in bash, stdout and stderr together as on a terminal. The counts of samples run and
not run (with their reasons) are printed at the end of the session.
"""

from __future__ import annotations

import difflib
import os
import queue
import shlex
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from doc_samples import (
    BROKER,
    PORT,
    ROOT,
    STAND_IN_IMAGES,
    Command,
    Exchange,
    Page,
    doc_port,
    documentation_pages,
    matches,
    normalize,
    parse_page,
    stand_in_image,
    to_doc,
    to_real,
)

COMMAND_TIMEOUT_S = 300
REPLY_TIMEOUT_S = 15
VBOARD_TIMEOUT_S = 30

PAGES = [p for p in map(parse_page, documentation_pages()) if p.samples or p.tokens or p.problems]


@pytest.fixture(scope="session")
def tally(request) -> Iterator[dict]:
    """Counts per page; printed after the last page (pytest shows it even when output is captured)."""
    counts: dict = {}
    yield counts
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")
    if reporter is None or not counts:
        return
    ran = sum(c["ran"] for c in counts.values())
    commands = sum(c["commands"] for c in counts.values())
    not_run = [(page, reason) for page, c in counts.items() for reason in c["not_run"]]
    pages = len(counts)
    lines = [
        f"doc samples: {ran} sample(s) ran ({commands} commands) on {pages} page(s); {len(not_run)} not run"
    ]
    lines += [f"  not run: {page}: {reason}" for page, reason in not_run]
    capture = request.config.pluginmanager.get_plugin("capturemanager")
    with capture.global_and_fixture_disabled():  # session teardown runs inside the last test's capture
        reporter.write_line("")
        for line in lines:
            reporter.write_line(line)


@pytest.fixture(scope="session")
def shims(tmp_path_factory) -> Path:
    """A bin directory whose `edgenn` is this interpreter's edgenn.cli (the checkout under test)."""
    bin_dir = tmp_path_factory.mktemp("doc-bin")
    edgenn = bin_dir / "edgenn"
    edgenn.write_text(f'#!/bin/sh\nexec {shlex.quote(sys.executable)} -m edgenn.cli "$@"\n')
    edgenn.chmod(0o755)
    return bin_dir


@pytest.fixture(scope="session")
def iris_models(tmp_path_factory, shims) -> Path:
    """The tour's models, trained once per session for the pages that say `iris` or `deployed`."""
    out = tmp_path_factory.mktemp("doc-iris")
    env = _base_env(shims)
    for cmd in ("edgenn train iris -o iris.npz", "edgenn quantize iris.npz --data iris -o iris.enn"):
        done = subprocess.run(cmd, shell=True, cwd=out, env=env, capture_output=True, text=True)
        assert done.returncode == 0, f"{cmd}: {done.stdout}{done.stderr}"
    return out


def _base_env(shims: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("EDGENN_")}
    env["PATH"] = os.pathsep.join([str(shims), str(Path(sys.executable).parent), env.get("PATH", "")])
    env["PYTHONUNBUFFERED"] = "1"  # stderr and stdout interleave as on a terminal
    env.pop("COLUMNS", None)
    return env


class PageRun:
    """The state one page's samples share: a directory, an environment, a virtual board, a broker."""

    def __init__(self, page: Page, workdir: Path, env: dict[str, str]) -> None:
        self.page = page
        self.workdir = workdir
        self.env = env
        self.subs: dict[str, str] = {}
        self.vboards: list[subprocess.Popen] = []
        self.broker = None
        # Samples are written as if run from a checkout: examples/ and .venv/ are where they would be.
        (workdir / "examples").symlink_to(ROOT / "examples")
        (workdir / ".venv").symlink_to(Path(sys.prefix))

    def start_broker(self) -> None:
        from mqtt_broker import Mosquitto

        self.broker = Mosquitto(self.workdir.parent / (self.workdir.name + "-broker"))
        self.broker.start()
        self.subs[BROKER] = f"127.0.0.1:{self.broker.port}"

    def start_vboard(self, args: list[str], n_lines: int = 1) -> list[str]:
        """`edgenn vboard ARGS` in the page's directory; returns the first n_lines it prints.
        The page's first board is written /dev/pts/3, its second /dev/pts/4, ..."""
        board = subprocess.Popen(
            ["edgenn", "vboard", *args],
            cwd=self.workdir,
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.vboards.append(board)
        printed: queue.Queue[str] = queue.Queue()
        threading.Thread(target=self._drain, args=(board, printed), daemon=True).start()
        lines = []
        deadline = time.monotonic() + VBOARD_TIMEOUT_S
        while len(lines) < max(n_lines, 1) and time.monotonic() < deadline:
            try:
                lines.append(printed.get(timeout=max(0.0, deadline - time.monotonic())))
            except queue.Empty:
                break
        assert lines and lines[0].startswith("/dev/"), f"edgenn vboard did not start: {lines}"
        self.subs[doc_port(len(self.vboards) - 1)] = lines[0].strip()
        return lines

    @staticmethod
    def _drain(process: subprocess.Popen, printed: queue.Queue) -> None:
        for line in process.stdout:  # read all of it: a board must never block on a full pipe
            printed.put(line)

    def run(self, command: Command) -> str:
        try:
            words = shlex.split(command.text, comments=True)
        except ValueError:  # unbalanced quotes across lines: bash will say what is wrong
            words = []
        if words[:2] == ["edgenn", "vboard"]:
            args = [w for w in words[2:] if w != "&"]
            return "".join(self.start_vboard(args, len(command.expected)))
        if words and words[0] == "export" and len(words) == 2 and "=" in words[1]:
            name, value = words[1].split("=", 1)
            self.env[name] = to_real(value, self.subs)
            return ""
        done = subprocess.run(
            ["bash", "-c", to_real(command.text, self.subs)],
            cwd=self.workdir,
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            timeout=COMMAND_TIMEOUT_S,
        )
        return done.stdout

    def stop(self) -> None:
        for board in self.vboards:
            if board.poll() is None:
                board.terminate()
                try:
                    board.wait(10)
                except subprocess.TimeoutExpired:
                    board.kill()
                    board.wait()
        if self.broker is not None:
            self.broker.stop()


def _read(link, done: Callable[[bytes], bool]) -> bytes:
    data = b""
    deadline = time.monotonic() + REPLY_TIMEOUT_S
    while not done(data) and time.monotonic() < deadline:
        data += link.read(link.in_waiting or 1)
    return data


def replay(port: str, exchanges: list[Exchange]) -> list[tuple[Exchange, str]]:
    """Each exchange of a serial transcript on the board; returns (exchange, what the board said)."""
    import serial

    said = []
    with serial.serial_for_url(port, baudrate=115200, timeout=0.2) as link:
        # What a soft reset prints: Ctrl-C stops the server, Ctrl-D at the REPL soft-resets the board.
        link.write(b"\x03")
        _read(link, lambda data: data.endswith(b">>> "))
        link.reset_input_buffer()
        link.write(b"\x04")
        reset = _read(link, lambda data: b'{"ready"' in data and data.endswith(b"\n"))
        # From the reboot on: before it, the REPL's newline after Ctrl-D (and a prompt, if it saw the 0x03)
        said.append((exchanges[0], reset[max(0, reset.find(b"MPY: soft reboot")) :]))
        for exchange in exchanges[1:]:
            link.write(exchange.send)
            if exchange.send != b"\x03":
                said.append((exchange, _read(link, lambda data: data.endswith(b"\n"))))
                continue
            data = _read(link, lambda data: data.endswith(b">>> "))  # Ctrl-C: until the REPL's prompt
            # Up to the first prompt: the REPL may read the 0x03 too and print a second one.
            said.append((exchange, data[: data.index(b">>> ") + 4] if b">>> " in data else data))
    return [(exchange, data.decode("utf-8", "replace")) for exchange, data in said]


def _mismatch(page: Page, line: int, what: str, expected: list[str], actual: str, subs: dict) -> str:
    shown = normalize(to_doc(actual, subs)).splitlines()
    diff = "\n".join(difflib.unified_diff(expected, shown, "documented", "printed", lineterm=""))
    return f"{page.name}:{line}: {what}\n{diff}"


@pytest.mark.slow
@pytest.mark.parametrize("page", PAGES, ids=[p.name for p in PAGES])
def test_samples_print_what_the_page_says(page: Page, tmp_path: Path, shims, tally, request) -> None:
    assert not page.problems, "\n".join(page.problems)
    counts = tally.setdefault(page.name, {"ran": 0, "commands": 0, "not_run": []})
    for sample in page.samples:
        if sample.not_run is not None:
            counts["not_run"].append(f"line {sample.line}: {sample.not_run}")
    missing = [cmd for cmd in page.needs() if shutil.which(cmd) is None]
    if missing:
        pytest.skip(f"{page.name}: needs {', '.join(missing)} (Debian package: see README)")
    workdir = tmp_path / "work"
    workdir.mkdir()
    run = PageRun(page, workdir, _base_env(shims))
    try:
        if page.wants("iris"):
            models = request.getfixturevalue("iris_models")
            for name in ("iris.npz", "iris.enn"):
                shutil.copy(models / name, workdir / name)
        if page.wants("images"):
            for name, chip_id in STAND_IN_IMAGES.items():
                (workdir / name).write_bytes(stand_in_image(chip_id))
        for name, content in page.files.items():
            (workdir / name).write_text(content, encoding="utf-8")
        if page.wants("broker"):
            from mqtt_broker import have_mosquitto

            if not have_mosquitto():
                pytest.skip("needs Debian's mosquitto: apt-get install mosquitto (.ci/run installs it)")
            run.start_broker()
        if page.wants("vboard"):
            run.start_vboard([])
        if page.wants("deployed"):
            done = subprocess.run(
                ["edgenn", "deploy", "iris.enn", "--port", run.subs[PORT]],
                cwd=workdir,
                env=run.env,
                capture_output=True,
                text=True,
                timeout=COMMAND_TIMEOUT_S,
            )
            assert done.returncode == 0, done.stdout + done.stderr
        failures = []
        for sample in page.samples:
            if sample.not_run is not None:
                continue
            for command in sample.commands:
                actual = run.run(command)
                counts["commands"] += 1
                if not matches(command.expected, actual, run.subs):
                    failures.append(
                        _mismatch(page, command.line, f"$ {command.text}", command.expected, actual, run.subs)
                    )
            counts["ran"] += 1
        for transcript in page.transcripts:
            assert PORT in run.subs, f"{page.name}: a serial transcript needs `<!-- samples: deployed -->`"
            for exchange, actual in replay(run.subs[PORT], transcript):
                if not matches(exchange.expected, actual, run.subs):
                    sent = repr(exchange.send) if exchange.send is not None else "(soft reset)"
                    failures.append(
                        _mismatch(page, exchange.line, f"> {sent}", exchange.expected, actual, {})
                    )
            counts["ran"] += 1
            counts["commands"] += len(transcript)
        assert not failures, f"{len(failures)} sample command(s) print something else:\n\n" + "\n\n".join(
            failures
        )
    finally:
        run.stop()
