"""Fleet benchmark: `edgenn fleet deploy` to 1, 10, 100 and 1,000 simulated boards through one mosquitto.

The boards are edgenn.fleet.simboard's CPython stand-ins (the protocol's board side: own MQTT connection,
own last will, own copy of every chunk, the manifest checks, sha256, the golden check vector), all in
this process on one thread; the deploy is the real command in its own process. Per fleet size:
- deploy s: what `fleet deploy --json` reports (broker connect to the last board serving), and the
  command's wall time including Python start-up;
- broker bytes: mosquitto's own counters ($SYS/broker/bytes/received + sent, published every second
  here), read before and after the deploy: every byte through the broker (chunks to each board,
  statuses to the deploy, PUBACKs, keepalives); per board = that / boards.
Timings are this machine's (CPython boards, localhost TCP), not Wi-Fi's; the bytes are what a real
fleet moves for the same model (a real board's statuses are the same size, give or take its fields).

Run standalone: `python -m bench.fleet [SIZES...]`; `make bench` calls `run(results_dir)`.
"""

from __future__ import annotations

import json
import resource
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from tests.mqtt_broker import Mosquitto, have_mosquitto

from edgenn import modelfile
from edgenn.fleet.manifest import DEFAULT_CHUNK
from edgenn.fleet.session import Session
from edgenn.fleet.simboard import SimFleet
from edgenn.fleet.table import format_table
from edgenn.fleet.url import parse_broker_url
from edgenn.zoo import build_zoo

SIZES = (1, 10, 100, 1000)
CHUNK = DEFAULT_CHUNK
KEY = bytes(range(32))
SYS_TOPICS = ("$SYS/broker/bytes/received", "$SYS/broker/bytes/sent", "$SYS/broker/messages/sent")


class BrokerCounters:
    """mosquitto's $SYS byte counters, followed live (they are published every sys_interval)."""

    def __init__(self, session: Session) -> None:
        self.values: dict[str, int] = {}
        self.updated = 0.0
        self.lock = threading.Lock()
        session.subscribe(list(SYS_TOPICS), qos=0)
        self.session = session
        self.thread = threading.Thread(target=self._follow, daemon=True)
        self.running = True
        self.thread.start()

    def _follow(self) -> None:
        while self.running:
            msg = self.session.get(0.2)
            if msg is not None and msg.topic in SYS_TOPICS:
                with self.lock:
                    self.values[msg.topic] = int(msg.payload)
                    self.updated = time.monotonic()

    def snapshot(self) -> dict[str, int]:
        """The counters as published after now (waits for the broker's next update of all three)."""
        mark = time.monotonic()
        time.sleep(1.2)  # one sys_interval, plus the time the previous burst takes to land
        while True:
            with self.lock:
                if self.updated > mark + 1.0 and len(self.values) == len(SYS_TOPICS):
                    return dict(self.values)
            time.sleep(0.1)

    def stop(self) -> None:
        self.running = False
        self.thread.join(2)


def raise_fd_limit() -> int:
    """1,000 boards need 1,000 sockets here and in mosquitto (which inherits the limit)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = hard if hard != resource.RLIM_INFINITY else 65536
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def deploy_once(
    broker: Mosquitto, counters: BrokerCounters, tmp: Path, n: int, old: bytes, new: bytes
) -> dict:
    group = f"bench{n}"
    key_file = tmp / "fleet.key"
    model = tmp / "new.enn"
    with SimFleet(parse_broker_url(broker.url), group, tmp / group, KEY) as fleet:
        t = time.monotonic()
        for i in range(n):
            fleet.add(f"b{i}", model=old)
        if not fleet.wait(lambda: all(b.online for b in fleet.boards.values()), 120):
            raise RuntimeError(
                f"only {sum(b.online for b in fleet.boards.values())}/{n} simulated boards connected"
            )
        join_s = time.monotonic() - t
        before = counters.snapshot()
        t = time.monotonic()
        proc = subprocess.run(
            [sys.executable, "-m", "edgenn.cli", "fleet", "deploy", str(model), "--broker", broker.url]
            + ["--group", group, "--key", str(key_file), "--json", "--timeout", "600"],
            capture_output=True,
            text=True,
            timeout=900,
        )
        wall_s = time.monotonic() - t
        if proc.returncode not in (0, 1):
            raise RuntimeError(f"fleet deploy failed: {proc.stderr.strip()}")
        out = json.loads(proc.stdout)
        after = counters.snapshot()
        serving = sum(b.sha256 == out["sha256"] for b in fleet.boards.values())
    moved = sum(after[t] - before[t] for t in SYS_TOPICS[:2])
    return {
        "boards": n,
        "all_serving": bool(out["ok"]) and serving == n,
        "serving": serving,
        "deploy_s": round(out["seconds"], 2),
        "wall_s": round(wall_s, 2),
        "connect_boards_s": round(join_s, 2),
        "broker_bytes": moved,
        "broker_bytes_per_board": round(moved / n),
        "broker_messages_sent": after[SYS_TOPICS[2]] - before[SYS_TOPICS[2]],
        "published_by_deploy_bytes": out["bytes_published"],
    }


def run(results_dir: Path | None = None, sizes: tuple[int, ...] = SIZES) -> dict:
    if not have_mosquitto():
        raise RuntimeError("needs Debian's mosquitto (apt-get install mosquitto)")
    fd_limit = raise_fd_limit()
    zoo = build_zoo(seed=1)
    old, new = modelfile.to_bytes(zoo["relu_2"]), modelfile.to_bytes(zoo["relu_4"])
    rows = []
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        (tmp / "fleet.key").write_text(KEY.hex() + "\n")
        (tmp / "new.enn").write_bytes(new)
        broker = Mosquitto(tmp / "broker")
        broker.conf.write_text(
            broker.conf.read_text().replace("log_type all", "log_type error") + "sys_interval 1\n"
        )
        broker.start()
        try:
            with Session(parse_broker_url(broker.url), "bench") as session:
                counters = BrokerCounters(session)
                try:
                    for n in sizes:
                        rows.append(deploy_once(broker, counters, tmp, n, old, new))
                        print(f"  {n} boards: deploy {rows[-1]['deploy_s']} s", flush=True)
                finally:
                    counters.stop()
        finally:
            broker.stop()
    header = ["boards", "deploy s", "wall s", "broker bytes", "per board", "messages", "all serving"]
    table = [
        [r["boards"], r["deploy_s"], r["wall_s"], r["broker_bytes"], r["broker_bytes_per_board"]]
        + [r["broker_messages_sent"], "yes" if r["all_serving"] else f"no ({r['serving']})"]
        for r in rows
    ]
    chunks = -(-len(new) // CHUNK)
    print(f"model: relu_4, {len(new)} B in {chunks} chunks of {CHUNK} B; simulated boards, one mosquitto")
    for line in format_table(header, table):
        print(line)
    return {"model_bytes": len(new), "chunk_bytes": CHUNK, "fd_limit": fd_limit, "rows": rows}


if __name__ == "__main__":
    chosen = tuple(int(a) for a in sys.argv[1:]) or SIZES
    run(None, chosen)
