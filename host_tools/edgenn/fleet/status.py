"""`edgenn fleet status --broker URL --group G`: one row per board, from the retained statuses.

Predictions per minute are measured, not taken from the boards' counters: the command listens on the
group's prediction topics for --listen seconds (default 2) and counts what arrives, so the figure is
the rate right now (a board's `sent` counter only comes with its status, once a minute). "last seen"
is the time since the last message of that board during the listen; MQTT keeps no time stamps, so a
board that said nothing meanwhile shows only whether the broker holds it online.
"""

from __future__ import annotations

import argparse
import re
import time
from typing import Any

from edgenn.commands.common import print_json
from edgenn.errors import UserError
from edgenn.fleet import topics
from edgenn.fleet.boardstatus import BoardStatus, parse_status
from edgenn.fleet.options import add_broker_arguments, broker_from_args
from edgenn.fleet.session import Session
from edgenn.fleet.table import format_table
from edgenn.fleet.url import BrokerURL

HELP = "list the boards of a group: online, state, model, kernel, heap, last seen, predictions per minute"
DEFAULT_LISTEN_S = 2.0
SHA_SHOWN = 12


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_broker_arguments(parser)
    parser.add_argument(
        "--listen",
        type=float,
        default=DEFAULT_LISTEN_S,
        metavar="S",
        help=f"count predictions for S seconds to measure each board's rate (default {DEFAULT_LISTEN_S:g}; "
        "0: no rate)",
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object with a `boards` list")


def natural_key(text: str) -> list:
    """b2 before b10."""
    return [int(p) if p.isdigit() else p for p in re.split(r"(\d+)", text)]


def collect(url: BrokerURL, group: str, listen: float) -> tuple[dict[str, BoardStatus], list[dict[str, Any]]]:
    """The boards' statuses and, per board, what the listen saw: last_seen_s and pred_per_min."""
    with Session(url, "status") as s:
        statuses: dict[str, BoardStatus] = {}
        for topic, payload in s.retained([topics.all_status(group)], keep=True, qos=0).items():
            board = topics.board_of(topic)
            status = parse_status(board, payload) if board else None
            if status is not None:
                statuses[board] = status
        seen: dict[str, float] = {}
        preds: dict[str, int] = {}
        if listen > 0:
            s.subscribe([topics.all_pred(group)], qos=0)
            start = time.monotonic()
            for msg in s.messages(start + listen):
                board = topics.board_of(msg.topic)
                if board is None:
                    continue
                seen[board] = time.monotonic()
                if msg.topic.endswith("/pred"):
                    preds[board] = preds.get(board, 0) + 1
                else:
                    status = parse_status(board, msg.payload)
                    if status is not None:
                        statuses[board] = status
        now = time.monotonic()
    extra = []
    for board in sorted(statuses, key=natural_key):
        extra.append(
            {
                "last_seen_s": round(now - seen[board], 1) if board in seen else None,
                "pred_per_min": round(preds.get(board, 0) * 60.0 / listen, 1) if listen > 0 else None,
            }
        )
    return {b: statuses[b] for b in sorted(statuses, key=natural_key)}, extra


def run(args: argparse.Namespace) -> int:
    url = broker_from_args(args)
    if args.listen < 0:
        raise UserError("--listen must be 0 or more seconds")
    statuses, extra = collect(url, args.group, args.listen)
    if args.json:
        boards = [{**st.to_dict(), **more} for st, more in zip(statuses.values(), extra)]
        print_json({"group": args.group, "broker": url.display(), "listen_s": args.listen, "boards": boards})
        return 0
    if not statuses:
        # MQTT 3.1.1 cannot say "not allowed to read": a broker's ACL hides topics silently.
        print(
            f"no boards in group {args.group!r} on {url.display()} (join one with `edgenn fleet join`; "
            f"if boards have joined, the broker's ACL may hide edgenn/{args.group}/# from this user)"
        )
        return 0
    rows = []
    for st, more in zip(statuses.values(), extra):
        seen = f"{more['last_seen_s']:.1f} s ago" if more["last_seen_s"] is not None else None
        rows.append(
            [
                st.id,
                "yes" if st.online else "no",
                st.state,
                st.model,
                st.sha256[:SHA_SHOWN] if st.sha256 else None,
                st.seq,
                st.kernel,
                st.heap_free,
                seen,
                more["pred_per_min"],
                st.reason,
            ]
        )
    header = ["board", "online", "state", "model", "sha256", "seq", "kernel", "heap", "last seen", "pred/min"]
    for line in format_table([*header, "reason"], rows):
        print(line)
    online = sum(st.online for st in statuses.values())
    print(f"{len(statuses)} boards, {online} online")
    return 0
