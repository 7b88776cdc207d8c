# edgenn fleet agent: the board's side of docs/fleet-protocol.md (MQTT through micropython-lib's
# umqtt.simple, which `edgenn fleet join` installs as lib/umqtt/simple.mpy next to this module).
#
# Imported only on a board that has joined a fleet (fleet.json at the root, written by `fleet join`):
# edgenn_server.main() looks for that file and, only then, imports this and gives the agent time
# between serial requests. A board that never joins pays nothing, not even the import.
#
#   agent = edgenn_fleet.start(server)   # server: the edgenn_server.Server (or None in a sensor loop)
#   agent.step()                         # MQTT in and out; returns within a few ms (the server calls it)
#   edgenn_fleet.publish(k)              # a sensor loop / Window: one prediction (class index)
#
# What it does: Wi-Fi (where the port has network.WLAN), connect with a retained last will, a retained
# status, the group's signed manifest; predictions through a bounded preallocated queue (oldest dropped
# first, counted); model updates downloaded to model.enn.part, checked (size, sha256, HMAC-SHA256
# signature, replay by the persisted seq, the manifest's golden check vector in this heap), swapped in
# with model.enn.bak kept, health-checked after a restart, rolled back on failure. Every refusal is in
# the status. Nothing received is ever executed: the model is data, the manifest is JSON.
#
# Files on the board: fleet.json (config), fleet.key (64 hex digits), fleet.seq (the accepted seq),
# fleet.verify (a downloaded update to check at the next boot, before the server loads a model),
# fleet.pending (an update swapped in, waiting for its health check after the restart), fleet.note
# (the last refusal or roll back, kept until the next deploy so the status says it after restarts).
import gc
import sys
import time

from micropython import const

from edgenn_server import _exists, _import_runtime, _put, _put_int  # the server's helpers: one copy

MODEL_FILE = "model.enn"
BACKUP_FILE = "model.enn.bak"
PART_FILE = "model.enn.part"
CONFIG_FILE = "fleet.json"
KEY_FILE = "fleet.key"
SEQ_FILE = "fleet.seq"
PENDING_FILE = "fleet.pending"
VERIFY_FILE = "fleet.verify"
NOTE_FILE = "fleet.note"

_QUEUE = const(64)  # predictions kept while the broker is away; the oldest go first
_FIELDS = const(4)  # per queued prediction: n, src, class (or raw output), t
SRC_SERIAL = const(0)  # publish(k, src): where a prediction came from ("src" in its JSON)
SRC_WINDOW = const(1)
SRC_APP = const(2)
_SRC_NAMES = (b', "src": "serial"', b', "src": "window"', b', "src": "app"')
_KEEPALIVE_S = const(30)
_CONNECT_TIMEOUT_S = const(5)  # the longest a connection attempt holds the serial server
_PING_MS = const(15000)
_STATUS_MS = const(60000)
_PROGRESS_MS = const(1000)
_BACKOFF_MIN_MS = const(500)
_BACKOFF_MAX_MS = const(5000)
_MSGS_PER_STEP = const(8)  # incoming messages handled per step: the serial server waits meanwhile
_POLICY_EVERY = const(0)
_POLICY_NTH = const(1)
_POLICY_CHANGE = const(2)

_agent = None


def start(server=None, net=None):
    """The agent for this board, or None when it has not joined a fleet. Idempotent."""
    global _agent
    if _agent is None:
        try:
            cfg = _read_json(CONFIG_FILE)
        except OSError:
            return None
        try:
            _agent = Agent(cfg, server, net)
        except MemoryError as exc:
            if _exists(PENDING_FILE):  # the new model left no room for the agent: the old one back
                if server is not None:
                    server.net = None
                gc.collect()
                roll_back(_read_json(PENDING_FILE)["seq"], "no heap left for the fleet agent (%s)" % exc)
            raise
    return _agent


def _restart():
    import machine

    machine.soft_reset()


