"""Type stubs for the fleet agent (firmware/edgenn_fleet.py, MicroPython), installed by `edgenn fleet join`.

The serial server (edgenn_server.main) starts the agent itself on a board that has joined (fleet.json);
an application with its own main.py (a sensor loop) starts it and gives it time:

    import edgenn, edgenn_fleet
    net = edgenn.load("model.enn")
    edgenn_fleet.start(net=net)          # None on a board that never joined: publish() then does nothing
    while True:
        k = net.predict(read_window())
        edgenn_fleet.publish(k, edgenn_fleet.SRC_WINDOW)   # queued: no allocation
        edgenn_fleet.step()                                  # MQTT in and out, a few ms
"""

from typing import Any

SRC_SERIAL: int  # "src": "serial" (the serial server's requests)
SRC_WINDOW: int  # "src": "window" (a sensor loop over a Window)
SRC_APP: int  # "src": "app" (anything else)

def start(server: Any = None, net: Any = None) -> Agent | None:
    """The agent of this board (created once), or None when the board has not joined a fleet.
    server: the edgenn_server.Server (its model is the one reported); net: an edgenn.Net otherwise."""

def publish(k: int, src: int = ...) -> None:
    """One prediction: the class index (classification) or the raw int8 output (regression). Queued in
    a preallocated ring of 64 (the oldest dropped first, counted in the status `dropped`), sent with
    QoS 1 by step(); the join's --publish policy (every, every:N, change) decides which are queued."""

def step() -> None:
    """Connect when due (backoff 0.5-5 s), handle incoming messages (manifest, model chunks), send the
    queued predictions and the status. Returns within a few ms when the broker is up; never raises
    for a lost broker."""

def verify_at_boot() -> None:
    """edgenn_server.main() calls it before loading a model when a downloaded update awaits its check."""

def hmac_sha256(key: bytes, msg: bytes) -> bytes: ...
def signing_string(manifest: dict) -> str: ...
def check_manifest(manifest: dict, group: str, board_id: str, key: bytes) -> str | None:
    """None: well formed, for this board, signed with the key; "": for other boards; else the refusal."""

class Agent:
    n: int  # predictions made
    sent: int  # predictions the broker acknowledged
    dropped: int  # predictions dropped from the full queue while the broker was away
    state: str  # serving | downloading | verifying | rolled back | refused
    reason: str | None
    seq: int  # the accepted manifest sequence number (persisted in fleet.seq)
    def note(self, src: int, k: int) -> None: ...
    def step(self) -> None: ...
    def send_status(self) -> None: ...
