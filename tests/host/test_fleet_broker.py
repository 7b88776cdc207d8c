"""The fleet commands against a broker with a password file and an ACL (as a Home Assistant add-on or a
hardened mosquitto runs), and the messages for a broker that refuses or is not there."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from fleet_sim import KEY, NEW, OLD, edgenn, write_key, write_model
from mqtt_broker import Mosquitto, free_port, have_mosquitto

from edgenn.errors import UserError
from edgenn.fleet.session import Session
from edgenn.fleet.simboard import SimFleet
from edgenn.fleet.url import parse_broker_url

PASSWORD = "s3cret-laptop"
ACL = "user laptop\ntopic readwrite edgenn/lab/#\n\nuser boards\ntopic readwrite edgenn/lab/#\n"


@pytest.fixture(scope="module")
def locked_broker(tmp_path_factory):
    if not have_mosquitto():
        pytest.skip("needs Debian's mosquitto: apt-get install mosquitto (.ci/run installs it)")
    broker = Mosquitto(
        tmp_path_factory.mktemp("locked"), users={"laptop": PASSWORD, "boards": "s3cret-boards"}, acl=ACL
    )
    broker.start()
    yield broker
    broker.stop()


def url_with(broker: Mosquitto, who: str) -> str:
    return broker.url.replace("mqtt://", f"mqtt://{who}@")


@pytest.mark.slow
def test_deploy_and_status_with_a_password_file_and_an_acl(locked_broker, tmp_path) -> None:
    boards_url = parse_broker_url(url_with(locked_broker, "boards:s3cret-boards"))
    secret = tmp_path / "broker.pw"
    secret.write_text(PASSWORD + "\n")
    login = ["--broker", url_with(locked_broker, "laptop"), "--password-file", str(secret), "--group", "lab"]
    with SimFleet(boards_url, "lab", tmp_path / "boards", KEY) as fleet:
        for i in range(3):
            fleet.add(f"b{i}", model=OLD)
        assert fleet.wait(lambda: all(b.online for b in fleet.boards.values()), 20)
        proc = edgenn(
            "fleet", "deploy", str(write_model(tmp_path)), *login, "--key", str(write_key(tmp_path))
        )
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert PASSWORD not in proc.stdout + proc.stderr
        status = edgenn("fleet", "status", *login, "--json", "--listen", "0")
        boards = json.loads(status.stdout)["boards"]
        assert len(boards) == 3 and all(b["sha256"] == fleet.boards["b0"].sha256 for b in boards)
        assert json.loads(status.stdout)["broker"] == f"mqtt://laptop@127.0.0.1:{locked_broker.port}"
        assert (fleet.boards["b0"].dir / "model.enn").read_bytes() == NEW

        # The ACL gives this user group `lab` only. MQTT 3.1.1 acknowledges what the ACL drops, so
        # status can only say it sees nothing; deploy sees its manifest does not come back.
        other = edgenn("fleet", "status", *login[:4], "--group", "other", "--listen", "0")
        assert (
            other.returncode == 0
            and "the broker's ACL may hide edgenn/other/# from this user" in other.stdout
        )
        key = str(write_key(tmp_path))
        denied = edgenn(
            "fleet",
            "deploy",
            str(write_model(tmp_path)),
            *login[:4],
            "--group",
            "other",
            "--key",
            key,
            "--boards",
            "b0",
        )
        assert denied.returncode == 2, denied.stdout + denied.stderr
        assert "did not pass the manifest on: this user may not write or read edgenn/other/#" in denied.stderr


def test_wrong_password_and_no_user_are_refused_clearly(locked_broker) -> None:
    wrong = edgenn(
        "fleet", "status", "--broker", url_with(locked_broker, "laptop:guess123"), "--group", "lab"
    )
    assert wrong.returncode == 2 and wrong.stdout == ""
    assert wrong.stderr == (
        f"edgenn fleet: error: the broker mqtt://laptop@127.0.0.1:{locked_broker.port} refused the user name "
        "or password: check the URL's USER:PASS or --password-file\n"
    )
    anonymous = edgenn("fleet", "watch", "--broker", locked_broker.url, "--group", "lab", "--count", "1")
    assert anonymous.returncode == 2 and "did not authorise this client" in anonymous.stderr
    assert anonymous.stderr.count("\n") == 1


def test_no_broker_and_unknown_host() -> None:
    port = free_port()
    for url, message in [
        (f"mqtt://127.0.0.1:{port}", f"no broker listening at mqtt://127.0.0.1:{port}"),
        ("mqtt://user:pw@no-such-host.invalid", "cannot find the broker host 'no-such-host.invalid'"),
    ]:
        with pytest.raises(UserError, match=message) as exc:
            Session(parse_broker_url(url), "test").connect()
        assert ":pw" not in str(exc.value)
    proc = edgenn("fleet", "status", "--broker", f"mqtt://127.0.0.1:{port}", "--group", "lab")
    assert proc.returncode == 2 and proc.stderr.startswith("edgenn fleet: error: no broker listening")


def make_certificates(directory: Path) -> dict[str, Path]:
    """A throwaway CA and a server certificate for 127.0.0.1 (openssl, as a user would make them)."""
    files = {
        name: directory / name for name in ("ca.pem", "ca.key", "server.pem", "server.key", "server.csr")
    }
    days = ["-days", "2"]
    run = [
        ["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", files["ca.key"], "-out", files["ca.pem"]]
        + [*days, "-subj", "/CN=edgenn test CA"],
        ["req", "-newkey", "rsa:2048", "-nodes", "-keyout", files["server.key"], "-out", files["server.csr"]]
        + ["-subj", "/CN=127.0.0.1"],
        ["x509", "-req", "-in", files["server.csr"], "-CA", files["ca.pem"], "-CAkey", files["ca.key"]]
        + ["-CAcreateserial", "-out", files["server.pem"], *days, "-extfile", directory / "san.cnf"],
    ]
    (directory / "san.cnf").write_text("subjectAltName=IP:127.0.0.1\n")
    for args in run:
        subprocess.run(["openssl", *map(str, args)], check=True, capture_output=True)
    return files


def test_tls_broker(tmp_path) -> None:
    if not have_mosquitto() or shutil.which("openssl") is None:
        pytest.skip("needs Debian's mosquitto and openssl")
    certs = make_certificates(tmp_path)
    broker = Mosquitto(tmp_path / "tls")
    tls_lines = f"cafile {certs['ca.pem']}\ncertfile {certs['server.pem']}\nkeyfile {certs['server.key']}\n"
    broker.conf.write_text(broker.conf.read_text() + tls_lines)  # for the one listener above
    broker.start()
    try:
        url = f"mqtts://127.0.0.1:{broker.port}"
        trusted = dict(os.environ, SSL_CERT_FILE=str(certs["ca.pem"]))  # the user's own CA
        ok = edgenn("fleet", "status", "--broker", url, "--group", "lab", "--listen", "0", env=trusted)
        assert ok.returncode == 0 and "no boards in group 'lab' on mqtts://127.0.0.1" in ok.stdout, ok.stderr
        untrusted = edgenn("fleet", "status", "--broker", url, "--group", "lab", "--listen", "0")
        assert untrusted.returncode == 2 and untrusted.stderr.count("\n") == 1
        assert f"TLS with the broker {url} failed: CERTIFICATE_VERIFY_FAILED" in untrusted.stderr
    finally:
        broker.stop()