def roll_back(seq, reason):
    """The update of `seq` failed after its swap: model.enn.bak back as model.enn, the reason kept for
    the status, then main.py anew (the server loads the previous model)."""
    import json
    import os

    _write_atomic(NOTE_FILE, json.dumps({"seq": seq, "state": "rolled back", "reason": reason}))
    _remove(PENDING_FILE)
    if _exists(BACKUP_FILE):
        _remove(PART_FILE)
        if _exists(MODEL_FILE):
            os.rename(MODEL_FILE, PART_FILE)
        os.rename(BACKUP_FILE, MODEL_FILE)
        _remove(PART_FILE)
    _restart()


def verify_at_boot():
    """Called by edgenn_server.main() before the server loads its model, when fleet.verify exists: the
    downloaded model.enn.part must load and answer the manifest's golden check vector in this heap,
    alone, as the server will load it. Then the swap (as `edgenn deploy` swaps: model.enn.bak kept) and
    fleet.pending for the health check after the server's load; else a refusal in fleet.note."""
    import json
    import os

    try:
        job = _read_json(VERIFY_FILE)
    except (OSError, ValueError):
        _remove(VERIFY_FILE)
        return
    problem = _check_loads(PART_FILE, job["check"])
    if problem is None:
        _write_atomic(PENDING_FILE, json.dumps(job))
        if _exists(MODEL_FILE):
            _remove(BACKUP_FILE)
            os.rename(MODEL_FILE, BACKUP_FILE)
        os.rename(PART_FILE, MODEL_FILE)  # between the renames the server would find the backup
    else:
        _write_atomic(NOTE_FILE, json.dumps({"seq": job["seq"], "state": "refused", "reason": problem}))
        _remove(PART_FILE)
    _remove(VERIFY_FILE)
    gc.collect()


def _check_loads(name, check):
    # None when `name` loads and answers the check vector as the golden model does; else why not.
    try:
        edgenn = _import_runtime()  # as the server imports it
        gc.collect()
        net = edgenn.load(name)
        out = net.forward_q(bytes(check["x"]))
        if list(out) != list(check["q"]):
            return "the model answers the check vector wrongly (%s, golden %s)" % (
                list(out)[:4], list(check["q"])[:4])
    except MemoryError as exc:
        return "does not fit this board's heap (%s)" % exc
    except Exception as exc:  # ValueError from edgenn.load (bad magic, CRC, ...), OSError, ...
        return "the model does not load (%s)" % exc
    return None


def publish(k, src=SRC_APP):
    """One prediction from application code (a sensor loop, a Window): k is the class index, the
    raw int8 output for a regression model, or the integer score for an anomaly model. Allocates nothing; sent from step() (or at once when the
    queue fills while connected)."""
    if _agent is not None:
        _agent.note(src, k)


def step():
    if _agent is not None:
        _agent.step()


def _read_json(name):
    import json

    with open(name) as f:
        return json.load(f)


def _write_atomic(name, text):
    # Written next to the file, then renamed over it (atomic on littlefs): a power cut leaves the old one.
    import os

    tmp = name + ".tmp"
    with open(tmp, "w") as f:
        f.write(text)
    try:
        os.rename(tmp, name)
    except OSError:  # FAT cannot rename over a file
        os.remove(name)
        os.rename(tmp, name)


def _remove(name):
    import os

    try:
        os.remove(name)
    except OSError:
        pass


def _hmac_begin(key):
    # RFC 2104 over hashlib.sha256 (MicroPython has no hmac module): H((K^opad) || H((K^ipad) || m)).
    # In two halves, so that the message can be fed in small pieces (a fragmented heap may have no
    # block for the whole signing string).
    import hashlib

    if len(key) > 64:
        key = hashlib.sha256(key).digest()
    pad = bytearray(64)
    pad[: len(key)] = key
    for i in range(64):
        pad[i] ^= 0x36
    return hashlib.sha256(pad), pad


def _hmac_end(inner, pad):
    import hashlib

    digest = inner.digest()
    for i in range(64):
        pad[i] ^= 0x36 ^ 0x5C
    outer = hashlib.sha256(pad)
    outer.update(digest)
    return outer.digest()


