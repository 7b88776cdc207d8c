"""One MQTT session with the broker for a host command: the only module that drives paho for the host.

    with Session(url, "deploy") as s:
        retained = s.retained(["edgenn/G/+/status"])     # topic -> payload, after a settle time
        s.subscribe(["edgenn/G/+/status"])               # then s.messages() yields what arrives
        s.publish("edgenn/G/manifest", payload, retain=True)

Connection problems (nothing listening, a name that does not resolve, a wrong password, a user the
broker does not authorise) become a one-line UserError that names the broker by `BrokerURL.display()`,
which never shows the password. paho's network thread reconnects by itself if the broker goes away and
comes back; subscriptions are renewed on every connect.
"""

from __future__ import annotations

import queue
import secrets
import socket
import ssl
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from edgenn.errors import UserError
from edgenn.fleet.url import BrokerURL

CONNECT_TIMEOUT_S = 10.0
KEEPALIVE_S = 30
SETTLE_S = 0.5  # retained messages arrive right after SUBACK; this long without one means all are in


@dataclass(frozen=True)
class Message:
    topic: str
    payload: bytes
    retain: bool  # True: a retained message delivered on subscribe (old news), False: live


def connack_problem(reason: object, where: str, with_user: bool) -> str:
    """What a refused CONNACK means for the user, by its reason code's name (MQTT 3.1.1 and 5).
    mosquitto answers a wrong password with "not authorised" too, so the advice depends on whether a
    user was given."""
    name = str(reason).lower()
    if with_user and ("user name or password" in name or "not authori" in name):
        return f"{where} refused the user name or password: check the URL's USER:PASS or --password-file"
    if "not authori" in name or "user name or password" in name:
        return f"{where} did not authorise this client: give the broker a user (mqtt://USER:PASS@HOST)"
    return f"{where} refused the connection ({reason})"


