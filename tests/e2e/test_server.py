"""The prediction server (firmware/main.py + edgenn_server.py) inside the MicroPython unix port, over pipes.

No supervisor here: the interpreter runs main.py directly in a directory that holds the runtime and a
model, so these tests pin down the protocol itself. Over pipes every byte is data, Ctrl-C included (on a
board or the virtual board Ctrl-C stops the server on purpose; see test_predict.py), so the fuzz test
sends 0x03 too and expects an error reply for it like any other garbage.
"""

from __future__ import annotations

import json
import os
import queue
import shutil
import subprocess
import threading
import zlib
from pathlib import Path

import numpy as np
import pytest
from number_cases import ACCEPTED, REFUSED

from edgenn import golden, modelfile, zoo

ROOT = Path(__file__).resolve().parents[2]
# The runtime under test; EDGENN_FIRMWARE_DIR points at another build of it (main.py always comes from here).
FIRMWARE = Path(os.environ.get("EDGENN_FIRMWARE_DIR", ROOT / "firmware"))
SERVER = ROOT / "firmware" / "main.py"
MICROPYTHON = shutil.which("micropython", path=str(ROOT / ".venv" / "bin")) or shutil.which("micropython")
HEAP = "256K"  # an ESP32-sized heap: the server must fit and must not grow

pytestmark = [
    pytest.mark.skipif(MICROPYTHON is None, reason="MicroPython unix port not installed (make setup)"),
    pytest.mark.skipif(not (FIRMWARE / "edgenn.py").exists(), reason="firmware/edgenn.py not there yet"),
]


