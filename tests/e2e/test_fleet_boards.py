"""A fleet of virtual boards (esp32 profile, plus one ESP32-S3 with PSRAM: a larger heap) joined to a real
mosquitto, updated by `edgenn fleet deploy`: every board ends serving the new model (eval-device
agreement 100%), and each fault of issue 16 leaves every board with a working model and the command
saying what happened.

The tests share one fleet (module scope: starting, deploying and joining six boards is the slow part)
and run in file order; each leaves every board serving a working model for the next.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import time
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from fleet_helpers import GROUP, Listener, board_info, deployed_and_joined, need_board_lib
from vboard_helpers import RunningVBoard, edgenn, launch_vboard, runtime_or_skip

from edgenn import modelfile, zoo
from edgenn.demo import train_and_quantize
from edgenn.fleet import manifest as mf

pytestmark = pytest.mark.slow

ESP32_IDS = ["b1", "b2", "b3", "b4", "b5"]
BIG_ID = "s3"  # an ESP32-S3 with PSRAM (a profile made for the test): more heap than a plain ESP32
BIG_PROFILE = "esp32s3_psram"


def _psram_profiles(directory: Path) -> Path:
    """The shipped profiles plus an ESP32-S3 with 1 MB of PSRAM heap (the esp32s3 profile, its GC
    areas as large as PSRAM makes them), for a board with room for a model the others refuse."""
    from edgenn.boards import boards_dir

    directory.mkdir()
    for path in boards_dir().glob("*.json"):
        (directory / path.name).write_text(path.read_text())
    psram = json.loads((directory / "esp32s3.json").read_text())
    mb = 1024 * 1024
    psram.update(name=BIG_PROFILE, heap_bytes=mb, largest_block_bytes=mb, gc_first_area_bytes=mb,
                 gc_heap_max_bytes=mb, gc_area_max_bytes=mb)  # fmt: skip
    (directory / f"{BIG_PROFILE}.json").write_text(json.dumps(psram))
    return directory


class Fleet:
    def __init__(self, root: Path) -> None:
        from mqtt_broker import Mosquitto

        self.root = root
        self.broker = Mosquitto(root / "broker")
        self.broker.start()
        self.key = root / "fleet.key"
        assert edgenn("fleet", "keygen", "-o", str(self.key)).returncode == 0
        self.models: dict[str, Path] = {}
        for name, hidden in (("iris8", (8,)), ("iris16", (16,)), ("iris12", (12,)), ("iris6", (6,))):
            _dataset, _fm, qm, _warnings = train_and_quantize("iris", hidden, seed=1)
            self.models[name] = root / f"{name}.enn"
            modelfile.save(qm, self.models[name])
        built = zoo.build_zoo(seed=1)
        for name in ("sigmoid_4", "mixed_3", "inputs_256"):
            self.models[name] = root / f"{name}.enn"
            modelfile.save(built[name], self.models[name])
        self.boards: dict[str, RunningVBoard] = {}
        self.profiles = {**{i: "esp32" for i in ESP32_IDS}, BIG_ID: BIG_PROFILE}
        for board_id in self.profiles:
            self.boards[board_id] = deployed_and_joined(
                self.start_board, root / board_id, self.models["iris8"], self.broker.url, self.key, board_id
            )
        self.listener = Listener(self.broker.port)

    def start_board(self, flash: Path) -> RunningVBoard:
        board = launch_vboard(flash, self.profiles[flash.name])
        self.boards[flash.name] = board
        return board

    def deploy(self, model: str, *extra: str, timeout: float = 120) -> subprocess.CompletedProcess:
        return edgenn(
            "fleet", "deploy", str(self.models[model]), "--broker", self.broker.url, "--group", GROUP,
            "--key", str(self.key), "--json", *extra, timeout=timeout,
        )  # fmt: skip

    def deploy_in_background(self, model: str, *extra: str) -> subprocess.Popen:
        return subprocess.Popen(
            [sys.executable, "-m", "edgenn.cli", "fleet", "deploy", str(self.models[model]), "--broker",
             self.broker.url, "--group", GROUP, "--key", str(self.key), "--json", *extra],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip

    def sha(self, model: str) -> str:
        return hashlib.sha256(self.models[model].read_bytes()).hexdigest()

    def serving(self, ids: list[str], model: str) -> bool:
        want = self.sha(model)
        # (a board that refused a later manifest says "refused" and why, while it serves its model)
        return all(
            self.listener.status.get(i, {}).get("sha256") == want
            and self.listener.status[i].get("state") in ("serving", "refused")
            and self.listener.status[i].get("online")
            for i in ids
        )

    def close(self) -> None:
        self.listener.close()
        for board in self.boards.values():
            board.stop()
        self.broker.stop()


@pytest.fixture(scope="module")
def fleet(tmp_path_factory):
    from mqtt_broker import have_mosquitto

    if not have_mosquitto():
        pytest.skip("needs Debian's mosquitto")
    runtime_or_skip()
    need_board_lib()
    root = tmp_path_factory.mktemp("fleet")
    with pytest.MonkeyPatch.context() as mp:  # module scope: the fixture's own monkeypatch
        mp.setenv("EDGENN_BOARDS_DIR", str(_psram_profiles(root / "boards")))
        f = Fleet(root)
        yield f
        f.close()


def _json(result: subprocess.CompletedProcess) -> dict:
    return json.loads(result.stdout)


def _by_id(report: dict) -> dict[str, dict]:
    return {b["id"]: b for b in report["boards"]}


def _eval_agreement(port: str) -> float:
    result = edgenn("eval-device", "--port", port, "iris", "--json")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)["agreement"]


def test_deploy_updates_every_board_and_each_agrees_with_golden(fleet: Fleet) -> None:
    result = fleet.deploy("iris16")
    assert result.returncode == 0, result.stdout + result.stderr
    report = _by_id(_json(result))
    assert set(report) == set(fleet.profiles)
    assert all(b["ok"] and b["sha256"] == fleet.sha("iris16") for b in report.values()), report
    status = edgenn("fleet", "status", "--broker", fleet.broker.url, "--group", GROUP, "--json")
    assert status.returncode == 0, status.stderr
    listed = _by_id(_json(status))
    assert {i: b["sha256"] for i, b in listed.items()} == {i: fleet.sha("iris16") for i in fleet.profiles}
    for board_id in ESP32_IDS:
        assert _eval_agreement(fleet.boards[board_id].port) == 1.0
        assert (fleet.boards[board_id].flash_dir / "model.enn.bak").read_bytes() == fleet.models[
            "iris8"
        ].read_bytes()  # the previous model kept for a roll back


def test_manifest_signed_with_another_key_is_refused(fleet: Fleet, tmp_path: Path) -> None:
    other = tmp_path / "other.key"
    assert edgenn("fleet", "keygen", "-o", str(other)).returncode == 0
    result = edgenn(
        "fleet", "deploy", str(fleet.models["iris12"]), "--broker", fleet.broker.url, "--group", GROUP,
        "--key", str(other), "--json", "--timeout", "30",
    )  # fmt: skip
    assert result.returncode != 0
    report = _by_id(_json(result))
    assert all("bad signature" in (b["reason"] or "") for b in report.values()), report
    assert fleet.serving(list(fleet.profiles), "iris16")
    assert board_info(fleet.boards["b1"].port)["model"] == "iris"  # still serving over serial


def _publish(port: int, topic: str, payload: bytes) -> None:
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
    client.connect("127.0.0.1", port)
    client.loop_start()
    client.publish(topic, payload, qos=1, retain=True).wait_for_publish(10)
    client.loop_stop()
    client.disconnect()


def test_replayed_older_manifest_is_refused(fleet: Fleet) -> None:
    assert fleet.deploy("iris12").returncode == 0
    older = fleet.listener.messages[f"edgenn/{GROUP}/manifest"]  # signed with the fleet key, accepted
    assert fleet.deploy("iris8").returncode == 0  # a newer one is accepted
    _publish(fleet.broker.port, f"edgenn/{GROUP}/manifest", older)  # an attacker replays the old one
    fleet.listener.wait(
        lambda s: all(
            "replayed manifest" in (s.status.get(i, {}).get("reason") or "") for i in fleet.profiles
        ),
        say="every board refusing the replay",
    )
    assert all(fleet.listener.status[i]["sha256"] == fleet.sha("iris8") for i in fleet.profiles)
    assert all(fleet.listener.status[i]["state"] == "refused" for i in fleet.profiles)


def test_tampered_chunk_is_refused(fleet: Fleet) -> None:
    seq = max(s["seq"] for s in fleet.listener.status.values()) + 5
    key = bytes.fromhex(fleet.key.read_text().strip())
    manifest, chunks = mf.build(fleet.models["iris12"].read_bytes(), GROUP, seq, key, chunk=256)
    for i, chunk in enumerate(chunks):
        data = bytearray(chunk)
        if i == 1:
            data[7] ^= 0x01  # one bit of the model altered on its way
        _publish(fleet.broker.port, f"edgenn/{GROUP}/model/{seq}/{i}", bytes(data))
    _publish(fleet.broker.port, f"edgenn/{GROUP}/manifest", manifest.to_bytes())
    fleet.listener.wait(
        lambda s: all("sha256 mismatch" in (s.status.get(i, {}).get("reason") or "") for i in fleet.profiles),
        say="every board refusing the altered model",
    )
    assert all(fleet.listener.status[i]["sha256"] == fleet.sha("iris8") for i in fleet.profiles)
    for board_id in fleet.profiles:
        assert not (fleet.boards[board_id].flash_dir / "model.enn.part").exists()


def test_model_too_big_for_one_board_that_board_refuses_the_other_updates(fleet: Fleet) -> None:
    result = fleet.deploy("inputs_256", "--boards", f"b1,{BIG_ID}", "--timeout", "60")
    assert result.returncode != 0
    report = _by_id(_json(result))
    assert report[BIG_ID]["ok"] and report[BIG_ID]["sha256"] == fleet.sha("inputs_256"), report
    assert not report["b1"]["ok"] and "heap" in report["b1"]["reason"], report
    assert "b1" in result.stderr or "b1" in result.stdout
    fleet.listener.wait(lambda s: s.status["b1"]["online"] and s.status["b1"]["sha256"] == fleet.sha("iris8"))
    assert board_info(fleet.boards["b1"].port)["model"] == "iris"  # b1 still serves its model
    assert fleet.serving(["b2", "b3", "b4", "b5"], "iris8")  # not targeted: untouched


def test_board_killed_mid_download_finishes_when_powered_on(fleet: Fleet) -> None:
    targets = ESP32_IDS
    # sigmoid_4 (3 KB) in 64-byte chunks: a download of 48 messages, long enough to cut in the middle
    deploy = fleet.deploy_in_background("sigmoid_4", "--chunk-size", "64", "--boards", ",".join(targets))
    fleet.listener.wait(lambda s: s.status.get("b2", {}).get("state") == "downloading", say="b2 downloading")
    victim = fleet.boards["b2"]
    victim.process.kill()  # power cut in the middle of the download
    victim.process.wait()
    time.sleep(1)
    fleet.start_board(victim.flash_dir)  # powered on again: the retained chunks are still there
    # (b2 refused the tampered update before: at boot its status shows that refusal again, of an older
    # seq, until it takes this manifest; the deploy must not take it for b2's answer)
    out, err = deploy.communicate(timeout=180)
    assert deploy.returncode == 0, out + err
    assert all(b["ok"] for b in json.loads(out)["boards"])
    assert fleet.serving(targets, "sigmoid_4")
    assert (victim.flash_dir / "model.enn").read_bytes() == fleet.models["sigmoid_4"].read_bytes()


def test_broker_restart_during_deploy(fleet: Fleet) -> None:
    targets = ESP32_IDS
    deploy = fleet.deploy_in_background("mixed_3", "--chunk-size", "64", "--boards", ",".join(targets))

    def published(s: Listener) -> bool:  # the deploy has put out its manifest: it is under way
        manifest = json.loads(s.messages.get(f"edgenn/{GROUP}/manifest") or b"{}")
        return manifest.get("sha256") == fleet.sha("mixed_3")

    fleet.listener.wait(published, say="the deploy's manifest")
    fleet.broker.stop()
    with fleet.listener.lock:
        fleet.listener.status.clear()  # the broker forgets retained statuses (no persistence)
    time.sleep(2)
    fleet.broker.start()  # same port; deploy publishes chunks and manifest again, boards reconnect
    out, err = deploy.communicate(timeout=180)
    assert deploy.returncode == 0, out + err
    fleet.listener.wait(lambda s: fleet.serving(targets, "mixed_3"), say="every board serving it")
    fleet.listener.wait(lambda s: all(i in s.status for i in fleet.profiles), say="every board back")
    name = modelfile.load(fleet.models["mixed_3"]).name
    for board_id in targets:
        assert board_info(fleet.boards[board_id].port)["model"] == name


def test_board_offline_for_the_whole_deploy_updates_when_it_joins(fleet: Fleet) -> None:
    away = fleet.boards["b5"]
    away.stop()
    fleet.listener.wait(lambda s: s.status["b5"]["online"] is False, say="b5's last will")
    result = fleet.deploy("iris12", "--boards", ",".join(ESP32_IDS), "--timeout", "30")
    assert result.returncode != 0  # not every targeted board serves it yet, and it says which
    report = _by_id(_json(result))
    assert all(report[i]["ok"] for i in ["b1", "b2", "b3", "b4"]), report
    assert not report["b5"]["ok"] and "offline" in report["b5"]["reason"]
    fleet.start_board(away.flash_dir)
    fleet.listener.wait(lambda s: fleet.serving(["b5"], "iris12"), timeout=60, say="b5 updated on its return")
    assert _eval_agreement(fleet.boards["b5"].port) == 1.0
