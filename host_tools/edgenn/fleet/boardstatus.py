"""A board's retained status (docs/fleet-protocol.md, "Status"), read defensively: a board or a person
may publish anything on the topic, and one bad message must not stop `fleet status` or `fleet deploy`."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import Any

STATES = ("serving", "downloading", "verifying", "rolled back", "refused")


@dataclass(frozen=True)
class BoardStatus:
    id: str
    online: bool
    state: str
    reason: str | None = None
    update_seq: int | None = None  # the manifest seq that state and reason are about (None: no update)
    seq: int = 0
    model: str | None = None
    sha256: str | None = None
    kernel: str | None = None
    heap_free: int | None = None
    firmware: str | None = None
    uptime: int | None = None
    progress: tuple[int, int] | None = None
    sent: int = 0
    dropped: int = 0

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["progress"] = list(self.progress) if self.progress else None
        return d


def _int(value: object, default: int | None = None) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else default


def _str(value: object) -> str | None:
    return value if isinstance(value, str) else None


def parse_status(board: str, payload: bytes) -> BoardStatus | None:
    """The status `board` published, None when the payload is not a status object. Unknown fields are
    ignored, wrong types become None, so a newer board's status still reads."""
    try:
        obj = json.loads(payload.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        return None
    if not isinstance(obj, dict):
        return None
    progress = obj.get("progress")
    if not (isinstance(progress, list) and len(progress) == 2 and all(_int(p) is not None for p in progress)):
        progress = None
    state = obj.get("state")
    return BoardStatus(
        id=board,
        online=obj.get("online") is True,
        state=state if state in STATES else f"unknown ({state!r})",
        reason=_str(obj.get("reason")),
        update_seq=_int(obj.get("update_seq")),
        seq=_int(obj.get("seq"), 0) or 0,
        model=_str(obj.get("model")),
        sha256=_str(obj.get("sha256")),
        kernel=_str(obj.get("kernel")),
        heap_free=_int(obj.get("heap_free")),
        firmware=_str(obj.get("firmware")),
        uptime=_int(obj.get("uptime")),
        progress=tuple(progress) if progress else None,
        sent=_int(obj.get("sent"), 0) or 0,
        dropped=_int(obj.get("dropped"), 0) or 0,
    )
