"""Board profiles as an ESP32 lays out its memory (issue 18): the split GC heap and executable RAM, each
figure with its source; edgenn.fit counting native code; one answer to "which profile is this board"."""

from __future__ import annotations

import json

import numpy as np
import pytest

from edgenn import boards, fit, modelfile, zoo
from edgenn.boards import list_boards, load_board, profile_name_for
from edgenn.device.board_info import BoardInfo, MpyFormat

ESP32_FAMILY = ("esp32", "esp32s2", "esp32s3", "esp32c3", "esp32c6")


def _model(n_in: int, hidden: list[int]) -> modelfile.QuantModel:
    return zoo.random_model(np.random.default_rng(0), n_in, hidden, ["relu"] * len(hidden), 4, "classify")


@pytest.mark.parametrize("profile", list_boards(), ids=lambda b: b.name)
def test_every_memory_figure_names_its_source(profile) -> None:
    sources = dict(profile.sources)
    for name in boards.MEMORY_FIELDS:
        assert getattr(profile, name) is not None, f"{profile.name}: {name} missing"
        text = sources.get(name, "")
        assert len(text) > 20, f"{profile.name}: {name} has no source"
        # a MicroPython/ESP-IDF file, commit, issue or PR, another profile -- or it says it is unmeasured
        assert any(
            k in text for k in ("unmeasured", ".c", ".h", ".csv", "commit", "#", "derived", ".json")
        ), text


@pytest.mark.parametrize("name", ESP32_FAMILY)
def test_the_split_heap_figures_hang_together(name: str) -> None:
    b = load_board(name)
    assert b.gc_first_area_bytes < b.gc_heap_max_bytes
    assert b.gc_area_max_bytes <= b.gc_heap_max_bytes - b.gc_first_area_bytes
    # what the tools count is the GC heap less its tables (3/128), and the largest block is in one area
    assert b.heap_bytes == b.gc_heap_max_bytes * 125 // 128
    assert b.largest_block_bytes == b.gc_area_max_bytes * 125 // 128 < b.heap_bytes
    assert b.exec_ram_bytes and b.exec_ram_bytes < b.heap_bytes


def test_esp32_figures_are_micropythons() -> None:
    b = load_board("esp32")
    # ports/esp32/mpconfigport.h: MICROPY_GC_INITIAL_HEAP_SIZE 56 KiB on the ESP32 (commit f6d630877c),
    # 111,936 B after one growth (its commit message)
    assert (b.gc_first_area_bytes, b.gc_heap_max_bytes) == (56 * 1024, 111_936)
    assert "f6d630877c" in dict(b.sources)["gc_first_area_bytes"]
    assert "unmeasured" in dict(b.sources)["exec_ram_bytes"]


def test_the_profile_json_keeps_sources_beside_the_figures() -> None:
    data = json.loads((boards.boards_dir() / "esp32.json").read_text())
    assert set(boards.MEMORY_FIELDS) <= set(data["sources"])


def test_fit_counts_native_code_against_executable_ram() -> None:
    model = _model(16, [32])
    plain = fit.runtime_native_bytes("xtensawin", False)
    with_fe = fit.runtime_native_bytes("xtensawin", True)
    assert plain is not None and with_fe is not None
    assert 2_000 < plain < with_fe < load_board("esp32").exec_ram_bytes  # the front end's viper code on top
    ok = fit.check_fit(model, "esp32")
    assert ok.fits and ok.exec_needed == plain and ok.exec_free == load_board("esp32").exec_ram_bytes
    assert f"executable RAM {plain} of" in ok.summary()
    # a board with less executable RAM than the kernels' machine code: that limit is named, not the heap
    short = fit.check_fit(model, "esp32", exec_free=plain - 1)
    assert not short.fits and len(short.reasons) == 1
    assert "executable RAM" in short.reasons[0] and "heap" not in short.reasons[0]
    assert short.hidden_fewer is None  # fewer hidden units would not help
    assert "executable RAM" in short.summary()


def test_a_model_too_big_for_one_gc_area_says_so() -> None:
    esp32 = load_board("esp32")
    n = esp32.largest_block_bytes // 103 + 8  # one 96-input layer larger than an area
    result = fit.check_fit(_model(96, [n]), esp32)
    assert not result.fits
    assert any(f"largest free block is {esp32.largest_block_bytes} B" in r for r in result.reasons)


def test_doctor_deploy_and_report_name_the_same_profile() -> None:
    """Issue 19 item 7: doctor said esp32, report said virtual for the same virtual board."""
    from edgenn.report.collect import BoardSection, _board_profile_name

    vboard = BoardInfo("1.29.0", "", "linux", MpyFormat(6, 3, "x64"), 100_000, 0, 0, vboard_profile="esp32c3")
    server_info = {"platform": "linux", "board": "esp32c3"}  # the server's `info` reply on that board
    section = BoardSection(server_info, None, None, None)
    assert (
        vboard.likely_board
        == _board_profile_name(section)
        == profile_name_for("esp32c3", "linux")
        == "esp32c3"
    )
    real = BoardInfo("1.25.0", "", "esp32", MpyFormat(6, 3, "xtensawin"), 100_000, 0, 0)
    assert real.likely_board == _board_profile_name(BoardSection({"platform": "esp32"}, None, None, None))
    assert profile_name_for(None, "linux", "x64") == "virtual"  # a unix port that is not our vboard


def test_estimate_defaults_to_the_kernel_deploy_installs() -> None:
    from edgenn.device.deploy import ASM_SOURCES
    from edgenn.machinecode.estimate import default_kernel

    assert default_kernel(load_board("esp32")) == "asm" and "xtensawin" in ASM_SOURCES
    assert default_kernel(load_board("esp32c3")) == "asm"
    assert default_kernel(load_board("virtual")) == "viper"
