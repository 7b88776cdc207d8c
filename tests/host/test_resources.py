"""Device code and board profiles are found in the source tree, an install's share/, or an override."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from edgenn import boards, resources
from edgenn.device import deploy


def test_source_tree_holds_firmware_and_boards() -> None:
    assert (deploy.firmware_dir() / "package.json").is_file()
    assert "esp32" in {p.stem for p in boards.boards_dir().glob("*.json")}


def test_a_wheel_install_looks_under_the_prefix(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(resources, "SOURCE_TREE", tmp_path / "no-source-tree")
    expected = Path(sys.prefix) / "share" / "edgenn" / "firmware"
    assert resources.shipped_dir("firmware", "EDGENN_TEST_UNSET") == expected


def test_the_environment_overrides_both(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("EDGENN_BOARDS_DIR", str(tmp_path))
    assert boards.boards_dir() == tmp_path
