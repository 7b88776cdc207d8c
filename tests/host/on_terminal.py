"""Run `edgenn ...` with stderr on a pseudo-terminal, as a user sees it: progress lines rewritten in
place with carriage returns, optionally Ctrl-C (SIGINT) once a given text has appeared."""

from __future__ import annotations

import os
import pty
import select
import signal
import subprocess
import sys
import time


def run_on_terminal(
    argv: list[str], interrupt_after: bytes | None = None, timeout: float = 60
) -> tuple[int, str]:
    """(exit status, everything written to the terminal) of `python -m edgenn.cli *argv`."""
    leader, follower = pty.openpty()
    proc = subprocess.Popen(
        [sys.executable, "-m", "edgenn.cli", *argv],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=follower,
    )
    os.close(follower)
    seen = b""
    deadline = time.monotonic() + timeout
    interrupted = interrupt_after is None
    while True:
        if not interrupted and interrupt_after in seen:
            proc.send_signal(signal.SIGINT)
            interrupted = True
        if time.monotonic() > deadline:
            proc.kill()
            break
        if not select.select([leader], [], [], 0.5)[0]:
            continue
        try:
            chunk = os.read(leader, 4096)
        except OSError:  # the terminal closes with the process
            break
        if not chunk:
            break
        seen += chunk
    os.close(leader)
    return proc.wait(timeout=30), seen.decode(errors="replace")