def hmac_sha256(key, msg):
    inner, pad = _hmac_begin(key)
    inner.update(msg)
    return _hmac_end(inner, pad)


class _Text:
    # collects what _feed_signing writes (signing_string, for tests and tools)
    def __init__(self):
        self.parts = []

    def update(self, text):
        self.parts.append(text)


def _feed_signing(h, m):
    # docs/fleet-protocol.md: the lines HMAC-SHA256 signs, joined by "\n", written piece by piece.
    boards = m["boards"]
    for field in ("edgenn-manifest-v1", m["group"], str(m["seq"]), m["name"], str(m["size"]), m["sha256"],
                  str(m["chunk"]), str(m["chunks"])):
        h.update(field)
        h.update("\n")
    if boards is None:
        h.update("*")
    else:
        for k, board in enumerate(sorted(boards)):
            h.update("," + board if k else board)
    h.update("\n")
    for k, v in enumerate(m["check"]["x"]):
        h.update(",%d" % v if k else "%d" % v)
    h.update(";")
    for k, v in enumerate(m["check"]["q"]):
        h.update(",%d" % v if k else "%d" % v)


def signing_string(m):
    text = _Text()
    _feed_signing(text, m)
    return "".join(text.parts)


def file_sha256(name):
    import binascii
    import hashlib

    h = hashlib.sha256()
    b = bytearray(512)
    with open(name, "rb") as f:
        while True:
            k = f.readinto(b)
            if not k:
                break
            h.update(b if k == 512 else b[:k])
    return binascii.hexlify(h.digest()).decode()


def _same(a, b):
    # constant time, so a forger learns nothing from how long a refusal takes
    if len(a) != len(b):
        return False
    d = 0
    for i in range(len(a)):
        d |= ord(a[i]) ^ ord(b[i])
    return d == 0


