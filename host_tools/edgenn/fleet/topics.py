"""The MQTT topic names of docs/fleet-protocol.md: the one place the host side spells them.

`G` (group) and `ID` (board id) are `[A-Za-z0-9_-]{1,32}`: no `/`, `+` or `#`, so a name can never
reach outside its own topic level or act as a wildcard.
"""

from __future__ import annotations

import re

from edgenn.errors import UserError

PREFIX = "edgenn"
NAME_RE = re.compile(r"[A-Za-z0-9_-]{1,32}\Z")


def valid_name(text: object) -> bool:
    return isinstance(text, str) and NAME_RE.match(text) is not None


def check_name(text: str, what: str) -> str:
    """`text` when it is a valid group or board id, else a UserError saying what a valid one is."""
    if not valid_name(text):
        raise UserError(f"{what} {text!r} must be 1-32 letters, digits, '_' or '-'")
    return text


def manifest(group: str) -> str:
    return f"{PREFIX}/{group}/manifest"


def chunk(group: str, seq: int, index: int) -> str:
    return f"{PREFIX}/{group}/model/{seq}/{index}"


def chunks_of(group: str, seq: int) -> str:
    """Subscription for every chunk of one sequence."""
    return f"{PREFIX}/{group}/model/{seq}/+"


def status(group: str, board: str) -> str:
    return f"{PREFIX}/{group}/{board}/status"


def pred(group: str, board: str) -> str:
    return f"{PREFIX}/{group}/{board}/pred"


def all_status(group: str) -> str:
    return f"{PREFIX}/{group}/+/status"


def all_pred(group: str) -> str:
    return f"{PREFIX}/{group}/+/pred"


def board_of(topic: str) -> str | None:
    """The board id in `edgenn/G/ID/status` or `.../pred`, None for any other topic."""
    parts = topic.split("/")
    if len(parts) == 4 and parts[0] == PREFIX and parts[3] in ("status", "pred") and valid_name(parts[2]):
        return parts[2]
    return None


def parse_chunk(topic: str) -> tuple[int, int] | None:
    """(seq, index) of `edgenn/G/model/SEQ/I`, None when the topic is not a chunk topic."""
    parts = topic.split("/")
    if len(parts) != 5 or parts[0] != PREFIX or parts[2] != "model":
        return None
    if not (parts[3].isdigit() and parts[4].isdigit()):
        return None
    return int(parts[3]), int(parts[4])
