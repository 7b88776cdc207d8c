"""Simulated boards: CPython stand-ins that speak the board side of docs/fleet-protocol.md, for tests and
for scale (1,000 boards through one broker from one process).

Each SimBoard has its own MQTT connection (its own last will, its own copy of every chunk, as a real
board), its own directory (model.enn, model.enn.bak, model.enn.part, state.json with the accepted
`seq`), and makes the board's decisions with the same code the host signs with: manifest.judge() and
manifest.check_chunk(). "Loading" a model is edgenn.modelfile + edgenn.golden answering the manifest's
`check` vector. What it does not simulate: Wi-Fi, MicroPython's heap (a `heap` option refuses models
larger than it), the serial server.

All boards of a SimFleet share one thread and one selector (paho's external-loop API: loop_read,
loop_write, loop_misc), so 1,000 boards cost 1,000 sockets and no threads. Calls from other threads
(tests) run inside that thread through `SimFleet.call`.

    with SimFleet(url, "lab", tmp_path, key) as fleet:
        fleet.add("b1", model=enn_bytes)
        fleet.wait(lambda: fleet.boards["b1"].online)
"""

from __future__ import annotations

import hashlib
import json
import os
import queue
import selectors
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from edgenn import golden, modelfile
from edgenn.fleet import manifest as mf
from edgenn.fleet import topics
from edgenn.fleet.url import BrokerURL

MODEL = "model.enn"
BACKUP = "model.enn.bak"
PART = "model.enn.part"
STATE = "state.json"
KEEPALIVE_S = 60
RECONNECT_S = 1.0  # the sim retries a lost broker once a second (a real board backs off further)
PROGRESS_EVERY_S = 1.0  # at most one progress status a second, as the protocol says
HEARTBEAT_S = 60.0
FIRMWARE = "sim-cpython"


