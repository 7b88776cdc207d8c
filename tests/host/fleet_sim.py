"""Helpers for the fleet tests: models, a key file, running `edgenn fleet ...`, reading the broker."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from edgenn import modelfile
from edgenn.fleet import topics
from edgenn.fleet.session import Session
from edgenn.fleet.url import parse_broker_url
from edgenn.zoo import build_zoo

KEY = bytes(range(32))
OTHER_KEY = bytes(range(100, 132))
ZOO = build_zoo(seed=1)
OLD = modelfile.to_bytes(ZOO["relu_2"])  # what the boards serve before a deploy (1.6 KB, one chunk)
NEW = modelfile.to_bytes(ZOO["relu_4"])  # what is deployed (7.2 KB: four 2 KB chunks)


def write_key(directory: Path, key: bytes = KEY) -> Path:
    path = directory / "fleet.key"
    path.write_text(key.hex() + "\n")
    path.chmod(0o600)
    return path


def write_model(directory: Path, data: bytes = NEW, name: str = "new.enn") -> Path:
    path = directory / name
    path.write_bytes(data)
    return path


def edgenn(*argv: str, timeout: float = 120, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "edgenn.cli", *argv], capture_output=True, text=True, timeout=timeout, env=env
    )


def deploy_json(*argv: str) -> tuple[int, dict]:
    proc = edgenn("fleet", "deploy", *argv, "--json")
    assert proc.stdout.count("\n") == 1, proc.stdout + proc.stderr
    return proc.returncode, json.loads(proc.stdout)


def retained(url: str, filters: list[str]) -> dict[str, bytes]:
    with Session(parse_broker_url(url), "test") as s:
        return s.retained(filters)


def chunk_topics(url: str, group: str) -> dict[str, bytes]:
    return retained(url, [f"{topics.PREFIX}/{group}/model/#"])
