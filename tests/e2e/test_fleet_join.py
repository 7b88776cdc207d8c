"""`edgenn fleet join` on virtual boards (esp32 profile) with a real mosquitto: the agent and umqtt.simple
installed compiled, the board's retained status and last will, its predictions from serial requests,
secrets never printed, a broker with a password file and an ACL, Home Assistant discovery, and a board
that never joined paying nothing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from fleet_helpers import GROUP, Listener, board_info, deployed_and_joined, join, need_board_lib, predict_many
from vboard_helpers import edgenn, runtime_or_skip

from edgenn import modelfile, zoo

pytestmark = pytest.mark.slow

PASSWORD = "s3cret-Broker-pw"


@pytest.fixture(scope="module")
def model(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("fleet_models") / "relu_2.enn"
    modelfile.save(zoo.build_zoo(seed=1)["relu_2"], path)
    return path


@pytest.fixture
def key(tmp_path: Path) -> Path:
    path = tmp_path / "fleet.key"
    assert edgenn("fleet", "keygen", "-o", str(path)).returncode == 0
    return path


@pytest.fixture
def secure_broker(tmp_path: Path):
    from mqtt_broker import Mosquitto, have_mosquitto

    if not have_mosquitto():
        pytest.skip("needs Debian's mosquitto")
    acl = "user b1\ntopic readwrite edgenn/lab/#\ntopic readwrite homeassistant/#\n"
    broker = Mosquitto(tmp_path / "broker", users={"b1": PASSWORD}, acl=acl)
    broker.start()
    yield broker
    broker.stop()


def test_join_with_password_file_acl_and_homeassistant(
    start_vboard, secure_broker, model, key, tmp_path
) -> None:
    runtime_or_skip()
    need_board_lib()
    pw_file = tmp_path / "broker.pw"
    pw_file.write_text(PASSWORD + "\n")
    url = f"mqtt://b1@127.0.0.1:{secure_broker.port}"
    board = start_vboard(tmp_path / "flash")
    assert edgenn("deploy", str(model), "--port", board.port).returncode == 0
    listener = Listener(secure_broker.port, "b1", PASSWORD)
    try:
        result = join(board, url, key, "b1", "--password-file", str(pw_file), "--homeassistant")
        assert result.returncode == 0, result.stderr
        files = {p.relative_to(board.flash_dir).as_posix() for p in board.flash_dir.rglob("*") if p.is_file()}
        assert {"edgenn_fleet.mpy", "lib/umqtt/simple.mpy", "fleet.json", "fleet.key"} <= files
        assert not any(name.endswith((".part", ".py")) and name != "main.py" for name in files)
        config = json.loads((board.flash_dir / "fleet.json").read_text())
        assert config["password"] == PASSWORD and config["user"] == "b1"  # on the board, nowhere else

        listener.wait(lambda s: s.status.get("b1", {}).get("online") is True, say="b1 online")
        status = listener.status["b1"]
        assert status["state"] == "serving" and status["model"] == modelfile.load(model).name
        assert status["sha256"] == __import__("hashlib").sha256(model.read_bytes()).hexdigest()
        assert status["heap_free"] > 0 and status["firmware"].count(".") == 2
        ha = json.loads(listener.messages[f"homeassistant/sensor/edgenn_{GROUP}_b1/config"])
        assert ha["state_topic"] == f"edgenn/{GROUP}/b1/pred" and "value_json.label" in ha["value_template"]

        n_in = modelfile.load(model).n_inputs
        predict_many(board.port, 40, n_in)  # the board keeps serving serial, and publishes each one
        listener.wait(lambda s: len(s.preds.get("b1", [])) >= 40, say="40 predictions")
        ns = [p["n"] for p in listener.preds["b1"]]
        assert ns == list(range(ns[0], ns[0] + len(ns)))  # none lost, in order
        assert {p["src"] for p in listener.preds["b1"]} == {"serial"}

        board.stop()  # power off: the broker publishes the last will
        listener.wait(lambda s: s.status["b1"]["online"] is False, say="the last will")
    finally:
        listener.close()
    out, err = board.process.communicate()
    key_hex = key.read_text().strip()
    for text in (result.stdout, result.stderr, out.decode(errors="replace"), err.decode(errors="replace")):
        assert PASSWORD not in text and key_hex not in text
    assert "b1@127.0.0.1" in result.stdout  # the address, without its password


def test_wrong_broker_password_is_refused_and_the_board_keeps_serving(
    start_vboard, secure_broker, model, key, tmp_path
):
    runtime_or_skip()
    need_board_lib()
    board = deployed_and_joined(
        start_vboard, tmp_path / "flash", model, f"mqtt://b1:wrong@127.0.0.1:{secure_broker.port}", key, "b1"
    )
    listener = Listener(secure_broker.port, "b1", PASSWORD)
    try:
        predict_many(board.port, 5, modelfile.load(model).n_inputs)
        info = board_info(board.port)
        assert info["model"] == modelfile.load(model).name and "warning" not in info
        assert "b1" not in listener.status  # refused by the broker: it never got in
    finally:
        listener.close()
    assert "not authorised" in secure_broker.log.read_text().lower() or "not authorized" in (
        secure_broker.log.read_text().lower()
    )


def test_join_refuses_bad_names_with_one_line(vboard, key) -> None:
    result = join(vboard, "mqtt://127.0.0.1:1", key, "b/1")
    assert result.returncode == 2
    assert result.stderr.startswith("edgenn fleet: error: --id 'b/1'") and "Traceback" not in result.stderr
    url = "mqtt://127.0.0.1:1"
    args = ["--port", vboard.port, "--broker", url, "--group", "a+b", "--id", "b1", "--key", str(key)]
    result = edgenn("fleet", "join", *args)
    assert result.returncode == 2 and "--group 'a+b'" in result.stderr


def test_a_board_that_never_joined_pays_nothing(start_vboard, mosquitto, model, key, tmp_path) -> None:
    runtime_or_skip()
    need_board_lib()
    plain = start_vboard(tmp_path / "plain")
    assert edgenn("deploy", str(model), "--port", plain.port).returncode == 0
    joined = deployed_and_joined(start_vboard, tmp_path / "joined", model, mosquitto.url, key, "b1")
    heap_plain = board_info(plain.port)["heap_free"]
    heap_joined = board_info(joined.port)["heap_free"]
    assert not (plain.flash_dir / "fleet.json").exists()
    # the agent, umqtt.simple and their buffers cost heap only on the board that joined
    assert heap_joined < heap_plain - 4000, (heap_plain, heap_joined)
    print(
        f"heap free: not joined {heap_plain} B, joined {heap_joined} B (agent {heap_plain - heap_joined} B)"
    )
