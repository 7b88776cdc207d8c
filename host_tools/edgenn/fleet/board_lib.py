"""The board's MQTT client: micropython-lib's `umqtt.simple`, from PyPI, pinned by sha256, never in our git.

Why this one (measured with the MicroPython 1.29 unix port, modules compiled with mpy-cross, heap
allocated by the import after gc.collect(), x86-64 objects, about half of it on a 32-bit ESP32):

    umqtt.simple 1.3.4     2.3 KB .mpy    4.9 KB heap
    umqtt.simple2 2.2.0    4.3 KB .mpy    8.1 KB heap
    chumicro-mqtt 0.30.3  20.8 KB .mpy   40.0 KB heap

A plain ESP32 shares ~110 KB between the runtime, the model and this; umqtt.simple does QoS 1 publish,
subscribe, a last will, TLS through `ssl` and non-blocking `check_msg`, which is all the agent needs.

PyPI has it only as an sdist without setup.py, which `pip download` refuses. `make setup` runs
`python -m edgenn.fleet.board_lib`: it asks the package index pip uses for the file (the standard JSON
simple API), checks the pinned sha256 and keeps `umqtt/simple.py` under the Python environment's prefix.
`fleet join` compiles it for the board and installs it as lib/umqtt/simple.mpy.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import sys
import tarfile
import tempfile
import urllib.request
from pathlib import Path

from edgenn.errors import UserError

PROJECT = "micropython-umqtt.simple"
VERSION = "1.3.4"
SDIST = f"{PROJECT}-{VERSION}.tar.gz"
SDIST_SHA256 = "b6a2520239e3992c63a7de9370ee9b3d9d27819a90359c521f1c0f7ccab8d12f"
MEMBER = f"{PROJECT}-{VERSION}/umqtt/simple.py"
BOARD_PATH = "lib/umqtt/simple"  # + .mpy (or .py); `import umqtt.simple` finds it through /lib
TIMEOUT_S = 60


def lib_dir() -> Path:
    """Where the fetched client is kept: $EDGENN_BOARD_LIB, else beside this Python environment."""
    override = os.environ.get("EDGENN_BOARD_LIB")
    return Path(override) if override else Path(sys.prefix) / "share" / "edgenn" / "board-lib"


def installed_source() -> Path | None:
    path = lib_dir() / "umqtt" / "simple.py"
    return path if path.is_file() else None


def _index_url() -> str:
    """The index pip is configured with (PIP_INDEX_URL or pip's config), else pip's own default."""
    url = os.environ.get("PIP_INDEX_URL")
    if not url:
        try:
            from pip._internal.configuration import Configuration
            from pip._internal.models.index import PyPI

            config = Configuration(isolated=False)
            config.load()
            url = dict(config.items()).get("global.index-url") or PyPI.simple_url
        except Exception:  # noqa: BLE001 - pip's internals moved: use its documented default
            from pip._internal.models.index import PyPI

            url = PyPI.simple_url
    return url.rstrip("/")


def _download() -> bytes:
    page = f"{_index_url()}/{PROJECT.replace('.', '-')}/"
    request = urllib.request.Request(page, headers={"Accept": "application/vnd.pypi.simple.v1+json"})
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT_S) as response:
            files = json.load(response)["files"]
        url = next(f["url"] for f in files if f["filename"] == SDIST)
        with urllib.request.urlopen(url, timeout=TIMEOUT_S) as response:
            return response.read()
    except (OSError, ValueError, KeyError, StopIteration) as exc:
        raise UserError(
            f"cannot fetch {SDIST} from the package index ({exc}); run `make setup` online"
        ) from None


def fetch() -> Path:
    """Download the pinned sdist, check its sha256, keep umqtt/simple.py; returns its path."""
    data = _download()
    digest = hashlib.sha256(data).hexdigest()
    if digest != SDIST_SHA256:
        raise UserError(
            f"{SDIST} from the index has sha256 {digest}, not the pinned {SDIST_SHA256}: not used"
        )
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        member = tar.extractfile(MEMBER)
        if member is None:
            raise UserError(f"{SDIST} has no {MEMBER}")
        source = member.read()
    target = lib_dir() / "umqtt" / "simple.py"
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".simple.", suffix=".tmp")
    with os.fdopen(fd, "wb") as f:
        f.write(source)
    os.chmod(tmp, 0o644)
    os.replace(tmp, target)
    return target


def client_source(say=print) -> Path:
    """The client's source, fetched once when `make setup` has not done it yet."""
    found = installed_source()
    if found is not None:
        return found
    say(f"fetching the board's MQTT client ({PROJECT} {VERSION}, sha256 pinned) from the package index")
    return fetch()


def main() -> int:
    try:
        path = installed_source() or fetch()
    except UserError as exc:
        print(f"edgenn.fleet.board_lib: error: {exc}", file=sys.stderr)
        return 2
    print(f"{PROJECT} {VERSION}: {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
