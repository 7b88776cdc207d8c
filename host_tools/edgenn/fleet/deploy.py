"""`edgenn fleet deploy MODEL.enn --broker URL --group G --key fleet.key`: a signed model update for
every board of a group (or those named), through the broker, and the boards' answers.

1. check the model (a .enn that reads) before anything is published;
2. read what the broker holds: the retained manifest, every board's status, the retained chunks;
   the new sequence number is one more than any seen there;
3. publish the chunks (retained, QoS 1), then the signed manifest (retained): a board that is off now
   finds both when it comes back;
4. follow the boards' statuses until each targeted board serves the new sha256 and seq, or has said
   why not (refused, rolled back), or is offline since before the deploy; or until --timeout;
5. clear the chunks of earlier sequences (empty retained messages) once no board can still need them.

If the broker restarts during the deploy (a broker without persistence forgets retained messages),
chunks and manifest are published again when paho reconnects.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgenn import modelfile
from edgenn.commands.common import print_json
from edgenn.errors import UserError
from edgenn.fleet import manifest as mf
from edgenn.fleet import topics
from edgenn.fleet.boardstatus import BoardStatus, parse_status
from edgenn.fleet.keys import load_key
from edgenn.fleet.options import add_broker_arguments, broker_from_args
from edgenn.fleet.session import Session
from edgenn.fleet.table import LiveTable, format_table
from edgenn.fleet.url import BrokerURL

HELP = "send a signed model update to the boards of a group and follow each board until it serves it"
DEFAULT_TIMEOUT_S = 120.0
OFFLINE = "offline: will update when it comes back (the manifest is retained)"
EXIT_NOT_EVERYWHERE = 1
ECHO_S = 5.0  # our own manifest comes back from the broker within this, or the ACL dropped it


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "model", type=Path, metavar="MODEL.enn", help="the integer model (from `edgenn quantize`)"
    )
    add_broker_arguments(parser)
    parser.add_argument(
        "--key", type=Path, required=True, help="the fleet key file (from `edgenn fleet keygen`)"
    )
    parser.add_argument(
        "--boards",
        metavar="ID,...",
        help="update only these boards (default: every board of the group that has a status on the broker)",
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=DEFAULT_TIMEOUT_S,
        metavar="S",
        help=f"give up waiting for the boards after S seconds (default {DEFAULT_TIMEOUT_S:g})",
    )
    parser.add_argument(
        "--chunk-size",
        type=int,
        default=mf.DEFAULT_CHUNK,
        metavar="BYTES",
        help=f"bytes per MQTT message of the model (default {mf.DEFAULT_CHUNK})",
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object with a `boards` list")


@dataclass
class Row:
    """One targeted board during the deploy."""

    id: str
    status: BoardStatus | None  # the latest status seen
    offline_at_start: bool
    initial: tuple[str, str | None] | None  # (state, reason) before the deploy
    active: bool = False  # it reacted to this deploy (downloading, verifying, a new state)
    result: str | None = None  # "ok", "refused", "rolled back", "offline", "timed out"
    reason: str | None = None

    def update(self, status: BoardStatus, manifest: mf.Manifest) -> None:
        self.status = status
        if self.result == "ok":
            return  # it served the new model; a later will (unplugged since) does not undo that
        # A board names the manifest its state is about (update_seq). A refusal of an earlier update,
        # which a board restarted mid-download still shows until it takes this manifest, is no answer.
        about_this = status.update_seq == manifest.seq
        if status.state in ("downloading", "verifying") and status.update_seq in (None, manifest.seq):
            self.active = True
        if status.online and status.seq == manifest.seq and status.sha256 == manifest.sha256:
            self.result, self.reason = ("ok", None) if status.state == "serving" else (None, None)
            if status.state == "serving":
                return
        if status.state in ("refused", "rolled back") and (
            about_this
            or (status.update_seq is None and (self.active or (status.state, status.reason) != self.initial))
        ):
            self.result, self.reason = status.state, status.reason or "(no reason given)"
            return
        if not status.online and self.offline_at_start:
            self.result, self.reason = "offline", OFFLINE
            return
        self.result = self.reason = None

    def time_out(self) -> None:
        if self.result is not None:
            return
        s = self.status
        if s is None or not s.online:
            self.result, self.reason = "offline", OFFLINE
            return
        progress = f" ({s.progress[0]}/{s.progress[1]} chunks)" if s.progress else ""
        self.result, self.reason = "timed out", f"timed out while {s.state}{progress}"

    def cells(self) -> list[object]:
        s = self.status
        state = "(no status)" if s is None else s.state if s.online else f"offline, {s.state}"
        progress = f"{s.progress[0]}/{s.progress[1]}" if s is not None and s.progress else None
        return [self.id, state, progress, self.reason or (s.reason if s is not None else None)]

    def to_dict(self) -> dict[str, Any]:
        s = self.status
        return {
            "id": self.id,
            "ok": self.result == "ok",
            "result": self.result,
            "state": s.state if s else None,
            "online": bool(s and s.online),
            "reason": self.reason,
            "progress": list(s.progress) if s and s.progress else None,
            "seq": s.seq if s else None,
            "sha256": s.sha256 if s else None,
        }


@dataclass
class Outcome:
    manifest: mf.Manifest
    rows: dict[str, Row]
    seconds: float
    bytes_published: int
    cleared: list[int] = field(default_factory=list)  # sequences whose chunks were cleared

    @property
    def ok(self) -> bool:
        return all(r.result == "ok" for r in self.rows.values())


def read_model(path: Path) -> bytes:
    if path.suffix != ".enn":
        raise UserError(
            f"{path} is not a .enn model (make one with `edgenn quantize MODEL.npz -o MODEL.enn`)"
        )
    modelfile.load(path)  # a corrupt or truncated file is a UserError naming it, before anything is sent
    return path.read_bytes()


def deploy(
    url: BrokerURL,
    group: str,
    key: bytes,
    data: bytes,
    boards: list[str] | None = None,
    timeout: float = DEFAULT_TIMEOUT_S,
    chunk: int = mf.DEFAULT_CHUNK,
    on_change: Callable[[dict[str, Row], bool], None] | None = None,
) -> Outcome:
    """Publish `data` to the group and follow the boards (the library form of the command)."""
    t0 = time.monotonic()
    with Session(url, "deploy") as s:
        # One retained read (one settle time) for the manifest, the chunks and every board's status;
        # statuses stay subscribed, at QoS 0 (Session.subscribe says why).
        held_filters = [topics.manifest(group), f"{topics.PREFIX}/{group}/model/#"]
        held = s.retained([*held_filters, topics.all_status(group)], keep=True, qos=0)
        s.unsubscribe(held_filters[1:])  # the manifest stays: our own must come back (ECHO_S)
        statuses: dict[str, BoardStatus] = {}
        for topic, payload in held.items():
            board = topics.board_of(topic)
            status = parse_status(board, payload) if board else None
            if status is not None:
                statuses[board] = status
        chunk_seqs = {where[0] for t in held if (where := topics.parse_chunk(t)) is not None}
        seq = 1 + max(
            [_held_seq(held.get(topics.manifest(group))), *chunk_seqs, *(x.seq for x in statuses.values())]
        )
        targets = sorted(set(boards)) if boards else sorted(statuses)
        if not targets:
            raise UserError(
                f"no board of group {group!r} has a status on {url.display()}: join one with "
                "`edgenn fleet join`, or name boards with --boards"
            )
        try:
            manifest, pieces = mf.build(
                data, group, seq, key, boards=targets if boards else None, chunk=chunk
            )
        except mf.ManifestError as exc:
            raise UserError(f"cannot make a manifest for this model: {exc}") from None
        rows = {
            b: Row(
                b,
                statuses.get(b),
                offline_at_start=b not in statuses or not statuses[b].online,
                initial=(statuses[b].state, statuses[b].reason) if b in statuses else None,
            )
            for b in targets
        }
        for row in rows.values():
            if row.status is not None and row.offline_at_start:
                row.update(row.status, manifest)
            elif row.status is None:
                row.result, row.reason = "offline", OFFLINE
        items = [(topics.chunk(group, seq, i), piece) for i, piece in enumerate(pieces)]
        try:
            s.publish_all(items, retain=True)
        except BaseException:
            _clear(s, [t for t, _ in items])  # no manifest points at them: leave nothing half-published
            raise
        signed = manifest.to_bytes()
        s.publish(topics.manifest(group), signed, retain=True)
        reconnects, echoed, finished = s.reconnects, False, False
        echo_deadline = time.monotonic() + ECHO_S
        deadline = time.monotonic() + timeout
        if on_change:
            on_change(rows, True)
        while not finished and (left := deadline - time.monotonic()) > 0:
            if not echoed and time.monotonic() > echo_deadline:
                # MQTT 3.1.1 acknowledges a publish the ACL drops; only its absence tells.
                raise UserError(
                    f"{url.display()} did not pass the manifest on: this user may not write or read "
                    f"{topics.PREFIX}/{group}/# (check the broker's ACL)"
                )
            msg = s.get(min(left, 0.2))
            if s.reconnects != reconnects:  # the broker may have lost its retained messages
                reconnects = s.reconnects
                s.publish_all([*items, (topics.manifest(group), signed)], retain=True)
            if msg is None:
                continue
            if msg.topic == topics.manifest(group):
                echoed = echoed or msg.payload == signed
                finished = echoed and all(r.result is not None for r in rows.values())
                continue
            board = topics.board_of(msg.topic)
            status = parse_status(board, msg.payload) if board else None
            if status is None:
                continue
            statuses[board] = status
            if board in rows and not msg.retain:
                rows[board].update(status, manifest)
                if on_change:
                    on_change(rows, False)
                finished = echoed and all(r.result is not None for r in rows.values())
        if not finished:
            for row in rows.values():
                row.time_out()
        outcome = Outcome(manifest, rows, 0.0, 0)
        # The old chunks can go once no board outside this deploy is still fetching them (a targeted
        # board has moved on to the new manifest, which replaced the old one on the broker).
        busy = [b for b, st in statuses.items() if b not in rows and st.state == "downloading"]
        if not busy:
            old = sorted(t for t in held if (w := topics.parse_chunk(t)) is not None and w[0] != seq)
            _clear(s, old)
            outcome.cleared = sorted({topics.parse_chunk(t)[0] for t in old})
        outcome.seconds = time.monotonic() - t0
        outcome.bytes_published = s.bytes_published
    return outcome


def _held_seq(payload: bytes | None) -> int:
    """The seq of the retained manifest, whatever its signature (any larger seq must not be reused)."""
    if not payload:
        return 0
    try:
        return mf.parse(payload).seq
    except mf.ManifestError:
        return 0


def _clear(s: Session, chunk_topics: list[str]) -> None:
    if chunk_topics and s.connected:
        try:
            s.publish_all([(t, b"") for t in chunk_topics], retain=True)
        except UserError:
            pass  # best effort: a later deploy clears them


def run(args: argparse.Namespace) -> int:
    url = broker_from_args(args)
    key = load_key(args.key)
    boards = None
    if args.boards is not None:
        boards = [topics.check_name(b.strip(), "board id") for b in args.boards.split(",") if b.strip()]
        if not boards:
            raise UserError("--boards names no board (give ID,ID,...)")
    if args.timeout <= 0:
        raise UserError("--timeout must be more than 0 seconds")
    if not 64 <= args.chunk_size <= mf.MAX_CHUNK:
        raise UserError(f"--chunk-size must be between 64 and {mf.MAX_CHUNK} bytes")
    data = read_model(args.model)
    show = None if args.json else _Progress(sys.stderr)
    try:
        outcome = deploy(
            url, args.group, key, data, boards, args.timeout, args.chunk_size, show.changed if show else None
        )
    except KeyboardInterrupt:
        if show and show.published:
            show.done()
            print(
                "the update is published: the boards carry on; follow them with `edgenn fleet status`",
                file=sys.stderr,
            )
        raise
    finally:
        if show:
            show.done()
    rows = list(outcome.rows.values())
    m = outcome.manifest
    if args.json:
        print_json(
            {
                "ok": outcome.ok,
                "group": args.group,
                "seq": m.seq,
                "model": m.name,
                "sha256": m.sha256,
                "size": m.size,
                "chunks": m.chunks,
                "seconds": outcome.seconds,
                "bytes_published": outcome.bytes_published,
                "cleared_seqs": outcome.cleared,
                "boards": [r.to_dict() for r in rows],
            }
        )
    else:
        for line in format_table(["board", "state", "progress", "reason"], [r.cells() for r in rows]):
            print(line)
        good = sum(r.result == "ok" for r in rows)
        pieces = f"{m.chunks} chunk{'' if m.chunks == 1 else 's'}"
        what = f"{m.name!r} (sha256 {m.sha256[:12]}, seq {m.seq}, {m.size} B in {pieces})"
        if outcome.ok:
            print(f"deployed {what} to {good}/{len(rows)} boards in {outcome.seconds:.1f} s")
        else:
            print(f"not deployed everywhere: {good}/{len(rows)} boards serve {what}")
            for r in rows:
                if r.result != "ok":
                    print(f"  {r.id}: {r.reason}")
    return 0 if outcome.ok else EXIT_NOT_EVERYWHERE


class _Progress:
    """A live table on a terminal; off a terminal one line per board whose state changes."""

    def __init__(self, stream: Any) -> None:
        self.stream = stream
        self.live = LiveTable(stream) if stream.isatty() else None
        self.seen: dict[str, tuple] = {}
        self.published = False  # the manifest is on the broker: Ctrl-C no longer stops the update

    def changed(self, rows: dict[str, Row], first: bool) -> None:
        self.published = True
        if self.live is not None:
            done = sum(r.result == "ok" for r in rows.values())
            lines = format_table(["board", "state", "progress", "reason"], [r.cells() for r in rows.values()])
            self.live.draw([f"{done}/{len(rows)} boards serve the new model", *lines], force=first)
            return
        for row in rows.values():
            cells = row.cells()
            key = (cells[1], row.result, cells[3])
            if self.seen.get(row.id) != key:
                self.seen[row.id] = key
                if first and row.result is None:
                    continue  # its state before the deploy: nothing has happened yet
                extra = f" ({cells[3]})" if cells[3] else ""
                print(f"{row.id}: {cells[1]}{extra}", file=self.stream, flush=True)

    def done(self) -> None:
        if self.live is not None:
            self.live.clear()
