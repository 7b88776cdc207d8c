"""`edgenn vboard`: run a virtual board; the first stdout line is its serial port path."""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading

from edgenn.device.vboard import VirtualBoard, default_flash_dir

NAME = "vboard"
HELP = "start a virtual board (MicroPython unix port behind a pty); prints its port path first"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--dir", help="flash directory, kept across restarts (default .edgenn/vboard/BOARD)")
    parser.add_argument("--board", default="esp32", help="profile for heap and flash sizes (default esp32)")


def run(args: argparse.Namespace) -> int:
    flash_dir = args.dir or default_flash_dir(args.board)
    stopped = threading.Event()

    def request_stop(signum, frame) -> None:
        stopped.set()

    board = VirtualBoard(flash_dir, args.board)
    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGUSR1, lambda signum, frame: board.press_reset())  # the EN/RESET button
    port = board.start()
    try:
        print(port, flush=True)
        print(
            f"virtual {board.profile.name} board on {port}; flash {board.flash_dir}; "
            f"heap {board.profile.heap_bytes} B, flash {board.profile.flash_fs_bytes} B. "
            "x86-64 MicroPython: timings are not ESP32 timings. Ctrl-C stops it; "
            f"`kill -USR1 {os.getpid()}` presses its reset button.",
            file=sys.stderr,
            flush=True,
        )
        while not stopped.wait(0.5):
            pass
    finally:
        board.stop()
    return 0