class Server:
    """main.py in a MicroPython process; replies are read by a thread so a hang fails, not blocks."""

    def __init__(self, directory: Path) -> None:
        self.proc = subprocess.Popen(
            [MICROPYTHON, "-X", f"heapsize={HEAP}", "main.py"],
            cwd=directory,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        self.lines: queue.Queue[bytes] = queue.Queue()
        threading.Thread(target=self._pump, daemon=True).start()
        self.banner = self.reply()
        assert self.banner.get("ready") is True, self.banner

    def _pump(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line)
        self.lines.put(b"")

    def send(self, data: bytes) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(data)
        self.proc.stdin.flush()

    def reply(self, timeout: float = 10.0) -> dict:
        try:
            line = self.lines.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError("no reply from main.py") from None
        assert line, "main.py exited"
        return json.loads(line)  # every line main.py prints is one JSON object

    def ask(self, line: str | bytes) -> dict:
        self.send((line.encode() if isinstance(line, str) else line) + b"\n")
        return self.reply()

    def close(self) -> None:
        if self.proc.stdin:
            self.proc.stdin.close()
        try:
            self.proc.wait(timeout=5)  # stdin closed: main.py returns on its own
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError("main.py did not exit when stdin closed") from None


def board_dir(tmp_path: Path, model: modelfile.QuantModel | None = None, raw: bytes | None = None) -> Path:
    """A flash directory: the runtime files, main.py and (optionally) model.enn."""
    d = tmp_path / "flash"
    d.mkdir()
    for f in FIRMWARE.glob("*.py"):
        shutil.copy(f, d / f.name)
    shutil.copy(SERVER, d / "main.py")
    if model is not None:
        modelfile.save(model, d / "model.enn")
    if raw is not None:
        (d / "model.enn").write_bytes(raw)
    return d


@pytest.fixture
def serve(tmp_path):
    servers = []

    def start(model=None, raw=None) -> Server:
        s = Server(board_dir(tmp_path, model, raw))
        servers.append(s)
        return s

    yield start
    for s in servers:
        s.close()


ZOO = zoo.build_zoo(0)


def feature_rows(model: modelfile.QuantModel, n: int, seed: int) -> np.ndarray:
    """Raw feature rows whose input codes cover 0..255 (and beyond, to exercise the clamp)."""
    rng = np.random.default_rng(seed)
    codes = rng.uniform(-20, 275, size=(n, model.n_inputs))
    scale = model.in_scale.astype(np.float64)
    offset = model.in_offset.astype(np.float64)
    return np.round((codes - offset) / scale, 6)


def line_for(row: np.ndarray) -> str:
    return ",".join(repr(float(v)) for v in row)


def check_prediction(model: modelfile.QuantModel, row: np.ndarray, reply: dict) -> None:
    expected = golden.forward_q(model, golden.quantize_input(model, row[None, :]))[0]
    assert reply["scores"] == expected.tolist(), reply
    assert isinstance(reply["us"], int) and reply["us"] >= 0
    if model.task == "classify":
        assert reply["class"] == int(np.argmax(expected))
        assert reply["label"] == model.labels[reply["class"]]
    else:
        value = golden.dequantize(model, expected[None, :])[0, 0]
        assert reply["value"] == pytest.approx(value, rel=1e-5, abs=1e-6)


@pytest.mark.parametrize(
    "name", ["relu_1", "relu_4", "sigmoid_2", "tanh_2", "tanh_3", "mixed_3", "inputs_1", "unicode_names"]
)
def test_predictions_equal_golden(serve, name):
    model = ZOO[name]
    server = serve(model)
    assert server.banner["model"] == model.name
    X = feature_rows(model, 40, seed=1)
    for row in X:
        check_prediction(model, row, server.ask(line_for(row)))
    # `q` requests: input codes straight into the integer network, including the edge inputs
    U = zoo.edge_inputs(model, 10, seed=2)
    expected = golden.forward_q(model, U)
    for u, e in zip(U, expected):
        reply = server.ask("q " + ",".join(str(int(v)) for v in u))
        assert reply["q"] == e.tolist()
    # `x` requests: raw values in, the board's own input codes and raw outputs back
    for row in X[:10]:
        reply = server.ask("x " + line_for(row))
        codes = golden.quantize_input(model, row[None, :])
        assert reply["x"] == codes[0].tolist()
        assert reply["q"] == golden.forward_q(model, codes)[0].tolist()


def test_info_describes_model_and_board(serve):
    model = ZOO["tanh_3"]
    server = serve(model)
    info = server.ask("info")
    assert info["model"] == model.name and info["task"] == "regress"
    assert (info["inputs"], info["outputs"]) == (model.n_inputs, model.n_outputs)
    assert info["labels"] == model.labels
    assert info["kernel"] in ("viper", "portable")
    assert info["micropython"].count(".") == 2
    assert info["heap_free"] > 0 and info["heap_alloc"] > 0
    assert info["float_bits"] == 64  # the unix port uses doubles; an ESP32 says 32
    raw = modelfile.to_bytes(model)
    assert info["model_size"] == len(raw)
    assert info["model_crc32"] == f"{int.from_bytes(raw[-4:], 'little'):08x}"
    assert "help" in server.ask("help")


def test_model_read_back_is_the_file(serve):
    model = ZOO["relu_2"]
    raw = modelfile.to_bytes(model)
    server = serve(model)
    data = b""
    while len(data) < len(raw):
        reply = server.ask(f"model {len(data)}")
        assert reply["size"] == len(raw)
        data += bytes.fromhex(reply["hex"])
    assert data == raw
    assert "error" in server.ask(f"model {len(raw) + 1}")
    assert "error" in server.ask("model -1")


def test_1000_predictions_equal_golden_and_heap_does_not_grow(serve):
    model = ZOO["relu_2"]  # 13-32-16-3
    server = serve(model)
    X = feature_rows(model, 1000, seed=3)
    expected = golden.forward_q(model, golden.quantize_input(model, X))
    for row in X[:20]:  # warm up: first-use allocations (interned strings, caches) happen here
        server.ask(line_for(row))
    server.ask("info")
    # The GC is conservative: right after a batch, a word left on the stack can keep the last request's
    # objects alive through the next collection (up to ~256 B, varying with the heap layout). One more
    # `info` first, so that both measurements start from a quiet stack.
    before = server.ask("info")
    # Pipelined in batches, as eval-device does.
    for start in range(0, 1000, 50):
        server.send(b"".join(line_for(row).encode() + b"\n" for row in X[start : start + 50]))
        for i in range(start, start + 50):
            reply = server.reply()
            assert reply["scores"] == expected[i].tolist(), (i, reply)
    server.ask("info")
    after = server.ask("info")
    # info runs gc.collect() first: what is still allocated afterwards is what the server holds on to.
    assert after["heap_alloc"] <= before["heap_alloc"], (before, after)


def split_lines(data: bytes) -> list[bytes]:
    """The server's framing, written down independently: CR or LF ends a line, CR LF ends one line."""
    lines, current, after_cr = [], bytearray(), False
    for b in data:
        if b in (10, 13):
            if b == 10 and after_cr:
                after_cr = False
                continue
            after_cr = b == 13
            lines.append(bytes(current))
            current.clear()
        else:
            after_cr = False
            current.append(b)
    assert not current, "test data must end with a line end"
    return lines


MALFORMED = [
    b"",
    b"   ",
    b",",
    b",,,",
    b"1,2",
    b"1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20",
    b"nan,1,2,3,4,5,6,7,8,9,10,11,12",
    b"1,2,3,4,5,6,7,8,9,10,11,12,inf",
    b"-inf,1,2,3,4,5,6,7,8,9,10,11,12",
    b"1e999,1,2,3,4,5,6,7,8,9,10,11,12",
    b"1_0,1,2,3,4,5,6,7,8,9,10,11,12",
    b"0x10,1,2,3,4,5,6,7,8,9,10,11,12",
    b"1.2.3,1,2,3,4,5,6,7,8,9,10,11,12",
    b"--1,1,2,3,4,5,6,7,8,9,10,11,12",
    b"1;2;3;4;5;6;7;8;9;10;11;12;13",
    b"\xff\xfe\xfd,\x00,\x01",
    "5,6,7,8,9,10,11,12,13,14,15,16,ü".encode(),
    b"info please",
    b"INFO",
    b"q",
    b"q ",
    b"q 1,2",
    b"q 256,0,0,0,0,0,0,0,0,0,0,0,0",
    b"q -1,0,0,0,0,0,0,0,0,0,0,0,0",
    b"q a,b",
    b"model",
    b"model x",
    b"\x01\x02\x04\x05\x1b[A",
    b"1" * 5000,
    b"1," * 3000,
]


def test_fuzz_every_good_line_still_answered(serve):
    """Random bytes and malformed lines between good lines: one reply per line, good lines exact."""
    model = ZOO["relu_2"]
    server = serve(model)
    max_line = server.banner["max_line"]
    rng = np.random.default_rng(4)
    X = feature_rows(model, 120, seed=5)
    expected = golden.forward_q(model, golden.quantize_input(model, X))
    for i, row in enumerate(X):
        if i % 3 == 0:
            junk = MALFORMED[i // 3 % len(MALFORMED)]
        else:  # random bytes of any value (Ctrl-C and line ends included), sometimes longer than a line
            size = int(rng.choice([1, 10, 100, max_line - 1, max_line, max_line + 1, 3 * max_line]))
            junk = rng.integers(0, 256, size=size, dtype=np.uint8).tobytes()
        data = junk + b"\n" + line_for(row).encode() + b"\r\n"
        lines = [line for line in split_lines(data) if line.strip(b" \t")]  # blank lines: no reply
        server.send(data)
        replies = [server.reply() for _ in lines]
        for line, reply in zip(lines[:-1], replies[:-1]):
            assert isinstance(reply, dict) and reply, (line, reply)
            if len(line) > max_line or line.strip() in MALFORMED:
                assert "error" in reply, (line, reply)
        assert replies[-1]["scores"] == expected[i].tolist(), (junk, replies)
    assert server.ask("info")["model"] == model.name  # and still serving


def test_overlong_line_gets_one_error_and_is_discarded(serve):
    model = ZOO["relu_1"]
    server = serve(model)
    max_line = server.banner["max_line"]
    row = feature_rows(model, 1, seed=6)[0]
    good = line_for(row).encode()
    # a good line hidden after max_line bytes of padding must not be answered: the whole line is dropped
    server.send(b" " * max_line + good + b"\n")
    reply = server.reply()
    assert "too long" in reply["error"] and str(max_line) in reply["error"]
    check_prediction(model, row, server.ask(good))
    # exactly max_line bytes is still a line
    padded = good + b" " * (max_line - len(good))
    check_prediction(model, row, server.ask(padded))


def test_a_rejected_value_leaves_nothing_behind(serve):
    # values are copied into a reused field buffer: a long value cut short by a bad byte or by the
    # length limit must not leak its tail into the next (shorter) value
    model = ZOO["relu_1"]
    server = serve(model)
    row = np.round(feature_rows(model, 1, seed=7)[0])
    short = ",".join(str(int(v)) for v in row)  # values of a few characters
    check_prediction(model, row, server.ask(short))
    assert "not a number" in server.ask("123456789012345x,1,2,3")["error"]
    check_prediction(model, row, server.ask(short))
    assert "longer than" in server.ask("1" * 40 + ",1,2,3")["error"]
    check_prediction(model, row, server.ask(short))
    assert "code" in server.ask("q 2555555,1,2,3")["error"]
    expected = golden.forward_q(model, np.array([[1, 2, 3, 4]], np.uint8))[0]
    assert server.ask("q 1,2,3,4")["q"] == expected.tolist()


def test_without_a_model_it_keeps_serving_and_says_deploy(serve):
    server = serve()
    assert server.banner["model"] is None and "deploy" in server.banner["error"]
    assert "deploy" in server.ask("1,2,3,4")["error"]
    info = server.ask("info")
    assert info["model"] is None and "deploy" in info["error"]


def test_corrupt_model_is_reported_not_fatal(serve):
    raw = bytearray(modelfile.to_bytes(ZOO["relu_1"]))
    raw[40] ^= 0xFF
    server = serve(raw=bytes(raw))
    assert "CRC" in server.banner["error"]
    assert "CRC" in server.ask("1,2,3,4")["error"]


ALLOC_PROBE = r"""
import gc, sys
sys.path.insert(0, "")
import edgenn_server  # the server module, without main.py's call that starts serving

server = edgenn_server.Server()

def request(data):
    server.line[: len(data)] = data
    server.handle(len(data))

def allocated(fn, n=50):
    fn()  # first use (interned names, caches) happens outside the count
    gc.collect()
    gc.disable()
    before = gc.mem_alloc()
    for _ in range(n):
        fn()
    after = gc.mem_alloc()
    gc.enable()
    return (after - before) / n

features, codes = sys.argv[1].encode(), ("q " + sys.argv[2]).encode()
result = {
    "features": allocated(lambda: request(features)),
    "codes": allocated(lambda: request(codes)),
    "quantize_input": allocated(lambda: server.net.quantize_input(server.feats)),
    "one_float": allocated(lambda: float(server.field)),
}
import json
sys.stderr.write(json.dumps(result) + "\n")
"""


def probe_allocations(d: Path, model: modelfile.QuantModel, row: np.ndarray, line: str) -> dict:
    """Bytes one request allocates inside MicroPython (ALLOC_PROBE in the flash directory d): the
    feature line, the same row as codes, quantize_input alone and one float."""
    (d / "probe.py").write_text(ALLOC_PROBE)
    codes = ",".join(str(int(v)) for v in golden.quantize_input(model, row[None, :])[0])
    result = subprocess.run(
        [MICROPYTHON, "-X", f"heapsize={HEAP}", "probe.py", line, codes],
        cwd=d,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stderr.strip().splitlines()[-1])


def test_a_prediction_allocates_only_its_parsed_floats(tmp_path):
    # Measured inside MicroPython with gc.mem_alloc (gc disabled): a `q` request allocates nothing at
    # all; a feature request allocates one float object per value on top of what the runtime's
    # input scaling allocates (floats are heap objects). Replies go to the real stdout (/dev/null).
    model = ZOO["relu_2"]
    row = feature_rows(model, 1, seed=8)[0]
    alloc = probe_allocations(board_dir(tmp_path, model), model, row, line_for(row))
    assert alloc["codes"] == 0
    assert alloc["one_float"] > 0
    assert alloc["features"] <= alloc["quantize_input"] + model.n_inputs * alloc["one_float"]


def test_a_line_of_integers_allocates_nothing(tmp_path):
    # Raw sensor readings: the server keeps them as small ints and the runtime's exact small-int input
    # scaling (dyadic in_scale/in_offset, as `edgenn quantize` writes them) needs no float objects.
    from edgenn.quantize import dyadic_inputs

    model = ZOO["relu_2"]
    model.in_scale, model.in_offset = dyadic_inputs(model.in_scale, model.in_offset)
    d = board_dir(tmp_path, model)
    row = np.round(feature_rows(model, 1, seed=9)[0]).astype(np.int64)
    alloc = probe_allocations(d, model, row.astype(np.float64), ",".join(str(v) for v in row))
    assert alloc["features"] == 0 and alloc["codes"] == 0
    # and the answer is golden's
    server = Server(d)
    try:
        reply = server.ask(",".join(str(v) for v in row))
        check_prediction(model, row.astype(np.float64), reply)
    finally:
        server.close()


# ---- issue 19 ------------------------------------------------------------------------------------


def with_scale(model: modelfile.QuantModel, value: float) -> bytes:
    """The model with in_scale[0] = value and a valid CRC: the board's loader alone must refuse it."""
    data = bytearray(modelfile.to_bytes(model)[:-4])
    data[20:24] = np.array([value], "<f4").tobytes()
    return bytes(data) + zlib.crc32(data).to_bytes(4, "little")


@pytest.mark.parametrize("value", [float("nan"), float("inf"), 0.0, -1.0])
def test_a_model_with_a_bad_scale_falls_back_to_the_backup(serve, tmp_path, value):
    good = ZOO["relu_1"]
    server = serve(raw=with_scale(ZOO["relu_4"], value))
    assert server.banner["model"] is None and "in_scale[0]" in server.banner["error"], server.banner
    assert "in_scale[0]" in server.ask("info")["error"]
    server.close()
    # with the previous model kept as model.enn.bak (what deploy leaves), the board serves that one
    d = tmp_path / "flash"
    modelfile.save(good, d / "model.enn.bak")
    server = Server(d)
    try:
        assert server.banner["model"] == good.name and "model.enn.bak" in server.banner["warning"]
        row = feature_rows(good, 1, seed=3)[0]
        check_prediction(good, row, server.ask(line_for(row)))
    finally:
        server.close()


def test_the_number_grammar_is_the_hosts(serve):
    """One table (tests/number_cases.py) for both sides; the host side is tests/host/test_protocol_client."""
    model = ZOO["relu_1"]
    server = serve(model)
    rest = ",1" * (model.n_inputs - 1)
    for text in ACCEPTED:
        reply = server.ask(text + rest)
        assert "scores" in reply, (text, reply)
    for text in REFUSED:
        reply = server.ask(text + rest)
        assert "error" in reply, (text, reply)
        assert "value 1 " in reply["error"], (text, reply)


def test_a_partial_line_is_not_glued_onto_the_next_request(serve):
    model = ZOO["relu_1"]
    server = serve(model)
    row = feature_rows(model, 1, seed=8)[0]
    server.send(b"\n\r\n  \n")  # blank lines: no reply at all (Enter in a terminal)
    server.send(b"1,2")  # half a request, e.g. from a program that was killed
    # what BoardClient does before its first request: a bare line end, then its request
    server.send(b"\n" + line_for(row).encode() + b"\n")
    assert "expected 4 values, got 2" in server.reply()["error"]
    check_prediction(model, row, server.reply())
