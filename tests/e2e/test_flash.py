"""`edgenn flash`: the esptool command for every profile, and images refused before esptool runs."""

from __future__ import annotations

import os
import shlex
import struct
from pathlib import Path

import pytest
import serial
from vboard_helpers import edgenn

from edgenn.boards import list_boards

FLASHABLE = [b for b in list_boards() if not b.is_virtual]


def fake_image(path: Path, chip_id: int) -> Path:
    """The first bytes of an ESP image: magic 0xE9, segment count, flash mode/size, entry, chip id at 12."""
    header = bytearray(64)
    header[0] = 0xE9
    header[1] = 3
    struct.pack_into("<I", header, 4, 0x40080000)
    struct.pack_into("<H", header, 12, chip_id)
    path.write_bytes(bytes(header) + os.urandom(256))
    return path


def test_every_chip_family_has_a_profile() -> None:
    assert {b.chip for b in FLASHABLE} == {"esp32", "esp32s2", "esp32s3", "esp32c3", "esp32c6"}


@pytest.mark.parametrize("board", FLASHABLE, ids=lambda b: b.name)
def test_dry_run_prints_the_esptool_command_with_the_profiles_chip_and_offset(board, tmp_path: Path) -> None:
    image = fake_image(tmp_path / "fw.bin", board.chip_id)
    result = edgenn(
        "flash", "--board", board.name, "--port", "/dev/ttyUSB7", str(image), "--dry-run", "--erase"
    )
    assert result.returncode == 0, result.stderr
    erase, write = [shlex.split(line) for line in result.stdout.strip().splitlines()]
    assert erase[-1] == "erase-flash"
    assert write[write.index("--chip") + 1] == board.chip
    assert write[write.index("--port") + 1] == "/dev/ttyUSB7"
    assert write[-3:] == ["write-flash", hex(board.firmware_offset), str(image)]
    assert write[1:3] == ["-m", "esptool"]


def test_offsets_are_micropythons() -> None:
    offsets = {b.chip: b.firmware_offset for b in FLASHABLE}
    assert offsets == {"esp32": 0x1000, "esp32s2": 0x1000, "esp32s3": 0, "esp32c3": 0, "esp32c6": 0}


@pytest.mark.parametrize("dry_run", [True, False])
def test_wrong_chip_image_is_refused_before_esptool(tmp_path: Path, dry_run: bool) -> None:
    s3_image = fake_image(tmp_path / "ESP32_GENERIC_S3-20250415-v1.25.0.bin", 9)
    result = edgenn(
        "flash",
        "--board",
        "esp32",
        "--port",
        "/dev/ttyUSB7",
        str(s3_image),
        *(["--dry-run"] if dry_run else []),
    )
    assert result.returncode == 2
    assert "built for esp32s3" in result.stderr and "ESP32_GENERIC-" in result.stderr
    assert "esptool" not in result.stdout  # no command printed, nothing run
    assert "Traceback" not in result.stderr


def test_non_firmware_file_is_refused(tmp_path: Path) -> None:
    notes = tmp_path / "model.enn"
    notes.write_bytes(b"EDNN\x01\x00" + bytes(100))
    result = edgenn("flash", "--board", "esp32c3", "--port", "/dev/ttyUSB7", str(notes))
    assert result.returncode == 2
    assert "not an ESP firmware image" in result.stderr and "0x45" in result.stderr
    empty = tmp_path / "empty.bin"
    empty.write_bytes(b"")
    assert "empty file" in edgenn("flash", "--board", "esp32", "--port", "/dev/x", str(empty)).stderr


def test_virtual_board_cannot_be_flashed(tmp_path: Path) -> None:
    result = edgenn("flash", "--board", "virtual", "--port", "/dev/ttyUSB7", str(tmp_path / "x.bin"))
    assert result.returncode == 2
    assert "edgenn vboard" in result.stderr


def test_missing_port_is_one_clear_line(tmp_path: Path) -> None:
    image = fake_image(tmp_path / "fw.bin", 0)
    result = edgenn("flash", "--board", "esp32", "--port", "/dev/ttyUSB_NOT_THERE", str(image))
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0 and "does not exist" in result.stderr


def test_busy_port_is_one_clear_line(tmp_path: Path) -> None:
    image = fake_image(tmp_path / "fw.bin", 0)
    master, slave = os.openpty()
    path = os.ttyname(slave)
    try:
        with serial.Serial(path, exclusive=True):  # another program holds the port
            result = edgenn("flash", "--board", "esp32", "--port", path, str(image))
    finally:
        os.close(slave)
        os.close(master)
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0 and "busy" in result.stderr


def test_boards_command_lists_every_profile() -> None:
    import json

    listing = edgenn("boards")
    assert listing.returncode == 0
    for name in ("esp32", "esp32s2", "esp32s3", "esp32c3", "esp32c6", "virtual"):
        assert name in listing.stdout
    data = json.loads(edgenn("boards", "--json").stdout)
    assert data["virtual"]["is_virtual"] and data["esp32c3"]["mpy_arch"] == "rv32imc"
    assert data["esp32"]["heap_bytes"] < data["esp32s3"]["heap_bytes"]