class Session:
    def __init__(self, url: BrokerURL, role: str, timeout: float = CONNECT_TIMEOUT_S) -> None:
        self.url = url
        self.timeout = timeout
        self.where = f"the broker {url.display()}"
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=f"edgenn-{role}-{secrets.token_hex(4)}",
            protocol=mqtt.MQTTv311,
        )
        if url.user is not None:
            self.client.username_pw_set(url.user, url.password)
        if url.tls:
            self.client.tls_set(cert_reqs=ssl.CERT_REQUIRED)
        self.client.on_connect = self._on_connect
        self.client.on_message = self._on_message
        self.client.on_subscribe = self._on_subscribe
        self.client.on_disconnect = self._on_disconnect
        self._inbox: queue.Queue[Message] = queue.Queue()
        self._connected = threading.Event()
        self._refused: str | None = None
        self._filters: list[tuple[str, int]] = []
        self._suback: dict[int, list] = {}
        self._suback_event = threading.Condition()
        self.client.on_publish = self._on_publish
        self._acked: set[int] = set()
        self._acked_event = threading.Condition()
        self.bytes_published = 0
        self.reconnects = 0  # how often paho reconnected after losing the broker
        self._ever_connected = False

    # -- connection ----------------------------------------------------------------------------------
    def __enter__(self) -> Session:
        self.connect()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def connect(self) -> None:
        try:
            self.client.connect(self.url.host, self.url.port, keepalive=KEEPALIVE_S)
        except socket.gaierror:
            raise UserError(
                f"cannot find the broker host {self.url.host!r} (check the name in the URL)"
            ) from None
        except ConnectionRefusedError:
            raise UserError(
                f"no broker listening at {self.url.display()}: start one "
                f"(e.g. `mosquitto -p {self.url.port}`) or check the host and port"
            ) from None
        except ssl.SSLError as exc:
            raise UserError(f"TLS with {self.where} failed: {exc.reason or exc}") from None
        except (TimeoutError, OSError) as exc:
            raise UserError(f"cannot reach {self.where}: {exc.strerror or exc}") from None
        self.client.reconnect_delay_set(1, 4)  # a restarted broker is found again within seconds
        self.client.loop_start()
        deadline = time.monotonic() + self.timeout
        try:
            while not self._connected.wait(0.05):
                if self._refused is not None or time.monotonic() > deadline:
                    raise UserError(self._refused or f"{self.where} did not answer within {self.timeout:g} s")
        except BaseException:  # a refusal, or Ctrl-C while waiting: no thread left behind
            self.close()
            raise

    def close(self) -> None:
        """Disconnect cleanly (the broker sees no lost client) and stop paho's thread."""
        try:
            if self._connected.is_set():
                self.client.disconnect()
        finally:
            self.client.loop_stop()

    def _on_connect(self, client: mqtt.Client, userdata: object, flags: object, reason, props=None) -> None:
        if reason.is_failure:
            self._refused = connack_problem(reason, self.where, self.url.user is not None)
            client.disconnect()  # a refused login is not retried
            return
        if self._filters:  # a reconnect: the broker forgot our subscriptions (clean session)
            client.subscribe(self._filters)
        if self._ever_connected:
            self.reconnects += 1
        self._ever_connected = True
        self._connected.set()

    def _on_disconnect(self, client: mqtt.Client, userdata: object, flags, reason, props=None) -> None:
        if self._refused is None:
            self._connected.clear()

    def _on_message(self, client: mqtt.Client, userdata: object, msg: mqtt.MQTTMessage) -> None:
        self._inbox.put(Message(msg.topic, bytes(msg.payload), bool(msg.retain)))

    def _on_subscribe(self, client: mqtt.Client, userdata: object, mid: int, reasons, props=None) -> None:
        with self._suback_event:
            self._suback[mid] = list(reasons)
            self._suback_event.notify_all()

    def _on_publish(self, client: mqtt.Client, userdata: object, mid: int, reason=None, props=None) -> None:
        with self._acked_event:
            self._acked.add(mid)
            self._acked_event.notify_all()

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    # -- receiving -----------------------------------------------------------------------------------
    def subscribe(self, filters: list[str], qos: int = 1) -> None:
        """Subscribe and wait for the broker's answer; a refused filter (ACL) is a UserError.

        QoS 0 suits retained state (statuses: the latest wins, and after a reconnect the retained one
        comes again): a broker holds at most ~20 QoS 1 messages in flight per client and queues 1,000
        more (mosquitto's defaults), which a thousand boards' statuses overflow in one burst; QoS 0
        goes straight to the socket."""
        self._filters += [(f, qos) for f in filters]
        result, mid = self.client.subscribe([(f, qos) for f in filters])
        if result != mqtt.MQTT_ERR_SUCCESS:
            raise UserError(f"lost {self.where} while subscribing")
        deadline = time.monotonic() + self.timeout
        with self._suback_event:
            while mid not in self._suback:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise UserError(
                        f"{self.where} did not confirm the subscription within {self.timeout:g} s"
                    )
                self._suback_event.wait(left)
            reasons = self._suback.pop(mid)
        denied = [f for f, r in zip(filters, reasons) if r.is_failure]
        if denied:
            raise UserError(
                f"{self.where} does not let this user read {', '.join(denied)} (check the broker's ACL)"
            )

    def get(self, timeout: float) -> Message | None:
        """The next message, or None after `timeout` seconds without one."""
        try:
            return self._inbox.get(timeout=max(timeout, 0.0))
        except queue.Empty:
            return None

    def messages(self, until: float) -> Iterator[Message]:
        """Messages as they arrive, until the monotonic time `until`."""
        while (left := until - time.monotonic()) > 0:
            msg = self.get(min(left, 0.2))
            if msg is not None:
                yield msg

    def drain(self, settle: float = SETTLE_S) -> list[Message]:
        """Every message that arrives until none has come for `settle` seconds."""
        found = []
        while True:
            try:
                found.append(self._inbox.get(timeout=settle))
            except queue.Empty:
                return found

    def retained(
        self, filters: list[str], settle: float = SETTLE_S, keep: bool = False, qos: int = 1
    ) -> dict[str, bytes]:
        """What the broker holds retained under `filters`: topic -> payload (empty payloads, i.e. cleared
        topics, left out). Done once SUBACK is in and no message has come for `settle` seconds; with
        `keep` the subscription stays and later messages come from messages()."""
        self.subscribe(filters, qos)
        found: dict[str, bytes] = {}
        for msg in self.drain(settle):
            if msg.payload:
                found[msg.topic] = msg.payload
            else:
                found.pop(msg.topic, None)
        if not keep:
            self.unsubscribe(filters)
        return found

    def unsubscribe(self, filters: list[str]) -> None:
        self.client.unsubscribe(filters)
        self._filters = [f for f in self._filters if f[0] not in filters]

    # -- sending -------------------------------------------------------------------------------------
    def publish_all(
        self, items: list[tuple[str, bytes]], retain: bool, deadline: float | None = None
    ) -> None:
        """Publish every (topic, payload) with QoS 1 and wait until the broker has acknowledged them all
        (paho resends after a reconnect)."""
        # Waited for by PUBACK (on_publish), not MQTTMessageInfo: a message published while the
        # connection is down is queued and resent, but its info then reports a failure.
        mids = set()
        for topic, payload in items:
            mids.add(self.client.publish(topic, payload, qos=1, retain=retain).mid)
            self.bytes_published += len(topic) + len(payload)
        deadline = deadline or time.monotonic() + max(self.timeout, 0.01 * len(items))
        with self._acked_event:
            while not mids <= self._acked:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise UserError(f"{self.where} did not acknowledge what was published (connection lost?)")
                self._acked_event.wait(min(left, 0.2))
            self._acked -= mids

    def publish(self, topic: str, payload: bytes, retain: bool = False) -> None:
        self.publish_all([(topic, payload)], retain)
