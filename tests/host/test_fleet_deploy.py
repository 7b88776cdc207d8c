"""`edgenn fleet deploy` and `fleet status` against a real mosquitto and simulated boards
(edgenn.fleet.simboard): the happy path, and each way a board can say no."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import time

import pytest
from fleet_sim import (
    KEY,
    NEW,
    OLD,
    OTHER_KEY,
    chunk_topics,
    deploy_json,
    edgenn,
    retained,
    write_key,
    write_model,
)
from on_terminal import run_on_terminal

from edgenn.fleet import manifest as mf
from edgenn.fleet import topics
from edgenn.fleet.session import Session
from edgenn.fleet.simboard import SimFleet
from edgenn.fleet.url import parse_broker_url

NEW_SHA = hashlib.sha256(NEW).hexdigest()
OLD_SHA = hashlib.sha256(OLD).hexdigest()


@pytest.fixture
def fleet(mosquitto, tmp_path, request):
    group = f"g{abs(hash(request.node.name)) % 10**8}"  # one broker per session: a group per test
    with SimFleet(parse_broker_url(mosquitto.url), group, tmp_path / "boards", KEY) as sim:
        yield sim


def common(mosquitto, fleet, tmp_path) -> list[str]:
    return ["--broker", mosquitto.url, "--group", fleet.group, "--key", str(write_key(tmp_path))]


def all_online(fleet) -> bool:
    return fleet.wait(lambda: all(b.online for b in fleet.boards.values() if b.powered), 20)


@pytest.mark.slow
def test_deploy_to_ten_boards_then_status_and_a_second_deploy(mosquitto, fleet, tmp_path) -> None:
    for i in range(10):
        fleet.add(f"b{i}", model=OLD)
    assert all_online(fleet)
    code, out = deploy_json(str(write_model(tmp_path)), *common(mosquitto, fleet, tmp_path))
    assert code == 0, out
    assert out["ok"] and out["seq"] == 1 and out["sha256"] == NEW_SHA and out["chunks"] == 4
    assert sorted(b["id"] for b in out["boards"]) == [f"b{i}" for i in range(10)]
    assert all(b["ok"] and b["state"] == "serving" and b["seq"] == 1 for b in out["boards"])
    for board in fleet.boards.values():  # each board's own files: the new model served, the old one kept
        assert (board.dir / "model.enn").read_bytes() == NEW
        assert (board.dir / "model.enn.bak").read_bytes() == OLD
        assert json.loads((board.dir / "state.json").read_text())["seq"] == 1

    status = edgenn(
        "fleet", "status", "--broker", mosquitto.url, "--group", fleet.group, "--json", "--listen", "0"
    )
    assert status.returncode == 0, status.stderr
    rows = json.loads(status.stdout)["boards"]
    assert [r["id"] for r in rows] == [f"b{i}" for i in range(10)]  # natural order
    assert all(r["sha256"] == NEW_SHA and r["online"] and r["state"] == "serving" for r in rows)

    # the second deploy takes the next seq and clears the first one's chunks from the broker
    code, out = deploy_json(str(write_model(tmp_path, OLD, "old.enn")), *common(mosquitto, fleet, tmp_path))
    assert code == 0 and out["seq"] == 2 and out["cleared_seqs"] == [1]
    held = chunk_topics(mosquitto.url, fleet.group)
    assert sorted(held) == [topics.chunk(fleet.group, 2, 0)] and held[topics.chunk(fleet.group, 2, 0)] == OLD

    human = edgenn("fleet", "status", "--broker", mosquitto.url, "--group", fleet.group, "--listen", "0")
    lines = human.stdout.splitlines()
    assert lines[0].split()[:4] == ["board", "online", "state", "model"]
    assert lines[1].split()[:3] == ["b0", "yes", "serving"] and OLD_SHA[:12] in lines[1]
    assert lines[-1] == "10 boards, 10 online"


def test_a_refusing_board_is_named_and_the_others_update(mosquitto, fleet, tmp_path) -> None:
    fleet.add("ok1", model=OLD)
    fleet.add("small", model=OLD, heap=4000)  # the new model (7 KB) does not fit
    fleet.add("ok2", model=OLD)
    assert all_online(fleet)
    proc = edgenn("fleet", "deploy", str(write_model(tmp_path)), *common(mosquitto, fleet, tmp_path))
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "not deployed everywhere: 2/3 boards serve" in proc.stdout
    assert "  small: does not fit: MemoryError" in proc.stdout
    assert "small: refused" in proc.stderr  # the progress lines off a terminal
    assert (
        fleet.boards["small"].sha256 == OLD_SHA
        and (fleet.boards["small"].dir / "model.enn").read_bytes() == OLD
    )
    assert fleet.boards["ok1"].sha256 == NEW_SHA and fleet.boards["ok2"].sha256 == NEW_SHA


def test_rolled_back_board(mosquitto, fleet, tmp_path) -> None:
    fleet.add("b1", model=OLD, fail_health=True)
    assert all_online(fleet)
    code, out = deploy_json(str(write_model(tmp_path)), *common(mosquitto, fleet, tmp_path))
    assert code == 1 and out["boards"][0]["result"] == "rolled back"
    assert out["boards"][0]["reason"] == "health check failed after the swap"
    assert (fleet.boards["b1"].dir / "model.enn").read_bytes() == OLD


def test_wrong_key_is_refused_by_every_board(mosquitto, fleet, tmp_path) -> None:
    fleet.add("b1", model=OLD, key=OTHER_KEY)
    fleet.add("b2", model=OLD, key=OTHER_KEY)
    assert all_online(fleet)
    code, out = deploy_json(str(write_model(tmp_path)), *common(mosquitto, fleet, tmp_path))
    assert code == 1
    assert [(b["id"], b["result"], b["reason"]) for b in out["boards"]] == [
        ("b1", "refused", mf.BAD_SIGNATURE),
        ("b2", "refused", mf.BAD_SIGNATURE),
    ]
    assert all(b.sha256 == OLD_SHA for b in fleet.boards.values())


def test_offline_board_updates_when_it_comes_back(mosquitto, fleet, tmp_path) -> None:
    fleet.add("on", model=OLD)
    fleet.add("off", model=OLD)
    assert all_online(fleet)
    fleet.power_off("off")  # pulled plug: the broker publishes its last will (online: false)
    assert fleet.wait(lambda: _retained_status(mosquitto.url, fleet.group, "off")["online"] is False, 10)
    code, out = deploy_json(str(write_model(tmp_path)), *common(mosquitto, fleet, tmp_path))
    assert code == 1
    rows = {b["id"]: b for b in out["boards"]}
    assert (
        rows["on"]["ok"]
        and rows["off"]["result"] == "offline"
        and "when it comes back" in rows["off"]["reason"]
    )
    fleet.power_on("off")
    assert fleet.wait(lambda: fleet.boards["off"].sha256 == NEW_SHA, 20)
    assert fleet.boards["off"].seq == 1 and fleet.boards["off"].state == "serving"


def test_named_boards_only_and_an_unknown_id(mosquitto, fleet, tmp_path) -> None:
    fleet.add("b1", model=OLD)
    fleet.add("b2", model=OLD)
    assert all_online(fleet)
    args = common(mosquitto, fleet, tmp_path)
    code, out = deploy_json(str(write_model(tmp_path)), *args, "--boards", "b2")
    assert code == 0 and [b["id"] for b in out["boards"]] == ["b2"]
    assert fleet.boards["b1"].sha256 == OLD_SHA and fleet.boards["b2"].sha256 == NEW_SHA
    manifest = mf.parse(retained(mosquitto.url, [topics.manifest(fleet.group)])[topics.manifest(fleet.group)])
    assert manifest.boards == ("b2",)
    code, out = deploy_json(
        str(write_model(tmp_path, OLD, "old.enn")), *args, "--boards", "b1,ghost", "--timeout", "5"
    )
    assert code == 1 and {b["id"]: b["result"] for b in out["boards"]} == {"b1": "ok", "ghost": "offline"}


def test_tampered_chunk_and_replayed_manifest_are_refused(mosquitto, fleet, tmp_path) -> None:
    fleet.add("b1", model=OLD)
    fleet.add("b2", model=OLD)
    assert all_online(fleet)
    url = parse_broker_url(mosquitto.url)
    code, first = deploy_json(str(write_model(tmp_path, OLD, "old.enn")), *common(mosquitto, fleet, tmp_path))
    assert code == 0 and first["seq"] == 1
    old_manifest = retained(mosquitto.url, [topics.manifest(fleet.group)])[topics.manifest(fleet.group)]

    # Someone with write access to the broker (not the key) alters a chunk of a correctly signed update.
    manifest, pieces = mf.build(NEW, fleet.group, 2, KEY)
    pieces[1] = bytes([pieces[1][0] ^ 1]) + pieces[1][1:]
    with Session(url, "attacker") as s:
        s.publish_all([(topics.chunk(fleet.group, 2, i), p) for i, p in enumerate(pieces)], retain=True)
        s.publish(topics.manifest(fleet.group), manifest.to_bytes(), retain=True)
    assert fleet.wait(lambda: all(b.state == "refused" for b in fleet.boards.values()), 20)
    assert {b.reason for b in fleet.boards.values()} == {"sha256 mismatch: a chunk was altered or lost"}
    assert all(
        b.sha256 == OLD_SHA and (b.dir / "model.enn").read_bytes() == OLD for b in fleet.boards.values()
    )
    status = edgenn("fleet", "status", "--broker", mosquitto.url, "--group", fleet.group, "--listen", "0")
    assert "refused  " in status.stdout and "sha256 mismatch: a chunk was altered or lost" in status.stdout

    # A real deploy after it takes a seq above everything seen (the tampered one's too) and succeeds.
    code, out = deploy_json(str(write_model(tmp_path)), *common(mosquitto, fleet, tmp_path))
    assert code == 0 and out["seq"] == 3 and out["cleared_seqs"] == [1, 2]
    assert all(b.sha256 == NEW_SHA for b in fleet.boards.values())

    # The first, correctly signed manifest published again (a replay) is refused; the boards serve on.
    with Session(url, "attacker") as s:
        s.publish(topics.manifest(fleet.group), old_manifest, retain=True)
    assert fleet.wait(lambda: all(b.state == "refused" for b in fleet.boards.values()), 20)
    assert {b.reason for b in fleet.boards.values()} == {"replayed manifest (seq 1 <= accepted 3)"}
    assert all(
        b.sha256 == NEW_SHA and (b.dir / "model.enn").read_bytes() == NEW for b in fleet.boards.values()
    )


def _retained_status(url: str, group: str, board: str) -> dict:
    payload = retained(url, [topics.status(group, board)]).get(topics.status(group, board))
    return json.loads(payload) if payload else {}


@pytest.mark.parametrize(
    "name, data, message",
    [
        ("model.npz", NEW, "is not a .enn model"),
        ("broken.enn", NEW[:100], "broken.enn: "),
        ("missing.enn", None, "no such file"),
    ],
)
def test_bad_model_is_refused_before_anything_is_published(
    mosquitto, fleet, tmp_path, name, data, message
) -> None:
    path = tmp_path / name
    if data is not None:
        path.write_bytes(data)
    proc = edgenn("fleet", "deploy", str(path), *common(mosquitto, fleet, tmp_path))
    assert proc.returncode == 2 and proc.stderr.startswith("edgenn fleet: error: ") and message in proc.stderr
    assert proc.stderr.count("\n") == 1 and proc.stdout == ""
    assert retained(mosquitto.url, [f"{topics.PREFIX}/{fleet.group}/#"]) == {}


def test_user_mistakes_are_one_line(mosquitto, fleet, tmp_path) -> None:
    args = common(mosquitto, fleet, tmp_path)
    model = str(write_model(tmp_path))
    for extra, message in [
        (["--boards", "a/b"], "board id 'a/b' must be"),
        (["--timeout", "0"], "--timeout must be"),
        (["--group", "x+y"], "group 'x+y' must be"),
    ]:
        proc = edgenn("fleet", "deploy", model, *args, *extra)
        assert proc.returncode == 2 and message in proc.stderr and proc.stderr.count("\n") == 1, proc.stderr
    proc = edgenn("fleet", "deploy", model, *args)  # no board has a status yet
    assert proc.returncode == 2 and "no board of group" in proc.stderr


def test_live_table_on_a_terminal(mosquitto, fleet, tmp_path) -> None:
    fleet.add("b1", model=OLD)
    fleet.add("b2", model=OLD)
    assert all_online(fleet)
    code, screen = run_on_terminal(
        ["fleet", "deploy", str(write_model(tmp_path)), *common(mosquitto, fleet, tmp_path)]
    )
    assert code == 0
    assert "boards serve the new model" in screen and "\x1b[J" in screen  # redrawn in place
    assert "board  state" in screen


@pytest.mark.slow
def test_broker_restart_during_a_deploy(mosquitto, fleet, tmp_path) -> None:
    """mosquitto without persistence forgets every retained message: deploy publishes them again when
    it reconnects, and the boards (which reconnect too) finish."""
    fleet.add("b1", model=OLD)
    slow = fleet.add("slow", model=OLD, hold=True)  # stays `downloading` until released
    assert all_online(fleet)
    args = ["fleet", "deploy", str(write_model(tmp_path)), *common(mosquitto, fleet, tmp_path), "--json"]
    proc = subprocess.Popen([sys.executable, "-m", "edgenn.cli", *args], stdout=subprocess.PIPE, text=True)
    try:
        assert fleet.wait(lambda: slow.state == "downloading" and fleet.boards["b1"].sha256 == NEW_SHA, 30)
        mosquitto.stop()
        assert fleet.wait(lambda: not slow.online, 10)
        mosquitto.start()
        assert fleet.wait(lambda: slow.online, 20)
        fleet.call(slow.release)
        out, _ = proc.communicate(timeout=60)
    finally:
        proc.kill()
    result = json.loads(out)
    assert proc.returncode == 0 and result["ok"], result
    assert slow.sha256 == NEW_SHA and (slow.dir / "model.enn").read_bytes() == NEW


@pytest.mark.slow
def test_board_unplugged_mid_download_finishes_when_it_returns(mosquitto, fleet, tmp_path) -> None:
    """deploy waits for a board that goes offline during the update; powered on, it starts the download
    again from the retained chunks (its .part file is dropped at boot) and serves the new model."""
    fleet.add("b1", model=OLD)
    slow = fleet.add("slow", model=OLD, hold=True)
    assert all_online(fleet)
    args = ["fleet", "deploy", str(write_model(tmp_path)), *common(mosquitto, fleet, tmp_path), "--json"]
    proc = subprocess.Popen([sys.executable, "-m", "edgenn.cli", *args], stdout=subprocess.PIPE, text=True)
    try:
        assert fleet.wait(lambda: slow.state == "downloading", 30)
        fleet.power_off("slow")
        assert (slow.dir / "model.enn").read_bytes() == OLD  # the served model is untouched
        time.sleep(1.0)  # the deploy sees its last will
        slow.hold = False
        fleet.power_on("slow")
        out, _ = proc.communicate(timeout=60)
    finally:
        proc.kill()
    result = json.loads(out)
    assert proc.returncode == 0 and {b["id"]: b["result"] for b in result["boards"]} == {
        "b1": "ok",
        "slow": "ok",
    }
    assert slow.sha256 == NEW_SHA and not (slow.dir / "model.enn.part").exists()


def test_a_refusal_of_an_earlier_update_is_not_the_answer_to_this_deploy() -> None:
    # A board powered on again mid-download shows, until it takes the new manifest, the refusal of an
    # earlier update (kept in its fleet.note); only a refusal naming this manifest's seq ends its row.
    from edgenn.fleet.boardstatus import BoardStatus
    from edgenn.fleet.deploy import Row

    manifest, _pieces = mf.build(NEW, "g", 11, KEY, chunk=64)
    old = BoardStatus(
        "b2", True, "refused", "sha256 mismatch: a chunk was altered or lost", update_seq=9, seq=4
    )
    row = Row("b2", old, offline_at_start=False, initial=("refused", old.reason))
    row.update(BoardStatus("b2", True, "downloading", update_seq=11, seq=4, progress=(3, 48)), manifest)
    assert row.result is None and row.active
    row.update(old, manifest)  # restarted: the old refusal again, before the manifest reaches it
    assert row.result is None
    row.update(BoardStatus("b2", True, "refused", "sha256 mismatch", update_seq=11, seq=4), manifest)
    assert (row.result, row.reason) == ("refused", "sha256 mismatch")
    done = Row("b3", None, offline_at_start=False, initial=None)
    done.update(BoardStatus("b3", True, "serving", seq=11, sha256=manifest.sha256), manifest)
    assert done.result == "ok"