class SimBoard:
    """One simulated board. Its methods run in the fleet's thread; read its fields from anywhere."""

    def __init__(
        self,
        fleet: SimFleet,
        board_id: str,
        key: bytes,
        heap: int | None = None,
        refuse: str | None = None,
        fail_health: bool = False,
        hold: bool = False,
    ) -> None:
        self.fleet = fleet
        self.id = board_id
        self.key = key
        self.heap = heap  # a model larger than this "does not fit" (MemoryError on a real board)
        self.refuse = refuse  # refuse every download with this reason (a board that cannot take it)
        self.fail_health = fail_health  # the new model "fails its health check": roll back
        self.hold = hold  # a slow board: stays `downloading` without fetching chunks until release()
        self.dir = fleet.root / board_id
        self.dir.mkdir(parents=True, exist_ok=True)
        self.client: mqtt.Client | None = None
        self.online = False
        self.powered = False
        self.state = "serving"
        self.reason: str | None = None
        self.update_seq: int | None = None  # the manifest seq that state and reason are about
        self.progress: list[int] | None = None
        self.sent = 0
        self.dropped = 0
        self.n = 0  # predictions made
        self.started = 0.0
        self.downloading: mf.Manifest | None = None
        self.got: set[int] = set()
        self.last_progress = 0.0
        self.last_status = 0.0
        self.next_reconnect = 0.0
        self.seq = 0
        self.failed_seq = 0  # a seq this board refused or rolled back: not downloaded again
        self.model_name: str | None = None
        self.sha256: str | None = None
        self.model: modelfile.QuantModel | None = None

    # -- persistence (the board's flash) -------------------------------------------------------------
    def install(self, data: bytes, seq: int = 0) -> None:
        """Put a model on the board as `fleet join` / `deploy --port` would, before it starts."""
        (self.dir / MODEL).write_bytes(data)
        (self.dir / STATE).write_text(json.dumps({"seq": seq, "failed_seq": 0}))

    def _boot(self) -> None:
        state = json.loads((self.dir / STATE).read_text()) if (self.dir / STATE).exists() else {}
        self.seq = int(state.get("seq", 0))
        self.failed_seq = int(state.get("failed_seq", 0))
        (self.dir / PART).unlink(missing_ok=True)  # a download cut by power loss starts again
        self.model = self.model_name = self.sha256 = None
        for name in (MODEL, BACKUP):  # the server serves model.enn, else the backup
            path = self.dir / name
            if path.exists():
                data = path.read_bytes()
                try:
                    self.model = modelfile.from_bytes(data)
                except modelfile.ModelFormatError:
                    continue
                self.model_name = mf.manifest_name(self.model.name)
                self.sha256 = hashlib.sha256(data).hexdigest()
                break
        self.state, self.reason, self.progress, self.downloading = "serving", None, None, None
        self.update_seq = None
        self.started = time.monotonic()

    def _persist(self) -> None:
        tmp = self.dir / (STATE + ".tmp")
        tmp.write_text(json.dumps({"seq": self.seq, "failed_seq": self.failed_seq}))
        os.replace(tmp, self.dir / STATE)

    # -- status --------------------------------------------------------------------------------------
    def status(self, online: bool = True) -> dict[str, Any]:
        return {
            "id": self.id,
            "online": online,
            "state": self.state,
            "reason": self.reason,
            "update_seq": self.update_seq,
            "seq": self.seq,
            "model": self.model_name,
            "sha256": self.sha256,
            "kernel": "golden",
            "heap_free": None if self.heap is None else self.heap,
            "firmware": FIRMWARE,
            "uptime": int(time.monotonic() - self.started),
            "progress": self.progress,
            "sent": self.sent,
            "dropped": self.dropped,
        }

    def _publish_status(self) -> None:
        self.last_status = time.monotonic()
        if self.client is not None and self.online:
            payload = json.dumps(self.status()).encode()
            self.client.publish(topics.status(self.fleet.group, self.id), payload, qos=1, retain=True)

    def _set_state(self, state: str, seq: int | None, reason: str | None = None) -> None:
        self.state, self.update_seq, self.reason = state, seq, reason
        if state != "downloading":
            self.progress = None
        self._publish_status()

    # -- power ---------------------------------------------------------------------------------------
    def power_on(self) -> None:
        self._boot()
        self.powered = True
        client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=f"edgenn-sim-{self.fleet.group}-{self.id}"
        )
        url = self.fleet.url
        if url.user is not None:
            client.username_pw_set(url.user, url.password)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        client.on_socket_register_write = lambda c, u, s: self.fleet._writers.add(self)
        client.on_socket_unregister_write = lambda c, u, s: self.fleet._writers.discard(self)
        self.client = client
        self._connect()

    def _connect(self) -> None:
        assert self.client is not None
        will = json.dumps(self.status(online=False)).encode()
        self.client.will_set(topics.status(self.fleet.group, self.id), will, qos=1, retain=True)
        try:
            if self.client.socket() is None and self.next_reconnect == 0.0:
                self.client.connect(self.fleet.url.host, self.fleet.url.port, keepalive=KEEPALIVE_S)
            else:
                self.client.reconnect()
        except OSError:
            self.next_reconnect = time.monotonic() + RECONNECT_S
            return
        self.fleet._watch(self)

    def power_off(self) -> None:
        """Pull the plug: the socket closes without DISCONNECT, so the broker publishes the last will."""
        self.powered = self.online = False
        if self.client is not None:
            sock = self.client.socket()
            self.fleet._unwatch(self)
            if sock is not None:
                sock.close()
            self.client = None
        self.fleet._writers.discard(self)
        self.next_reconnect = 0.0

    def shut_down(self) -> None:
        """A clean disconnect (the tests' teardown): no last will."""
        if self.client is not None and self.online:
            self.client.publish(
                topics.status(self.fleet.group, self.id), json.dumps(self.status(False)).encode(), 1, True
            )
            self.client.disconnect()
            self.client.loop_write()
        self.power_off()

    # -- paho callbacks (in the fleet's thread) ------------------------------------------------------
    def _on_connect(self, client: mqtt.Client, userdata: object, flags: object, reason, props=None) -> None:
        if reason.is_failure:
            self.fleet.refused[self.id] = str(reason)
            return
        self.online = True
        self.next_reconnect = 0.0
        subs = [(topics.manifest(self.fleet.group), 1)]
        if self.downloading is not None and not self.hold:  # resume: the retained chunks come again
            subs.append((topics.chunks_of(self.fleet.group, self.downloading.seq), 1))
        client.subscribe(subs)
        self._publish_status()

    def _on_disconnect(self, client: mqtt.Client, userdata: object, flags, reason, props=None) -> None:
        self.online = False
        if self.powered:
            self.next_reconnect = time.monotonic() + RECONNECT_S

    def _on_message(self, client: mqtt.Client, userdata: object, msg: mqtt.MQTTMessage) -> None:
        if not msg.payload:
            return  # an empty retained message is the deploy clearing a topic
        if msg.topic == topics.manifest(self.fleet.group):
            self._on_manifest(bytes(msg.payload))
            return
        where = topics.parse_chunk(msg.topic)
        if where is not None and self.downloading is not None:
            self._on_chunk(where[0], where[1], bytes(msg.payload))

    def _on_manifest(self, payload: bytes) -> None:
        verdict = mf.judge(payload, self.key, self.id, self.seq, self.sha256)
        if verdict.action == "ignore":
            return
        if verdict.action == "refuse":
            if verdict.manifest is not None and self.downloading is not None:
                return  # a stale retained manifest while a newer download runs
            self._abort_download()
            self._set_state("refused", verdict.seq, verdict.reason)
            return
        manifest = verdict.manifest
        assert manifest is not None
        if manifest.seq == self.failed_seq or (self.downloading and self.downloading.seq == manifest.seq):
            return  # already refused it (its reason stays in status), or already on it
        self._abort_download()
        self.downloading, self.got = manifest, set()
        (self.dir / PART).write_bytes(b"")
        self.progress = [0, manifest.chunks]
        self._set_state("downloading", manifest.seq)
        if not self.hold:
            self._fetch()

    def _fetch(self) -> None:
        if self.client is not None and self.downloading is not None:
            self.client.subscribe(topics.chunks_of(self.fleet.group, self.downloading.seq), qos=1)

    def release(self) -> None:
        """A held board starts fetching its chunks."""
        self.hold = False
        self._fetch()

    def _abort_download(self) -> None:
        if self.downloading is not None and self.client is not None:
            self.client.unsubscribe(topics.chunks_of(self.fleet.group, self.downloading.seq))
        self.downloading = None
        (self.dir / PART).unlink(missing_ok=True)

    def _on_chunk(self, seq: int, index: int, data: bytes) -> None:
        manifest = self.downloading
        assert manifest is not None
        problem = mf.check_chunk(manifest, seq, index, len(data))
        if problem is not None:
            self._fail(manifest, "refused", problem)
            return
        with open(self.dir / PART, "r+b") as f:
            f.seek(index * manifest.chunk)
            f.write(data)
        self.got.add(index)
        self.progress = [len(self.got), manifest.chunks]
        if len(self.got) < manifest.chunks:
            if time.monotonic() - self.last_progress >= PROGRESS_EVERY_S:
                self.last_progress = time.monotonic()
                self._publish_status()
            return
        assert self.client is not None
        self.client.unsubscribe(topics.chunks_of(self.fleet.group, manifest.seq))
        self._set_state("verifying", manifest.seq)
        problem = self._verify(manifest)
        if problem is not None:
            self._fail(manifest, "refused", problem)
            return
        self._swap_in(manifest)

    def _verify(self, manifest: mf.Manifest) -> str | None:
        """The board's checks, in the protocol's order: size, sha256, loads, answers the check vector."""
        data = (self.dir / PART).read_bytes()
        if len(data) != manifest.size:
            return f"size {len(data)} != manifest's {manifest.size}"
        if hashlib.sha256(data).hexdigest() != manifest.sha256:
            return "sha256 mismatch: a chunk was altered or lost"
        if self.refuse is not None:
            return self.refuse
        if self.heap is not None and manifest.size > self.heap:
            return f"does not fit: MemoryError: memory allocation failed, allocating {manifest.size} bytes"
        try:
            model = modelfile.from_bytes(data)
        except modelfile.ModelFormatError as exc:
            return f"does not load: {exc}"
        codes = np.array(manifest.check_x, dtype=np.uint8)
        if len(codes) != model.n_inputs or list(golden.forward_q(model, codes[None, :])[0]) != list(
            manifest.check_q
        ):
            return "its answer to the check vector differs from the manifest's"
        return None

    def _swap_in(self, manifest: mf.Manifest) -> None:
        model_path, backup, part = self.dir / MODEL, self.dir / BACKUP, self.dir / PART
        if model_path.exists():
            os.replace(model_path, backup)
        os.replace(part, model_path)
        if self.fail_health:  # the health check after the restart fails: the old model goes back
            if backup.exists():
                os.replace(model_path, part)
                os.replace(backup, model_path)
            self._fail(manifest, "rolled back", "health check failed after the swap")
            return
        self.model = modelfile.from_bytes(model_path.read_bytes())
        self.model_name, self.sha256 = manifest.name, manifest.sha256
        self.seq, self.downloading = manifest.seq, None
        self._persist()
        self._set_state("serving", None)

    def _fail(self, manifest: mf.Manifest, state: str, reason: str) -> None:
        self._abort_download()
        self.failed_seq = manifest.seq
        self._persist()
        self._set_state(state, manifest.seq, reason)

    # -- predictions ---------------------------------------------------------------------------------
    def predict(self, rows: np.ndarray, lose: int = 0) -> None:
        """Predict `rows` (raw features) with the served model and publish each (QoS 1); `lose` first
        counts that many predictions as dropped (a queue overflow while the broker was away)."""
        assert self.model is not None and self.client is not None
        self.n += lose
        self.dropped += lose
        classes = golden.predict(self.model, np.asarray(rows, dtype=np.float32))
        for value in classes:
            self.n += 1
            pred: dict[str, Any] = {"id": self.id, "n": self.n, "src": "app"}
            if self.model.task == "classify":
                pred["class"] = int(value)
                pred["label"] = self.model.labels[int(value)] if self.model.labels else str(int(value))
            else:
                pred["value"] = float(np.ravel(value)[0])
            pred["t"] = int((time.monotonic() - self.started) * 1000)
            self.client.publish(topics.pred(self.fleet.group, self.id), json.dumps(pred).encode(), qos=1)
            self.sent += 1

    def tick(self, now: float) -> None:
        if self.client is None:
            return
        if self.client.want_write():  # paho's register-write callback is edge-like: never miss one
            self.fleet._writers.add(self)
        if self.online:
            self.client.loop_misc()
            if now - self.last_status >= HEARTBEAT_S:
                self._publish_status()
            if (
                self.downloading is not None
                and self.progress
                and now - self.last_progress >= PROGRESS_EVERY_S
            ):
                if self.progress[0] and self.state == "downloading":
                    self.last_progress = now
                    self._publish_status()
        elif self.powered and self.next_reconnect and now >= self.next_reconnect:
            self.fleet._unwatch(self)
            self._connect()


