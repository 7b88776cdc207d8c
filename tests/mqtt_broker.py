"""A real broker for the fleet tests: Debian's `mosquitto`, on 127.0.0.1 and a free port, never elsewhere.

    broker = Mosquitto(tmp_path)                       # anonymous
    broker = Mosquitto(tmp_path, users={"ha": "pw"},   # a password file and an ACL
                       acl="user ha\\ntopic readwrite edgenn/#\\n")
    broker.start(); broker.url -> "mqtt://127.0.0.1:PORT"; broker.stop(); broker.start()  # same port

Tests that need it use the `mosquitto` fixture (tests/conftest.py), which skips with a reason where the
package is missing (`apt-get install mosquitto`); .ci/run installs it.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

HOST = "127.0.0.1"


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


class Mosquitto:
    def __init__(self, workdir: Path, users: dict[str, str] | None = None, acl: str | None = None) -> None:
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.proc: subprocess.Popen | None = None
        self.log = self.workdir / "mosquitto.log"
        lines = [f"listener {self.port} {HOST}", "persistence false", "log_type all", "log_dest stderr"]
        if os.geteuid() == 0:
            lines.append("user root")  # as root mosquitto drops to user `mosquitto`, who cannot read tmp_path
        if users:
            passwd = self.workdir / "passwd"
            passwd.write_text("")
            for user, password in users.items():
                subprocess.run(["mosquitto_passwd", "-b", str(passwd), user, password], check=True)
            passwd.chmod(0o600)
            lines += ["allow_anonymous false", f"password_file {passwd}"]
        else:
            lines.append("allow_anonymous true")
        if acl is not None:
            acl_file = self.workdir / "acl"
            acl_file.write_text(acl)
            acl_file.chmod(0o600)
            lines.append(f"acl_file {acl_file}")
        self.conf = self.workdir / "mosquitto.conf"
        self.conf.write_text("\n".join(lines) + "\n")

    @property
    def url(self) -> str:
        return f"mqtt://{HOST}:{self.port}"

    def start(self, timeout: float = 10.0) -> None:
        log = open(self.log, "ab")  # noqa: SIM115 - handed to the child, closed with it
        self.proc = subprocess.Popen(["mosquitto", "-c", str(self.conf)], stdout=log, stderr=log)
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"mosquitto exited: {self.log.read_text()[-2000:]}")
            try:
                socket.create_connection((HOST, self.port), timeout=0.5).close()
                return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"mosquitto did not listen on {HOST}:{self.port} within {timeout} s")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None


def have_mosquitto() -> bool:
    return shutil.which("mosquitto") is not None and shutil.which("mosquitto_passwd") is not None
