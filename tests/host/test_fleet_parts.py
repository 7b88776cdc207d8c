"""The fleet's small parts without a broker: reading statuses defensively, watch's loss counting,
deploy's per-board verdicts, the broker's refusal messages, text tables."""

from __future__ import annotations

import json

from edgenn.fleet import manifest as mf
from edgenn.fleet.boardstatus import parse_status
from edgenn.fleet.deploy import OFFLINE, Row
from edgenn.fleet.session import connack_problem
from edgenn.fleet.status import natural_key
from edgenn.fleet.table import format_table
from edgenn.fleet.watch import Tally

MANIFEST = mf.Manifest("g", 5, "m", 10, "ab" * 32, 2048, 1, None, (1,), (2,))


def status(**fields) -> bytes:
    base = {"id": "b1", "online": True, "state": "serving", "reason": None, "seq": 4, "sha256": "cd" * 32}
    return json.dumps({**base, **fields}).encode()


def test_parse_status_tolerates_garbage_and_odd_fields() -> None:
    assert parse_status("b1", b"\xff") is None and parse_status("b1", b"[1]") is None
    st = parse_status("b1", status(seq="7", progress=[1], heap_free=True, state="dancing", extra=1))
    assert st.seq == 0 and st.progress is None and st.heap_free is None and st.state == "unknown ('dancing')"
    assert parse_status("b1", status(progress=[2, 4])).progress == (2, 4)
    assert parse_status("x", status()).id == "x"  # the topic names the board, not the payload


def test_row_verdicts() -> None:
    row = Row("b1", None, offline_at_start=False, initial=("refused", "old reason"))
    row.update(parse_status("b1", status(state="refused", reason="old reason")), MANIFEST)
    assert row.result is None  # the refusal from before this deploy (a heartbeat) is not an answer
    row.update(parse_status("b1", status(state="downloading", progress=[0, 1])), MANIFEST)
    row.update(parse_status("b1", status(state="refused", reason="old reason")), MANIFEST)
    assert (row.result, row.reason) == ("refused", "old reason")  # after activity it is

    row = Row("b2", None, offline_at_start=False, initial=("serving", None))
    row.update(parse_status("b2", status(state="serving", seq=5, sha256="ab" * 32)), MANIFEST)
    assert row.result == "ok"
    row.update(parse_status("b2", status(online=False, seq=5, sha256="ab" * 32)), MANIFEST)
    assert row.result == "ok"  # unplugged after it served: still done

    row = Row("b3", None, offline_at_start=False, initial=("serving", None))
    row.update(parse_status("b3", status(online=False)), MANIFEST)
    assert row.result is None  # went offline during the deploy: waited for
    row.time_out()
    assert (row.result, row.reason) == ("offline", OFFLINE)
    row = Row("b4", None, offline_at_start=False, initial=("serving", None))
    row.update(parse_status("b4", status(state="downloading", progress=[3, 4])), MANIFEST)
    row.time_out()
    assert row.reason == "timed out while downloading (3/4 chunks)"


def test_tally_gaps_duplicates_restarts() -> None:
    t = Tally()
    assert t.see("a", 5) == (True, 0, False)  # the first one seen: nothing known before it
    assert t.see("a", 6) == (True, 0, False)
    assert t.see("a", 6) == (False, 0, False)  # a QoS 1 redelivery
    assert t.see("a", 10) == (True, 3, False)
    assert t.see("a", 1) == (True, 0, True)
    assert (t.received, t.lost, t.duplicates, t.restarts) == (4, 3, 1, 1)
    assert (
        t.summary(2.0)
        == "4 predictions from 1 board in 2.0 s; 3 lost (gaps in n), 1 duplicates skipped, 1 board restarts"
    )


def test_connack_messages_and_tables() -> None:
    where = "the broker mqtt://u@h:1"
    assert "refused the user name or password" in connack_problem("Not authorized", where, True)
    assert "did not authorise this client" in connack_problem("Not authorized", where, False)
    assert "refused the connection (Server unavailable)" in connack_problem("Server unavailable", where, True)
    assert format_table(["a", "bb"], [[1, None], ["xyz", 2]]) == ["a    bb", "1    -", "xyz  2"]
    assert sorted(["b10", "b2", "a"], key=natural_key) == ["a", "b2", "b10"]
