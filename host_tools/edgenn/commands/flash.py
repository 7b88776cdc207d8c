"""`edgenn flash --board B --port P FIRMWARE.bin`: check the image, then esptool erase/write."""

from __future__ import annotations

import argparse
from pathlib import Path

from edgenn.boards import load_board
from edgenn.device.flash import flash

NAME = "flash"
HELP = "flash MicroPython firmware with esptool (checks the image's chip first)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("firmware", type=Path, help="MicroPython .bin image from micropython.org/download")
    parser.add_argument("--board", required=True, help="board profile (edgenn boards lists them)")
    parser.add_argument("--port", required=True, help="serial port of the board")
    parser.add_argument("--erase", action="store_true", help="erase the whole flash first (wipes files)")
    parser.add_argument("--baud", type=int, help="flashing baud rate (default: the profile's)")
    parser.add_argument("--dry-run", action="store_true", help="print the esptool commands, run nothing")


def run(args: argparse.Namespace) -> int:
    flash(
        load_board(args.board),
        args.port,
        args.firmware,
        erase=args.erase,
        dry_run=args.dry_run,
        baud=args.baud,
    )
    return 0