class SimFleet:
    """Many SimBoards on one thread. `add()` and `call()` may be used from any thread."""

    def __init__(self, url: BrokerURL, group: str, root: Path, key: bytes) -> None:
        if url.tls:  # paho's external loop would need the TLS layer's pending bytes polled too
            raise ValueError("simulated boards speak plain MQTT (mqtt://), not mqtts://")
        self.url = url
        self.group = topics.check_name(group, "group")
        self.root = Path(root)
        self.key = key
        self.boards: dict[str, SimBoard] = {}
        self.refused: dict[str, str] = {}  # board -> CONNACK reason (wrong password...)
        self._writers: set[SimBoard] = set()
        self._socks: dict[SimBoard, Any] = {}
        self._sel = selectors.DefaultSelector()
        self._calls: queue.Queue[tuple[Callable[[], Any], queue.Queue]] = queue.Queue()
        self._running = True
        self._thread = threading.Thread(target=self._loop, name="simfleet", daemon=True)
        self._thread.start()

    def __enter__(self) -> SimFleet:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def call(self, fn: Callable[[], Any], timeout: float = 60.0) -> Any:
        """Run `fn` in the fleet's thread and return its result (or raise its exception)."""
        done: queue.Queue = queue.Queue()
        self._calls.put((fn, done))
        ok, value = done.get(timeout=timeout)
        if not ok:
            raise value
        return value

    def add(
        self,
        board_id: str,
        model: bytes | None = None,
        key: bytes | None = None,
        power_on: bool = True,
        **options: Any,
    ) -> SimBoard:
        """A new board (options: heap, refuse, fail_health, hold), with `model` installed, powered on."""
        topics.check_name(board_id, "board id")
        board = SimBoard(self, board_id, key or self.key, **options)
        if model is not None:
            board.install(model)
        self.boards[board_id] = board
        if power_on:
            self.call(board.power_on)
        return board

    def power_on(self, board_id: str) -> None:
        self.call(self.boards[board_id].power_on)

    def power_off(self, board_id: str) -> None:
        self.call(self.boards[board_id].power_off)

    def wait(self, predicate: Callable[[], bool], timeout: float = 30.0) -> bool:
        """Poll `predicate` (which reads board fields) until true or `timeout`; returns the last value."""
        deadline = time.monotonic() + timeout
        while not predicate():
            if time.monotonic() > deadline:
                return False
            time.sleep(0.02)
        return True

    def close(self) -> None:
        if not self._running:
            return
        try:
            self.call(lambda: [b.shut_down() for b in self.boards.values()], timeout=30)
        finally:
            self._running = False
            self._thread.join(10)
            self._sel.close()

    # -- the loop ------------------------------------------------------------------------------------
    def _watch(self, board: SimBoard) -> None:
        sock = board.client.socket() if board.client is not None else None
        if sock is not None and self._socks.get(board) is not sock:
            self._unwatch(board)
            self._sel.register(sock, selectors.EVENT_READ, board)
            self._socks[board] = sock

    def _unwatch(self, board: SimBoard) -> None:
        sock = self._socks.pop(board, None)
        if sock is not None:
            try:
                self._sel.unregister(sock)
            except (KeyError, ValueError):
                pass

    def _loop(self) -> None:
        next_tick = 0.0
        while self._running:
            while True:
                try:
                    fn, done = self._calls.get_nowait()
                except queue.Empty:
                    break
                try:
                    done.put((True, fn()))
                except Exception as exc:  # handed back to the caller's thread
                    done.put((False, exc))
            for key, _ in self._sel.select(0.02 if not self._writers else 0):
                board = key.data
                if board.client is not None and board.client.loop_read() != mqtt.MQTT_ERR_SUCCESS:
                    self._unwatch(board)
            for board in list(self._writers):
                if board.client is None or board.client.loop_write() != mqtt.MQTT_ERR_SUCCESS:
                    self._writers.discard(board)
                    self._unwatch(board)
            now = time.monotonic()
            if now >= next_tick:
                next_tick = now + 0.25
                for board in list(self.boards.values()):
                    board.tick(now)
