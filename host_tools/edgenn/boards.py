"""Board profiles: one JSON file per board in `boards/` at the repository root.

A profile says how to flash the board (esptool chip name, firmware offset, chip id in the image header),
what code it runs (`.mpy` native architecture) and how much room a model has (heap and flash budgets).

Memory as MicroPython (>= 1.22) lays it out on an ESP32: the GC heap starts as one area
(`gc_first_area_bytes`) and grows by areas taken from the ESP-IDF heap on demand, up to
`gc_heap_max_bytes` in total; one allocation never spans two areas, so the largest block is bounded by
the largest area (`gc_area_max_bytes`). `heap_bytes` and `largest_block_bytes` are what the tools count
(those less the GC's own tables). Native code (viper, asm) loaded from `.mpy` files is not in the GC heap:
it is copied into executable RAM, a budget of its own (`exec_ram_bytes`). Every figure names its source
(a MicroPython or ESP-IDF file, commit, issue) or says "unmeasured" in the profile's `sources` object.
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
    # the split GC heap (see the module docstring); None in a profile that does not give them
    gc_first_area_bytes: int | None = None
    gc_heap_max_bytes: int | None = None
    gc_area_max_bytes: int | None = None
    exec_ram_bytes: int | None = None  # executable RAM for native code; None: not limited
    sources: tuple[tuple[str, str], ...] = ()  # (field, where its figure comes from)

    @property
    def is_virtual(self) -> bool:
        return self.chip is None


def boards_dir() -> Path:
    return shipped_dir("boards", "EDGENN_BOARDS_DIR")


MEMORY_FIELDS = (
    "heap_bytes",
    "largest_block_bytes",
    "gc_first_area_bytes",
    "gc_heap_max_bytes",
    "gc_area_max_bytes",
    "exec_ram_bytes",
    "flash_fs_bytes",
)


def _optional_int(data: dict, key: str) -> int | None:
    return None if data.get(key) is None else int(data[key])


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
            gc_first_area_bytes=_optional_int(data, "gc_first_area_bytes"),
            gc_heap_max_bytes=_optional_int(data, "gc_heap_max_bytes"),
            gc_area_max_bytes=_optional_int(data, "gc_area_max_bytes"),
            exec_ram_bytes=_optional_int(data, "exec_ram_bytes"),
            sources=tuple(sorted((str(k), str(v)) for k, v in dict(data.get("sources") or {}).items())),
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


def profile_name_for(
    vboard_profile: str | None = None, platform: str | None = None, mpy_arch: str | None = None
) -> str:
    """The one answer to "which profile is this board?" (doctor, deploy, report all ask here).

    A virtual board says which profile it emulates (its `edgenn_vboard` module, or the server's `board`
    field): that profile, e.g. `esp32` -- its memory is the one being modelled. Otherwise the platform
    when a profile has that name (`esp32`), else the profile of the `.mpy` architecture, else esp32."""
    names = {b.name for b in list_boards()}
    if vboard_profile and vboard_profile in names:
        return vboard_profile
    if platform and platform in names:
        return platform
    by_arch = {"xtensawin": "esp32", "rv32imc": "esp32c3", "x64": VIRTUAL}
    return by_arch.get(mpy_arch or "", "esp32")
