"""Board profiles: one JSON file per board in `boards/` at the repository root.

A profile says how to flash the board (esptool chip name, firmware offset, chip id in the image header),
what code it runs (`.mpy` native architecture) and how much room a model has (heap and flash budgets).
The directory is found by `edgenn.resources.shipped_dir`: $EDGENN_BOARDS_DIR, the source tree
(editable install) or `<prefix>/share/edgenn/boards` (wheel install).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from edgenn.errors import UserError
from edgenn.resources import shipped_dir

VIRTUAL = "virtual"


@dataclass(frozen=True)
class BoardProfile:
    name: str
    description: str
    chip: str | None  # esptool --chip value; None for the virtual board
    chip_id: int | None  # u16 LE at offset 12 of a firmware image
    firmware_offset: int | None  # where write-flash puts the MicroPython image
    mpy_arch: str  # mpy-cross -march value
    flash_baud: int | None
    console_baud: int
    heap_bytes: int  # what a model + runtime may use (conservative gc.mem_free() after boot)
    largest_block_bytes: int  # largest single allocation to count on (heap fragmentation)
    flash_fs_bytes: int  # size of the MicroPython filesystem
    firmware_pattern: str | None

    @property
    def is_virtual(self) -> bool:
        return self.chip is None


def boards_dir() -> Path:
    return shipped_dir("boards", "EDGENN_BOARDS_DIR")


def _parse(data: dict, source: Path) -> BoardProfile:
    try:
        offset = data["firmware_offset"]
        return BoardProfile(
            name=str(data["name"]),
            description=str(data["description"]),
            chip=data["chip"],
            chip_id=None if data["chip_id"] is None else int(data["chip_id"]),
            firmware_offset=None if offset is None else int(str(offset), 0),
            mpy_arch=str(data["mpy_arch"]),
            flash_baud=data["flash_baud"],
            console_baud=int(data["console_baud"]),
            heap_bytes=int(data["heap_bytes"]),
            largest_block_bytes=int(data["largest_block_bytes"]),
            flash_fs_bytes=int(data["flash_fs_bytes"]),
            firmware_pattern=data["firmware_pattern"],
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise UserError(f"board profile {source} is invalid ({exc!r}); compare boards/esp32.json") from exc


def list_boards() -> list[BoardProfile]:
    directory = boards_dir()
    if not directory.is_dir():
        raise UserError(f"board profiles not found in {directory}; set EDGENN_BOARDS_DIR to boards/")
    profiles = []
    for path in sorted(directory.glob("*.json")):
        profiles.append(_parse(json.loads(path.read_text()), path))
    return profiles


def load_board(name: str) -> BoardProfile:
    path = boards_dir() / f"{name}.json"
    if not path.is_file():
        names = ", ".join(b.name for b in list_boards())
        raise UserError(f"unknown board {name!r}; known boards: {names}")
    return _parse(json.loads(path.read_text()), path)
