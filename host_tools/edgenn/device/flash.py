"""`edgenn flash`: write a MicroPython firmware image with esptool, after checking it is the right one.

An ESP firmware image starts with the magic byte 0xE9 and carries the chip it was built for as a
little-endian u16 at offset 12. Flashing an ESP32-S3 image onto an ESP32 "succeeds" and leaves a board
that does not boot, so the image is checked against the board profile before esptool runs.
"""

from __future__ import annotations

import shlex
import subprocess
import sys
from pathlib import Path

import serial

from edgenn.boards import BoardProfile, list_boards
from edgenn.device.client import port_problem
from edgenn.errors import UserError

IMAGE_MAGIC = 0xE9
CHIP_ID_OFFSET = 12
HEADER_BYTES = 24  # the extended header ends at offset 24
# Chip ids of chips without a profile here, so a wrong image is named, not just numbered.
OTHER_CHIP_IDS = {12: "esp32c2", 16: "esp32h2", 18: "esp32p4", 23: "esp32c5"}


def chip_name(chip_id: int) -> str:
    for board in list_boards():
        if board.chip_id == chip_id:
            return board.chip or board.name
    return OTHER_CHIP_IDS.get(chip_id, f"unknown chip (id {chip_id})")


def check_image(path: Path, profile: BoardProfile) -> None:
    """UserError unless `path` is a firmware image built for the profile's chip."""
    download = f"download {profile.firmware_pattern} from https://micropython.org/download/"
    try:
        with open(path, "rb") as f:
            header = f.read(HEADER_BYTES)
    except FileNotFoundError:
        raise UserError(f"firmware file {path} not found; {download}") from None
    except OSError as exc:
        raise UserError(f"cannot read {path}: {exc.strerror}") from None
    if len(header) < HEADER_BYTES or header[0] != IMAGE_MAGIC:
        first = f"0x{header[0]:02X}" if header else "nothing (empty file)"
        raise UserError(
            f"{path} is not an ESP firmware image (it starts with {first}, an image starts with "
            f"0xE9); {download}"
        )
    chip_id = int.from_bytes(header[CHIP_ID_OFFSET : CHIP_ID_OFFSET + 2], "little")
    if chip_id != profile.chip_id:
        raise UserError(
            f"{path} is built for {chip_name(chip_id)}, but board {profile.name} needs an "
            f"{profile.chip} image; {download}"
        )


def esptool_commands(
    profile: BoardProfile, port: str, image: Path, erase: bool, baud: int | None = None
) -> list[list[str]]:
    if profile.is_virtual or profile.firmware_offset is None or profile.chip is None:
        raise UserError(
            "the virtual board is the MicroPython unix port running on this computer: there is "
            "no firmware to flash. Start it with `edgenn vboard` and deploy to its port"
        )
    base = [
        sys.executable,
        "-m",
        "esptool",
        "--chip",
        profile.chip,
        "--port",
        port,
        "--baud",
        str(baud or profile.flash_baud or 460800),
    ]
    commands = []
    if erase:
        commands.append([*base, "erase-flash"])
    commands.append([*base, "write-flash", hex(profile.firmware_offset), str(image)])
    return commands


def check_port(port: str) -> None:
    """One clear line when the port is missing or held by another program."""
    if "://" in port:
        return
    try:
        serial.Serial(port, exclusive=True).close()
    except (serial.SerialException, OSError, ValueError):
        raise UserError(port_problem(port)) from None


def flash(
    profile: BoardProfile,
    port: str,
    image: Path,
    erase: bool = False,
    dry_run: bool = False,
    baud: int | None = None,
    say=print,
) -> list[list[str]]:
    commands = esptool_commands(profile, port, image, erase, baud)
    check_image(image, profile)
    if dry_run:
        for cmd in commands:
            say(shlex.join(cmd))
        return commands
    check_port(port)
    for cmd in commands:
        say(f"$ {shlex.join(cmd)}")
        result = subprocess.run(cmd)
        if result.returncode != 0:
            raise UserError(
                f"esptool failed (exit {result.returncode}), see its output above. If it could "
                "not connect: hold BOOT, press and release EN/RESET, release BOOT, flash again"
            )
    say(
        f"flashed {image.name} to {profile.name} at {hex(profile.firmware_offset or 0)}; "
        f"next: edgenn deploy MODEL.enn --port {port}"
    )
    return commands
