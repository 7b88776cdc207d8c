"""`edgenn boards`: list the board profiles."""

from __future__ import annotations

import argparse

from edgenn.boards import list_boards
from edgenn.commands.common import print_json

NAME = "boards"
HELP = (
    "list board profiles (chip, firmware offset, .mpy arch, GC heap, largest block, executable RAM and "
    "flash budgets; --json adds each figure's source)"
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="one JSON object on stdout")


def run(args: argparse.Namespace) -> int:
    boards = list_boards()
    if args.json:
        print_json(
            {b.name: {**b.__dict__, "sources": dict(b.sources), "is_virtual": b.is_virtual} for b in boards}
        )
        return 0
    print(
        f"{'board':<9} {'esptool chip':<12} {'offset':>7} {'chip id':>7} {'mpy arch':<10} "
        f"{'heap KB':>7} {'block KB':>8} {'exec KB':>7} {'flash KB':>8}  firmware"
    )
    for b in boards:
        offset = "-" if b.firmware_offset is None else hex(b.firmware_offset)
        exec_kb = "-" if b.exec_ram_bytes is None else b.exec_ram_bytes // 1024
        print(
            f"{b.name:<9} {b.chip or '-':<12} {offset:>7} {'-' if b.chip_id is None else b.chip_id:>7} "
            f"{b.mpy_arch:<10} {b.heap_bytes // 1024:>7} {b.largest_block_bytes // 1024:>8} "
            f"{exec_kb:>7} {b.flash_fs_bytes // 1024:>8}  "
            f"{b.firmware_pattern or '(cannot be flashed: edgenn vboard)'}"
        )
    return 0
