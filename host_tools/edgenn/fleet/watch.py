"""`edgenn fleet watch --broker URL --group G`: the boards' predictions as they arrive, one line each.

Subscribed with QoS 1, so nothing the broker accepted is lost while this runs. Each board numbers its
predictions (`n`); a jump in `n` is reported as a loss (predictions dropped from the board's queue
while the broker was away, or not delivered), a repeated `n` (a QoS 1 redelivery) is skipped, and a
smaller `n` means the board restarted. A summary goes to stderr at the end (--count, --seconds, Ctrl-C).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import dataclass, field
from typing import Any

from edgenn.errors import UserError
from edgenn.fleet import topics
from edgenn.fleet.options import add_broker_arguments, broker_from_args
from edgenn.fleet.session import Session

HELP = "print the boards' predictions as they arrive (gaps in their numbering reported as losses)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_broker_arguments(parser)
    parser.add_argument(
        "--boards", metavar="ID,...", help="only these boards (default: every board of the group)"
    )
    parser.add_argument("--count", type=int, metavar="N", help="stop after N predictions")
    parser.add_argument("--seconds", type=float, metavar="S", help="stop after S seconds")
    parser.add_argument(
        "--json",
        action="store_true",
        help="one JSON object per line: the board's prediction, plus `lost` when some are missing before it",
    )


@dataclass
class Tally:
    """Per-board numbering: what arrived, what is missing."""

    last: dict[str, int] = field(default_factory=dict)
    received: int = 0
    lost: int = 0
    duplicates: int = 0
    restarts: int = 0

    def see(self, board: str, n: int) -> tuple[bool, int, bool]:
        """(new, how many are missing before it, the board restarted) for prediction `n` of `board`."""
        last = self.last.get(board)
        if last is not None and n == last:
            self.duplicates += 1
            return False, 0, False
        self.last[board] = n
        self.received += 1
        if last is None:
            return True, 0, False
        if n < last:
            self.restarts += 1
            return True, 0, True
        gap = n - last - 1
        self.lost += gap
        return True, gap, False

    def summary(self, seconds: float) -> str:
        extra = f", {self.duplicates} duplicates skipped" if self.duplicates else ""
        extra += f", {self.restarts} board restarts" if self.restarts else ""
        return (
            f"{self.received} predictions from {len(self.last)} board{'' if len(self.last) == 1 else 's'} "
            f"in {seconds:.1f} s; "
            f"{self.lost} lost (gaps in n){extra}"
        )


def describe(pred: dict[str, Any]) -> str:
    """The human line for one prediction."""
    parts = [str(pred.get("id")), f"n={pred.get('n')}", str(pred.get("src", "?"))]
    if "class" in pred:
        parts.append(
            f"class {pred['class']}" + (f" ({pred['label']})" if pred.get("label") is not None else "")
        )
    if "value" in pred:
        parts.append(f"value {pred['value']}")
    if "score" in pred:
        parts.append(f"score {pred['score']}" + (" ANOMALY" if pred.get("anomaly") else ""))
    if isinstance(pred.get("t"), int):
        parts.append(f"t={pred['t'] / 1000:.3f} s")
    return "  ".join(parts)


def run(args: argparse.Namespace) -> int:
    url = broker_from_args(args)
    if args.count is not None and args.count <= 0:
        raise UserError("--count must be 1 or more")
    if args.seconds is not None and args.seconds <= 0:
        raise UserError("--seconds must be more than 0")
    only = None
    if args.boards:
        only = {topics.check_name(b.strip(), "board id") for b in args.boards.split(",") if b.strip()}
    filters = [topics.pred(args.group, b) for b in sorted(only)] if only else [topics.all_pred(args.group)]
    tally = Tally()
    t0 = time.monotonic()
    until = t0 + args.seconds if args.seconds is not None else float("inf")
    with Session(url, "watch") as s:
        s.subscribe(filters, qos=1)
        who = ", ".join(sorted(only)) if only else "every board"
        was_connected = True
        try:  # from the moment it says it listens, Ctrl-C ends it with the summary
            print(
                f"edgenn fleet watch: predictions of {who} in group {args.group!r} on {url.display()} "
                "(Ctrl-C stops)",
                file=sys.stderr,
                flush=True,
            )
            while (args.count is None or tally.received < args.count) and time.monotonic() < until:
                msg = s.get(min(until - time.monotonic(), 0.5))
                if s.connected != was_connected:
                    was_connected = s.connected
                    what = "reconnected to" if was_connected else "lost the broker, reconnecting to"
                    print(f"edgenn fleet watch: {what} {url.display()}", file=sys.stderr, flush=True)
                if msg is None:
                    continue
                _show(msg.topic, msg.payload, tally, args.json)
        except KeyboardInterrupt:
            pass  # Ctrl-C is how a watch usually ends: the summary below, exit 0
    print(f"edgenn fleet watch: {tally.summary(time.monotonic() - t0)}", file=sys.stderr, flush=True)
    return 0


def _show(topic: str, payload: bytes, tally: Tally, as_json: bool) -> None:
    board = topics.board_of(topic)
    try:
        pred = json.loads(payload.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        pred = None
    if board is None or not isinstance(pred, dict) or not isinstance(pred.get("n"), int):
        print(
            f"edgenn fleet watch: not a prediction on {topic}: {payload[:60]!r}", file=sys.stderr, flush=True
        )
        return
    pred["id"] = board  # the topic says who sent it
    new, lost, restarted = tally.see(board, pred["n"])
    if not new:
        return
    if as_json:
        if lost:
            pred["lost"] = lost
        print(json.dumps(pred), flush=True)
        return
    note = f"  (lost {lost}: n {pred['n'] - lost}..{pred['n'] - 1})" if lost else ""
    note += "  (board restarted)" if restarted else ""
    print(describe(pred) + note, flush=True)