def check_manifest(m, group, board_id, key):
    """None when the manifest is well formed, for this board and signed with the fleet key; else why not.
    "" means: not for this board (ignored without a word)."""
    try:
        if m.get("v") != 1 or m["group"] != group:
            return "bad manifest (version or group)"
        boards = m["boards"]
        if boards is not None and board_id not in boards:
            return ""
        size, chunk, chunks = m["size"], m["chunk"], m["chunks"]
        if not (0 < size and 0 < chunk and chunks == (size + chunk - 1) // chunk):
            return "bad manifest (size, chunk and chunks disagree)"
        if len(m["sha256"]) != 64 or not isinstance(m["seq"], int):
            return "bad manifest (sha256 or seq)"
        inner, pad = _hmac_begin(key)
        _feed_signing(inner, m)
    except (KeyError, TypeError, ValueError, AttributeError):
        return "bad manifest (a field is missing or of the wrong type)"
    import binascii

    sig = m.get("sig")
    want = binascii.hexlify(_hmac_end(inner, pad)).decode()
    if not isinstance(sig, str) or not _same(sig, want):
        return "bad signature (signed with another key?)"
    return None


class _TimedSockets:
    # umqtt.simple's `socket` module with a timeout on every socket it makes: a broker that accepts the
    # connection but never answers (one being stopped, say) would otherwise block its CONNACK read,
    # and the serial server with it, forever. umqtt.simple's check_msg sets its own blocking mode later.
    def __init__(self, module):
        self.module = module

    def socket(self, *args):
        s = self.module.socket(*args)
        s.settimeout(_CONNECT_TIMEOUT_S)
        return s

    def getaddrinfo(self, *args):
        return self.module.getaddrinfo(*args)


class Agent:
    def __init__(self, cfg, server=None, net=None):
        import array

        self.cfg = cfg
        self.server = server
        self.net = net if net is not None else (server.net if server is not None else None)
        self.group = cfg["group"]
        self.id = cfg["id"]
        with open(KEY_FILE) as f:
            import binascii

            self.key = binascii.unhexlify(f.read().strip())
        base = "edgenn/%s/%s/" % (self.group, self.id)
        self.t_status = (base + "status").encode()
        self.t_pred = (base + "pred").encode()
        self.t_manifest = ("edgenn/%s/manifest" % self.group).encode()
        self.t_model = ("edgenn/%s/model/" % self.group).encode()
        policy = cfg.get("publish") or "every"
        self.policy = _POLICY_EVERY
        self.nth = 1
        if policy == "change":
            self.policy = _POLICY_CHANGE
        elif policy.startswith("every:"):
            self.policy = _POLICY_NTH
            self.nth = max(1, int(policy[6:]))
        self.last_class = -1
        # the queue: _QUEUE predictions of _FIELDS ints, a ring; head = oldest, count = how many
        self.queue = array.array("i", bytes(4 * _QUEUE * _FIELDS))
        self.head = 0
        self.count = 0
        self.n = 0
        self.sent = 0
        self.dropped = 0
        self.boot_ms = time.ticks_ms()
        # the prediction payload, built in place: {"id": "ID", "n": N, "src": "S", "class": K, "label": L, "t": T}
        self.labels = []
        width = 0
        if self.net is not None:
            import json

            self.labels = [json.dumps(str(label)).encode() for label in self.net.labels]
            for label in self.labels:
                width = max(width, len(label))
        self.prefix = ('{"id": "%s", "n": ' % self.id).encode()
        self.payload = bytearray(len(self.prefix) + 128 + width)
        self.payload_mv = memoryview(self.payload)
        self.regress = self.net is not None and self.net.task == "regress"
        # anomaly models: k is the integer score (what Window.push and the server give), flagged when
        # over the model's threshold
        self.threshold = self.net.threshold if self.net is not None and self.net.task == "anomaly" else None
        # connection state
        self.client = None
        self.wlan = None
        self.next_try = time.ticks_ms()
        self.backoff = _BACKOFF_MIN_MS
        self.last_io = time.ticks_ms()
        self.last_status = time.ticks_ms()
        self.last_progress = 0
        self.got = False
        self.status_due = False  # set by message handlers, sent by step() (not from inside a callback:
        self.sub_due = None  # umqtt.simple's publish/subscribe read messages while they wait for acks)
        self.problem = None  # why the last connection failed (in no status: the broker is away)
        # update state
        self.seq = self._read_seq()
        self.state = "serving"
        self.reason = None
        self.update_seq = None  # the manifest seq that state and reason are about (None: no update)
        self.dl = None  # the manifest being downloaded
        self.retried = False  # this download has been started over once (after a sha256 mismatch)
        self.have = None  # bytearray(chunks): 1 where that chunk is written
        self.got_chunks = 0
        self.part = None
        self.model_sha = None
        self.model_name = self.net.name if self.net is not None else None
        self._model_identity()
        try:
            note = _read_json(NOTE_FILE)
            self.state = note["state"]
            self.reason = note["reason"]
            self.note_seq = self.update_seq = note["seq"]
        except (OSError, ValueError, KeyError):
            self.note_seq = -1
        if _exists(VERIFY_FILE):  # an update the server did not check at boot (a server older than this
            try:  # agent): refused, and remembered, so it is not downloaded again and again
                seq = _read_json(VERIFY_FILE)["seq"]
            except (OSError, ValueError, KeyError):
                seq = -1
            _remove(VERIFY_FILE)
            self._refuse("this board's edgenn_server does not check updates: run `edgenn deploy`", seq)
        self._after_restart()
        self._wifi()

    # ---- predictions (the hot path: no allocation, small frames) -------------------------------

    def note(self, src, k):
        self.n += 1
        if self.policy == _POLICY_NTH:
            if self.n % self.nth:
                return
        elif self.policy == _POLICY_CHANGE:
            if k == self.last_class:
                return
            self.last_class = k
        if self.count == _QUEUE:  # full: the oldest goes, and is counted
            self.head = (self.head + 1) % _QUEUE
            self.count -= 1
            self.dropped += 1
        i = ((self.head + self.count) % _QUEUE) * _FIELDS
        q = self.queue
        q[i] = self.n
        q[i + 1] = src
        q[i + 2] = k
        q[i + 3] = time.ticks_diff(time.ticks_ms(), self.boot_ms)
        self.count += 1
        if self.count > _QUEUE // 2 and self.client is not None:
            self.flush()  # a fast producer while connected: send now rather than drop later

    def flush(self):
        # Publish queued predictions, oldest first; one leaves the queue only once the broker acked it.
        # (Small frames: each of these three keeps its state within 11 words, so no call takes its
        # frame from the heap; the try lives in one of its own.)
        while self.count and self.client is not None:
            if not self._send_oldest():
                return

    def _send_oldest(self):
        try:
            self._publish_oldest()
        except OSError:  # (no `as exc`: binding it costs a second exception-stack entry, 3 words)
            self._lost("lost the broker while publishing")
            return False
        return True

    def _publish_oldest(self):
        p = self._build(self.head * _FIELDS)
        self.client.publish(self.t_pred, self.payload_mv[:p], False, 1)
        self.head = (self.head + 1) % _QUEUE
        self.count -= 1
        self.sent += 1
        self.last_io = time.ticks_ms()

    def _build(self, i):
        # -> the length of queued prediction i as JSON in self.payload
        r = self.payload
        p = _put(r, 0, self.prefix)
        p = _put_int(r, p, self.queue[i])
        p = _put(r, p, _SRC_NAMES[self.queue[i + 1]])
        p = self._put_result(p, self.queue[i + 2])
        p = _put(r, p, b', "t": ')
        p = _put_int(r, p, self.queue[i + 3])
        r[p] = 125  # }
        return p + 1

    def _put_result(self, p, k):
        r = self.payload
        if self.threshold is not None:
            p = _put(r, p, b', "score": ')
            p = _put_int(r, p, k)
            return _put(r, p, b', "anomaly": true' if k > self.threshold else b', "anomaly": false')
        if self.regress:
            p = _put(r, p, b', "value": ')
            return _put(r, p, self._value_text(k))
        p = _put(r, p, b', "class": ')
        p = _put_int(r, p, k)
        if 0 <= k < len(self.labels):
            p = _put(r, p, b', "label": ')
            p = _put(r, p, self.labels[k])
        return p

    def _value_text(self, k):
        # a regression output, dequantized (one float: regression only), 7 significant digits
        net = self.net
        return ("%.7g" % (net.out_scale[0] * (k - net.out_zero_point[0]))).encode()

    # ---- the connection ------------------------------------------------------------------------

    def _wifi(self):
        ssid = self.cfg.get("wifi")
        try:
            import network
        except ImportError:
            return  # the unix port: sockets work without Wi-Fi
        if not ssid or not hasattr(network, "WLAN"):
            return
        self.wlan = network.WLAN(network.STA_IF)
        self.wlan.active(True)
        if not self.wlan.isconnected():
            self.wlan.connect(ssid, self.cfg.get("wifi_password") or "")  # step() waits for it

    def _status_json(self, online):
        import json

        gc.collect()
        v = sys.implementation.version
        got = None
        if self.dl is not None:
            got = [self.got_chunks, self.dl["chunks"]]
        return json.dumps({
            "id": self.id, "online": online, "state": self.state, "reason": self.reason,
            "update_seq": self.update_seq, "seq": self.seq, "model": self.model_name, "sha256": self.model_sha,
            "kernel": getattr(self.net, "kernel", None) if self.net is not None else None,
            "heap_free": gc.mem_free(), "firmware": "%d.%d.%d" % (v[0], v[1], v[2]),
            "uptime": time.ticks_diff(time.ticks_ms(), self.boot_ms) // 1000, "progress": got,
            "sent": self.sent, "dropped": self.dropped})

    def _connect(self):
        import umqtt.simple
        from umqtt.simple import MQTTClient

        if not isinstance(umqtt.simple.socket, _TimedSockets):
            umqtt.simple.socket = _TimedSockets(umqtt.simple.socket)

        cfg = self.cfg
        ssl = bool(cfg.get("tls"))
        if ssl and "ussl" not in sys.modules:
            try:  # umqtt.simple imports `ussl`; MicroPython >= 1.21 names it `ssl`
                import ssl as _ssl

                sys.modules["ussl"] = _ssl
            except ImportError:
                self.problem = "this port has no ssl module: cannot reach an mqtts:// broker"
                raise OSError(95)
        c = MQTTClient(("edgenn-%s-%s" % (self.group, self.id)).encode(), cfg["host"], cfg["port"],
                       cfg.get("user"), cfg.get("password"), _KEEPALIVE_S, ssl,
                       {"server_hostname": cfg["host"]} if ssl else {})
        c.set_callback(self._on_message)
        c.set_last_will(self.t_status, self._status_json(False), True, 1)
        try:
            c.connect()
        except Exception as exc:  # refused, unreachable, wrong password (MQTTException 4/5)
            try:
                c.sock.close()
            except Exception:
                pass
            self.problem = "cannot connect to the broker: %r" % (exc,)
            raise
        try:  # TCP_NODELAY: umqtt.simple writes a message in pieces; Nagle would hold each ack ~40 ms
            c.sock.setsockopt(6, 1, 1)  # IPPROTO_TCP, TCP_NODELAY (numbers: not every port names them)
        except Exception:
            pass
        self.client = c
        self.last_io = time.ticks_ms()
        self.backoff = _BACKOFF_MIN_MS
        self.problem = None
        self.send_status()
        if cfg.get("homeassistant"):
            self._discovery()
        c.subscribe(self.t_manifest, 1)
        if self.dl is not None:  # a download under way: the retained chunks come again, duplicates skipped
            c.subscribe(self.t_model + b"%d/+" % self.dl["seq"], 1)

    def _lost(self, exc):
        if self.client is not None:
            try:
                self.client.sock.close()
            except Exception:
                pass
        self.client = None
        self.problem = str(exc)
        self.next_try = time.ticks_add(time.ticks_ms(), self.backoff)
        self.backoff = min(self.backoff * 2, _BACKOFF_MAX_MS)

    def send_status(self):
        self.status_due = False
        if self.client is not None:
            self.client.publish(self.t_status, self._status_json(True), True, 1)
            self.last_status = self.last_io = time.ticks_ms()

    def _discovery(self):
        # Home Assistant MQTT discovery: the prediction as a sensor entity, available while online.
        import json

        uid = "edgenn_%s_%s" % (self.group, self.id)
        value = "{{ value_json.value }}" if self.regress else "{{ value_json.label }}"
        cfg = {"name": "prediction", "unique_id": uid, "object_id": uid,
               "state_topic": self.t_pred.decode(), "value_template": value,
               "json_attributes_topic": self.t_pred.decode(),
               "availability_topic": self.t_status.decode(),
               "availability_template": "{{ 'online' if value_json.online else 'offline' }}",
               "device": {"identifiers": [uid], "name": "edgenn %s" % self.id, "model": str(self.model_name),
                          "manufacturer": "edgenn"}}
        self.client.publish(b"homeassistant/sensor/%s/config" % uid, json.dumps(cfg), True, 1)

    def step(self):
        """Give the agent a few ms: connect when due, take incoming messages, send queued predictions."""
        if self.client is None:
            now = time.ticks_ms()
            if time.ticks_diff(now, self.next_try) < 0:
                return
            if self.wlan is not None and not self.wlan.isconnected():
                self.next_try = time.ticks_add(now, self.backoff)
                return
        self._guarded()

    def _guarded(self):
        # The try in a frame of its own (small frames on the serial server's idle path).
        try:
            self._io()
        except Exception:  # the broker went away (OSError) or broke the protocol: reconnect later
            self._lost(self.problem or "lost the broker")

    def _io(self):
        if self.client is None:
            self._connect()
        for _ in range(_MSGS_PER_STEP):
            self.got = False
            self.client.check_msg()
            if not self.got:
                break
        if self.sub_due is not None and self.dl is not None:
            topic = self.sub_due
            self.sub_due = None
            self.client.subscribe(topic, 1)
        while self.count:
            self._publish_oldest()
        now = time.ticks_ms()
        if self.status_due or time.ticks_diff(now, self.last_status) > _STATUS_MS:
            self.send_status()
        elif time.ticks_diff(now, self.last_io) > _PING_MS:
            self.client.ping()
            self.last_io = now

    # ---- model updates -------------------------------------------------------------------------

    def _on_message(self, topic, msg):
        self.got = True
        self.last_io = time.ticks_ms()
        if topic == self.t_manifest:
            self._on_manifest(msg)
        elif topic.startswith(self.t_model):
            self._on_chunk(topic, msg)

    def _set(self, state, seq, reason=None):
        # `seq`: the manifest this state is about, in the status so that a deploy never takes a refusal
        # of an earlier update (kept in fleet.note across a restart) for an answer to its own
        self.state = state
        self.update_seq = seq
        self.reason = reason
        self.status_due = True

    def _refuse(self, reason, seq):
        # Visible in the status, and remembered so a retained manifest is not tried again at every boot.
        import json

        self._abandon()
        self.note_seq = seq
        _write_atomic(NOTE_FILE, json.dumps({"seq": seq, "state": "refused", "reason": reason}))
        self._set("refused", seq, reason)

    def _abandon(self):
        if self.part is not None:
            try:
                self.part.close()
            except OSError:
                pass
            self.part = None
        _remove(PART_FILE)
        self.dl = None
        self.have = None
        self.got_chunks = 0

    def _on_manifest(self, msg):
        if not msg:
            return  # a cleared retained manifest
        try:
            self._take_manifest(msg)
        except MemoryError as exc:  # refused and said, not a dropped connection (and a loop of them)
            self._abandon()
            self._set("refused", None, "no heap to take the manifest (%s)" % exc)

    def _take_manifest(self, msg):
        import json

        gc.collect()  # a fragmented heap: what the last messages left goes first
        try:
            m = json.loads(msg)
        except ValueError:
            self._set("refused", None, "bad manifest (not JSON)")
            return
        if not isinstance(m, dict):
            self._set("refused", None, "bad manifest (not a JSON object)")
            return
        why = check_manifest(m, self.group, self.id, self.key)
        if why == "":
            return  # for other boards
        if why is not None:
            seq = m.get("seq")
            self._set("refused", seq if isinstance(seq, int) else None, why)
            return
        seq = m["seq"]
        if self.dl is not None and self.dl["seq"] == seq:
            return  # the same download, seen again after a reconnect
        if seq == self.seq and m["sha256"] == self.model_sha:
            return  # what this board already serves: not news
        if seq <= self.seq:
            self._set("refused", seq, "replayed manifest (seq %d <= accepted %d)" % (seq, self.seq))
            return
        if seq == self.note_seq:
            return  # refused or rolled back already; the status says why
        self.retried = False
        self._start_download(m)

    def _start_download(self, m):
        seq = m["seq"]
        self._abandon()
        try:
            self.part = open(PART_FILE, "wb")
        except OSError as exc:
            self._refuse("cannot write %s: %s" % (PART_FILE, exc), seq)
            return
        self.dl = m
        self.have = bytearray(m["chunks"])
        self.got_chunks = 0
        self.last_progress = time.ticks_ms()
        self._set("downloading", seq)
        self.sub_due = self.t_model + b"%d/+" % seq

    def _on_chunk(self, topic, msg):
        m = self.dl
        if m is None or not msg:
            return  # a chunk of a download that is over, or a cleared retained chunk
        rest = topic[len(self.t_model):]
        slash = rest.find(b"/")
        try:
            seq = int(rest[:slash])
            i = int(rest[slash + 1:])
        except ValueError:
            return
        if seq != m["seq"]:
            return  # from an earlier subscription (umqtt.simple cannot unsubscribe): not ours
        chunks, chunk = m["chunks"], m["chunk"]
        if i < 0 or i >= chunks:
            self._refuse("chunk %d of seq %d: index out of range (%d chunks)" % (i, seq, chunks), seq)
            return
        want = chunk if i < chunks - 1 else m["size"] - chunk * (chunks - 1)
        if len(msg) != want:
            self._refuse("chunk %d of seq %d: %d bytes, expected %d" % (i, seq, len(msg), want), seq)
            return
        if self.have[i]:
            return
        try:
            self.part.seek(i * chunk)
            self.part.write(msg)
        except OSError as exc:
            self._refuse("cannot write the model to flash (%s)" % exc, seq)
            return
        self.have[i] = 1
        self.got_chunks += 1
        if self.got_chunks == chunks:
            self._verify_and_swap()
        elif time.ticks_diff(time.ticks_ms(), self.last_progress) >= _PROGRESS_MS:
            self.last_progress = time.ticks_ms()
            self._set("downloading", seq)

    def _verify_and_swap(self):
        # Size and sha256 here; the load and the check vector after a restart, in a fresh heap where the
        # new model is loaded first and alone, as the server will load it (verify_at_boot).
        import json
        import os

        m = self.dl
        seq = m["seq"]
        self.part.close()
        self.part = None
        size = os.stat(PART_FILE)[6]
        if size != m["size"]:
            self._refuse("size %d, expected %d" % (size, m["size"]), seq)
            return
        if file_sha256(PART_FILE) != m["sha256"]:
            if self.retried:
                self._refuse("sha256 mismatch: a chunk was altered or lost", seq)
                return
            # once more from the retained chunks (a subscription again gets them all again): a chunk
            # garbled on the way is fetched anew, a tampered one is refused the second time
            self.retried = True
            self._start_download(m)
            return
        _write_atomic(VERIFY_FILE, json.dumps({"seq": seq, "check": m["check"], "name": m["name"]}))
        self.dl = None
        self.have = None
        self._set("verifying", seq)
        try:
            self.send_status()
        except Exception:
            pass  # the status after the restart says how it ended
        self._restart()

    def _restart(self):
        # A clean disconnect (no last will: the next connect says online again), then main.py anew.
        if self.client is not None:
            try:
                self.client.disconnect()
            except OSError:
                pass
            self.client = None
        _restart()

    def _after_restart(self):
        # An update was swapped in before the restart: the health check the server's own load is.
        try:
            pending = _read_json(PENDING_FILE)
        except (OSError, ValueError):
            return
        seq = pending["seq"]
        problem = None
        server = self.server
        if server is not None and (server.net is None or server.model_file != MODEL_FILE):
            problem = server.problem or "the server did not load %s" % MODEL_FILE
        elif self.net is not None:
            out = self.net.forward_q(bytes(pending["check"]["x"]))
            if list(out) != list(pending["check"]["q"]):
                problem = "after the restart it answers the check vector wrongly"
        if problem is None:
            _write_atomic(SEQ_FILE, "%d\n" % seq)
            self.seq = seq
            _remove(PENDING_FILE)
            _remove(NOTE_FILE)
            self.state, self.reason, self.note_seq, self.update_seq = "serving", None, -1, None
            return
        roll_back(seq, "health check failed: %s" % problem)

    def _read_seq(self):
        try:
            with open(SEQ_FILE) as f:
                return int(f.read().strip())
        except (OSError, ValueError):
            return 0

    def _model_identity(self):
        # name and sha256 of the file the server serves (hashed once, at boot)
        name = None
        if self.server is not None:
            name = self.server.model_file
        elif _exists(MODEL_FILE):
            name = MODEL_FILE
        if name is not None:
            try:
                self.model_sha = file_sha256(name)
            except OSError:
                self.model_sha = None
