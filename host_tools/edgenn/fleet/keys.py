"""The fleet key: 32 random bytes, kept as 64 hex digits in a file of mode 0600 on the laptop and the board.

It signs manifests (HMAC-SHA256, docs/fleet-protocol.md); it never travels except as that file.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from edgenn.errors import UserError

KEY_BYTES = 32


def generate_key(path: Path) -> None:
    """Write a new random key to `path`; refuse to replace an existing file (it may be a fleet's only key)."""
    key_hex = secrets.token_hex(KEY_BYTES) + "\n"
    try:
        # O_EXCL: never overwrite a key, never follow a planted symlink; 0600 from the first byte.
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o600)
    except FileExistsError:
        raise UserError(
            f"{path} already exists: keep it (boards joined with it need it) or remove it first"
        ) from None
    except OSError as exc:
        raise UserError(f"cannot create {path}: {exc.strerror}") from None
    with os.fdopen(fd, "w") as f:
        f.write(key_hex)


def load_key(path: Path) -> bytes:
    """The 32 key bytes from a key file, with a message that says what to do when it is not one."""
    try:
        text = path.read_text(encoding="ascii").strip()
    except FileNotFoundError:
        raise UserError(f"no fleet key at {path}: make one with `edgenn fleet keygen -o {path}`") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(f"cannot read the fleet key {path}: {exc}") from None
    try:
        key = bytes.fromhex(text)
    except ValueError:
        key = b""
    if len(key) != KEY_BYTES:
        raise UserError(
            f"{path} is not a fleet key (expected {2 * KEY_BYTES} hex digits from `edgenn fleet keygen`)"
        )
    return key
