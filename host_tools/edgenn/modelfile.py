"""The `.enn` integer model file: the one writer and the one reader on the host.

The byte layout, the arithmetic it describes and the reader's error messages are specified in
docs/model-format.md; this module follows it field by field. `QuantModel` is the in-memory form that
`quantize` produces, `golden` runs, and `to_bytes`/`from_bytes` convert losslessly.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgenn import frontend as fe_mod
from edgenn.errors import UserError
from edgenn.frontend import FrontEnd
from edgenn.outputs import write_atomic

MAGIC = b"EDNN"
FORMAT_VERSION = 1
FRONTEND_VERSION = 2  # a file with a sensor front end (section after the layers)
# Version 3: the sections after the layers are named by flags (front end, then anomaly score); the
# writer uses it only for anomaly models, so every other model's bytes stay version 1 or 2.
SECTIONS_VERSION = 3
VERSIONS = (FORMAT_VERSION, FRONTEND_VERSION, SECTIONS_VERSION)
FRONTEND_HEADER = struct.Struct("<BBHHBB")  # kind, axes, window, fft_size, n_bands, reserved
# magic, version, flags, n_layers, n_inputs, file length, n_outputs, reserved
HEADER = struct.Struct("<4sHHHHIHH")
LAYER_HEADER = struct.Struct("<HHBBi")  # n_in, n_out, activation, reserved, out_zero
CRC_SIZE = 4
FLAG_REGRESS = 0x0001
FLAG_ANOMALY = 0x0002  # version 3: the anomaly section follows (the outputs reconstruct the inputs)
FLAG_FRONTEND = 0x0004  # version 3: the front end section follows the layers
VERSION_FLAGS = {1: FLAG_REGRESS, 2: FLAG_REGRESS, 3: FLAG_REGRESS | FLAG_ANOMALY | FLAG_FRONTEND}
# threshold, then per input d three u16: c_d, e_d, m_d (the board reads them into one array('H'))
ANOMALY_HEADER = struct.Struct("<i")

ACTIVATION_CODES = {"identity": 0, "relu": 1, "sigmoid": 2, "tanh": 3}
ACTIVATION_NAMES = {code: name for name, code in ACTIVATION_CODES.items()}
LUT_ACTIVATIONS = ("sigmoid", "tanh")
HIDDEN_ACTIVATIONS = ("relu", "sigmoid", "tanh")
TASKS = ("classify", "regress", "anomaly")
LUT_SIZE = 256

MAX_LAYERS = 16
MAX_WIDTH = 4096
MULT_MIN, MULT_MAX = 1, 32767
SHIFT_MIN, SHIFT_MAX = 15, 29
OUT_ZERO_MIN, OUT_ZERO_MAX = -32768, 32767
ACC_LIMIT = 2**29  # |bias| + sum|W| * INPUT_CODE_MAX must stay below this (the overflow proof)
INPUT_CODE_MAX = 255  # every layer's inputs are unsigned bytes
MAX_STR_BYTES = 255
# The anomaly score S = sum_d c_d (u_d - r_d)**2 + e_d (u_d - m_d)**2 with codes 0..255: its proof is
# 65025 * sum_d (c_d + e_d) < 2**30, so S and every partial sum is a small int on a 32-bit board.
SCORE_LIMIT = 2**30
SCORE_TERM_MAX = 255 * 255


class ModelFormatError(ValueError):
    """A byte string that is not a valid `.enn` model; the message says which check failed."""


@dataclass(eq=False)
class QuantLayer:
    weights: np.ndarray  # int8 (n_out, n_in)
    bias: np.ndarray  # int64 (n_out,), fits int32
    mult: np.ndarray  # int64 (n_out,), 1..32767
    shift: np.ndarray  # int64 (n_out,), 15..29
    activation: str  # "identity" | "relu" | "sigmoid" | "tanh"
    out_zero: int  # added after requantization, before the clamp / table lookup
    lut: bytes | None = None  # 256 bytes for sigmoid and tanh, else None

    @property
    def n_in(self) -> int:
        return int(self.weights.shape[1])

    @property
    def n_out(self) -> int:
        return int(self.weights.shape[0])


@dataclass(eq=False)
class QuantModel:
    task: str  # "classify" | "regress"
    name: str
    feature_names: list[str]
    labels: list[str]
    in_scale: np.ndarray  # float32 (n_in,)
    in_offset: np.ndarray  # float32 (n_in,)
    out_scale: np.ndarray  # float32 (n_out,)
    out_zero_point: np.ndarray  # float32 (n_out,)
    layers: list[QuantLayer]
    frontend: FrontEnd | None = None  # raw window -> features (format version 2), None: raw features
    # anomaly only (format version 3): the integer score's weights, the normal codes, the threshold
    score_weights: np.ndarray | None = None  # c, int (n_in,) 0..65535
    deviation_weights: np.ndarray | None = None  # e, int (n_in,) 0..65535
    score_center: np.ndarray | None = None  # m, int (n_in,) 0..255
    threshold: int | None = None  # S > threshold: anomalous; 0..2**30-1

    @property
    def n_inputs(self) -> int:
        return self.layers[0].n_in

    @property
    def input_names(self) -> list[str]:
        """The columns a data row holds: the raw window's values with a front end, else the features."""
        return list(self.frontend.columns) if self.frontend is not None else list(self.feature_names)

    @property
    def n_outputs(self) -> int:
        return self.layers[-1].n_out


def overflow_bound(weights: np.ndarray, bias: np.ndarray) -> np.ndarray:
    """Per neuron, the largest |accumulator| any input bytes can produce: |bias| + sum|W| * 255."""
    w = np.asarray(weights, dtype=np.int64)
    return np.abs(np.asarray(bias, dtype=np.int64)) + np.abs(w).sum(axis=1) * INPUT_CODE_MAX


def max_admissible_bias(weights: np.ndarray) -> np.ndarray:
    """Per neuron, the largest |bias| the overflow proof admits with these weights."""
    w = np.asarray(weights, dtype=np.int64)
    return ACC_LIMIT - 1 - np.abs(w).sum(axis=1) * INPUT_CODE_MAX


def _malformed(detail: str) -> ModelFormatError:
    return ModelFormatError(f"malformed: {detail}")


def _check_str(value: str, what: str) -> bytes:
    if not isinstance(value, str):
        raise _malformed(f"{what} is not a string")
    raw = value.encode("utf-8")
    if len(raw) > MAX_STR_BYTES:
        raise _malformed(f"{what} is {len(raw)} bytes long (at most {MAX_STR_BYTES})")
    return raw


def _check_float_vector(values: np.ndarray, n: int, what: str, positive: bool = False) -> None:
    arr = np.asarray(values)
    if arr.shape != (n,):
        raise _malformed(f"{what} has shape {arr.shape}, expected ({n},)")
    with np.errstate(over="ignore", invalid="ignore"):
        as32 = arr.astype(np.float32)
    if not np.all(np.isfinite(as32)):
        raise _malformed(f"{what} is not finite")
    if positive and not np.all(as32 > 0):
        raise _malformed(f"{what} must be > 0")


def _check_int_vector(values: np.ndarray, n: int, lo: int, hi: int, what: str) -> None:
    arr = np.asarray(values)
    if arr.shape != (n,) or not np.issubdtype(arr.dtype, np.integer):
        raise _malformed(f"{what} must be {n} integers")
    if n and (int(arr.min()) < lo or int(arr.max()) > hi):
        raise _malformed(f"{what} outside {lo}..{hi}")


def validate(model: QuantModel) -> None:
    """Every rule of docs/model-format.md that a QuantModel can break; raises ModelFormatError."""
    if model.task not in TASKS:
        raise _malformed(f"task {model.task!r} is not one of {TASKS}")
    if not 1 <= len(model.layers) <= MAX_LAYERS:
        raise _malformed(f"{len(model.layers)} layers (must be 1..{MAX_LAYERS})")
    _check_str(model.name, "model name")
    n_prev = None
    for i, layer in enumerate(model.layers):
        where = f"layer {i}"
        w = np.asarray(layer.weights)
        if w.ndim != 2 or not np.issubdtype(w.dtype, np.integer):
            raise _malformed(f"{where}: weights must be a 2-D integer array")
        n_out, n_in = w.shape
        if not (1 <= n_in <= MAX_WIDTH and 1 <= n_out <= MAX_WIDTH):
            raise _malformed(f"{where}: shape {n_out}x{n_in} outside 1..{MAX_WIDTH}")
        if n_prev is not None and n_in != n_prev:
            raise _malformed(f"{where}: n_in {n_in} differs from the previous layer's n_out {n_prev}")
        n_prev = n_out
        if int(w.min()) < -128 or int(w.max()) > 127:
            raise _malformed(f"{where}: weights outside int8")
        _check_int_vector(layer.bias, n_out, -(2**31), 2**31 - 1, f"{where}: bias")
        _check_int_vector(layer.mult, n_out, MULT_MIN, MULT_MAX, f"{where}: mult")
        _check_int_vector(layer.shift, n_out, SHIFT_MIN, SHIFT_MAX, f"{where}: shift")
        if not isinstance(layer.out_zero, int | np.integer) or not (
            OUT_ZERO_MIN <= int(layer.out_zero) <= OUT_ZERO_MAX
        ):
            raise _malformed(f"{where}: out_zero outside {OUT_ZERO_MIN}..{OUT_ZERO_MAX}")
        last = i == len(model.layers) - 1
        if last and layer.activation != "identity":
            raise _malformed(f"{where}: the last layer must be identity, not {layer.activation!r}")
        if not last and layer.activation not in HIDDEN_ACTIVATIONS:
            raise _malformed(f"{where}: hidden activation {layer.activation!r} is not relu/sigmoid/tanh")
        if layer.activation in LUT_ACTIVATIONS:
            if not isinstance(layer.lut, bytes | bytearray) or len(layer.lut) != LUT_SIZE:
                raise _malformed(f"{where}: {layer.activation} needs a {LUT_SIZE}-byte lut")
        elif layer.lut is not None:
            raise _malformed(f"{where}: {layer.activation} has no lut")
        bound = overflow_bound(w, layer.bias)
        if int(bound.max()) >= ACC_LIMIT:
            c = int(np.argmax(bound))
            raise _malformed(
                f"{where} neuron {c} fails the overflow proof: |bias| + sum|W|*255 = {int(bound[c])} >= 2**29"
            )
    n_in, n_out = model.n_inputs, model.n_outputs
    _check_float_vector(model.in_scale, n_in, "in_scale", positive=True)
    _check_float_vector(model.in_offset, n_in, "in_offset")
    _check_float_vector(model.out_scale, n_out, "out_scale", positive=True)
    _check_float_vector(model.out_zero_point, n_out, "out_zero_point")
    if model.task == "classify" and len(set(np.asarray(model.out_scale, np.float32).tolist())) != 1:
        raise _malformed("classification out_scale values differ (argmax needs one shared scale)")
    if len(model.feature_names) != n_in:
        raise _malformed(f"{len(model.feature_names)} feature names for {n_in} inputs")
    if len(model.labels) != n_out:
        raise _malformed(f"{len(model.labels)} labels for {n_out} outputs")
    for j, s in enumerate(model.feature_names):
        _check_str(s, f"feature name {j}")
    for k, s in enumerate(model.labels):
        _check_str(s, f"label {k}")
    if model.frontend is not None:
        _validate_frontend(model)
    if model.task == "anomaly":
        _validate_anomaly(model)


def score_bound(c: np.ndarray, e: np.ndarray) -> int:
    """The largest anomaly score any input and reconstruction codes can give: 65025 * sum(c + e)."""
    return SCORE_TERM_MAX * int(np.sum(np.asarray(c, np.int64)) + np.sum(np.asarray(e, np.int64)))


def _validate_anomaly(model: QuantModel) -> None:
    n = model.n_inputs
    if model.n_outputs != n:
        raise _malformed(f"anomaly model: {model.n_outputs} outputs reconstruct {n} inputs")
    _check_int_vector(model.score_weights, n, 0, 0xFFFF, "anomaly score weights")
    _check_int_vector(model.deviation_weights, n, 0, 0xFFFF, "anomaly deviation weights")
    _check_int_vector(model.score_center, n, 0, 255, "anomaly score center")
    t = model.threshold
    if not isinstance(t, int | np.integer) or not 0 <= int(t) < SCORE_LIMIT:
        raise _malformed(f"anomaly threshold {t!r} outside 0..2**30-1")
    if score_bound(model.score_weights, model.deviation_weights) >= SCORE_LIMIT:
        raise _malformed("anomaly score fails the overflow proof: 65025 * sum(c + e) >= 2**30")


def fixed_point_input(a: float, c: float) -> tuple[int, int, int] | None:
    """(A, B, S) as the board derives them from in_scale a and in_offset c (smallest S, A < 2**20,
    |B| < 2**29, 1 <= S <= 30): a = A / 2**S, c + 0.5 = B / 2**S. None: the board keeps floats."""
    a, c = float(np.float32(a)), float(np.float32(c))
    for shift in range(1, 31):
        if (a * 2**shift).is_integer() and (c * 2**shift).is_integer():
            big_a, big_b = int(a * 2**shift), int(c * 2**shift) + 2 ** (shift - 1)
            return (big_a, big_b, shift) if 1 <= big_a < 2**20 and abs(big_b) < 2**29 else None
    return None


def _validate_frontend(model: QuantModel) -> None:
    """A front end's features are integers: each feature's scaling must be fixed point and cover every
    value that does not saturate (so the board's small-int path needs no float, ever)."""
    fe = model.frontend
    try:
        fe_mod.check(fe)
    except ValueError as exc:
        raise _malformed(f"front end: {exc}") from None
    if fe.n_features != model.n_inputs:
        raise _malformed(f"front end makes {fe.n_features} features, the network takes {model.n_inputs}")
    for j, name in enumerate(fe.columns):
        _check_str(name, f"column name {j}")
    for d, (a, c) in enumerate(zip(model.in_scale, model.in_offset)):
        fix = fixed_point_input(a, c)
        a, c = float(np.float32(a)), float(np.float32(c))
        if fix is None or a <= 0:
            raise _malformed(f"front end feature {d}: input scaling is not fixed point")
        big_a, big_b, _ = fix
        if (2**30 - 1 - abs(big_b)) // big_a < max(abs((255.5 - c) / a), abs((-0.5 - c) / a)):
            raise _malformed(f"front end feature {d}: the small-int range does not reach both clamps")


# ---------------------------------------------------------------------------------------------- writer


def _pack_str(value: str) -> bytes:
    raw = value.encode("utf-8")
    return bytes([len(raw)]) + raw


def layer_body(layer: QuantLayer) -> bytes:
    """A layer's parameters as the file stores them after its header (and as the device's layer blob
    holds them before load-time preparation): weights, bias, mult, shift, [lut]."""
    body = np.asarray(layer.weights, dtype=np.int8).tobytes(order="C")
    body += np.asarray(layer.bias, dtype="<i4").tobytes()
    body += np.asarray(layer.mult, dtype="<u2").tobytes()
    body += np.asarray(layer.shift, dtype=np.uint8).tobytes()
    if layer.lut is not None:
        body += bytes(layer.lut)
    return body


def to_bytes(model: QuantModel) -> bytes:
    """The `.enn` bytes of a model (validated first: an invalid model raises ModelFormatError)."""
    validate(model)
    body = bytearray()
    body += np.asarray(model.in_scale, dtype="<f4").tobytes()
    body += np.asarray(model.in_offset, dtype="<f4").tobytes()
    body += _pack_str(model.name)
    for s in model.feature_names:
        body += _pack_str(s)
    for s in model.labels:
        body += _pack_str(s)
    body += np.asarray(model.out_scale, dtype="<f4").tobytes()
    body += np.asarray(model.out_zero_point, dtype="<f4").tobytes()
    for layer in model.layers:
        body += LAYER_HEADER.pack(
            layer.n_in, layer.n_out, ACTIVATION_CODES[layer.activation], 0, int(layer.out_zero)
        )
        body += layer_body(layer)
    if model.frontend is not None:
        body += _pack_frontend(model.frontend)
    flags = FLAG_REGRESS if model.task == "regress" else 0
    version = FORMAT_VERSION if model.frontend is None else FRONTEND_VERSION
    if model.task == "anomaly":
        version = SECTIONS_VERSION
        flags = FLAG_ANOMALY | (FLAG_FRONTEND if model.frontend is not None else 0)
        body += ANOMALY_HEADER.pack(int(model.threshold))
        triples = np.stack([model.score_weights, model.deviation_weights, model.score_center], axis=1)
        body += np.asarray(triples, dtype="<u2").tobytes()
    length = HEADER.size + len(body) + CRC_SIZE
    header = HEADER.pack(MAGIC, version, flags, len(model.layers), model.n_inputs, length, model.n_outputs, 0)
    data = header + bytes(body)
    return data + struct.pack("<I", zlib.crc32(data) & 0xFFFFFFFF)


def _pack_frontend(fe: FrontEnd) -> bytes:
    out = bytearray(
        FRONTEND_HEADER.pack(fe_mod.KIND_CODES[fe.kind], fe.axes, fe.window, fe.fft_size, fe.n_bands, 0)
    )
    if fe.kind == "spectral":
        out += np.asarray(fe.band_edges, dtype="<u2").tobytes()
        cos, sin = fe_mod.twiddles(fe.fft_size)
        out += cos.astype("<i2").tobytes() + sin.astype("<i2").tobytes()
    for name in fe.columns:
        out += _pack_str(name)
    return bytes(out)


def _read_frontend(cur: _Cursor) -> FrontEnd:
    kind_code, axes, window, fft_size, n_bands, reserved = FRONTEND_HEADER.unpack(
        cur.take(FRONTEND_HEADER.size, "front end header")
    )
    kinds = {code: name for name, code in fe_mod.KIND_CODES.items()}
    if kind_code not in kinds:
        raise _malformed(f"unknown front end kind {kind_code}")
    if reserved:
        raise _malformed("front end reserved byte is not 0")
    edges: tuple[int, ...] = ()
    if kinds[kind_code] == "spectral":
        if not 1 <= n_bands or fft_size < 2 or fft_size > fe_mod.MAX_FFT or fft_size & (fft_size - 1):
            raise _malformed(f"front end FFT size {fft_size} / {n_bands} bands")
        edges = tuple(int(e) for e in cur.array("<u2", n_bands + 1, "band edges"))
        cos = cur.array("<i2", fft_size // 2, "twiddles").astype(np.int64)
        sin = cur.array("<i2", fft_size // 2, "twiddles").astype(np.int64)
        want_cos, want_sin = fe_mod.twiddles(fft_size)
        if not (np.array_equal(cos, want_cos) and np.array_equal(sin, want_sin)):
            raise _malformed("front end twiddles differ from round(16384 * cos/sin(2 pi k / P))")
    columns = tuple(cur.string(f"column name {j}") for j in range(axes * window))
    try:
        fe = FrontEnd(kinds[kind_code], axes, window, columns, fft_size, edges)
        fe_mod.check(fe)
    except ValueError as exc:
        raise _malformed(f"front end: {exc}") from None
    return fe


def save(model: QuantModel, path: str | Path) -> int:
    """Write the model atomically (outputs.write_atomic: temp file in the same directory, then rename,
    the usual file mode); returns its size."""
    return write_atomic(path, to_bytes(model))


# ---------------------------------------------------------------------------------------------- reader


class _Cursor:
    """Reads the body between the header and the CRC; running past its end is 'malformed'."""

    def __init__(self, data: bytes, start: int, end: int) -> None:
        self.data, self.pos, self.end = data, start, end

    def take(self, n: int, what: str) -> bytes:
        if n > self.end - self.pos:
            raise _malformed(f"{what} runs past the end of the model (at byte {self.pos})")
        chunk = self.data[self.pos : self.pos + n]
        self.pos += n
        return chunk

    def array(self, dtype: str, count: int, what: str) -> np.ndarray:
        itemsize = np.dtype(dtype).itemsize
        return np.frombuffer(self.take(itemsize * count, what), dtype=dtype).copy()

    def string(self, what: str) -> str:
        n = self.take(1, what)[0]
        raw = self.take(n, what)
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            raise _malformed(f"{what} is not valid UTF-8") from None


def _check_count(value: int, lo: int, hi: int, what: str) -> None:
    if not lo <= value <= hi:
        raise _malformed(f"{what} is {value} (must be {lo}..{hi})")


def from_bytes(data: bytes | bytearray | memoryview) -> QuantModel:
    """Parse and fully validate `.enn` bytes. Raises ModelFormatError (and nothing else) if invalid."""
    data = bytes(data)
    if not data:
        raise ModelFormatError("file is empty")
    if data[: len(MAGIC)] != MAGIC[: min(len(data), len(MAGIC))]:
        raise ModelFormatError("not an edgenn model (bad magic)")
    if len(data) < HEADER.size:
        raise ModelFormatError("truncated header")
    _, version, flags, n_layers, n_inputs, length, n_outputs, reserved = HEADER.unpack_from(data)
    if version not in VERSIONS:
        raise ModelFormatError(f"format version {version} not supported (reader knows 1, 2 and 3)")
    if len(data) < length:
        raise ModelFormatError(f"truncated: header says {length} bytes, file has {len(data)}")
    if len(data) > length:
        raise ModelFormatError(f"trailing bytes: header says {length} bytes, file has {len(data)}")
    if length < HEADER.size + CRC_SIZE:
        raise _malformed(f"file length {length} is shorter than header plus CRC")
    (stored_crc,) = struct.unpack_from("<I", data, length - CRC_SIZE)
    if zlib.crc32(data[: length - CRC_SIZE]) & 0xFFFFFFFF != stored_crc:
        raise ModelFormatError("CRC mismatch: file is corrupted")

    known = VERSION_FLAGS[version]
    if flags & ~known:
        raise _malformed(f"unknown flag bits 0x{flags & ~known:04x}")
    if flags & FLAG_REGRESS and flags & FLAG_ANOMALY:
        raise _malformed("flags say both regress and anomaly")
    if reserved:
        raise _malformed("reserved header field is not 0")
    _check_count(n_layers, 1, MAX_LAYERS, "n_layers")
    _check_count(n_inputs, 1, MAX_WIDTH, "n_inputs")
    _check_count(n_outputs, 1, MAX_WIDTH, "n_outputs")

    cur = _Cursor(data, HEADER.size, length - CRC_SIZE)
    in_scale = cur.array("<f4", n_inputs, "in_scale")
    in_offset = cur.array("<f4", n_inputs, "in_offset")
    name = cur.string("model name")
    feature_names = [cur.string(f"feature name {j}") for j in range(n_inputs)]
    labels = [cur.string(f"label {k}") for k in range(n_outputs)]
    out_scale = cur.array("<f4", n_outputs, "out_scale")
    out_zero_point = cur.array("<f4", n_outputs, "out_zero_point")

    layers = []
    n_prev = n_inputs
    for i in range(n_layers):
        where = f"layer {i}"
        n_in, n_out, act_code, layer_reserved, out_zero = LAYER_HEADER.unpack(
            cur.take(LAYER_HEADER.size, f"{where} header")
        )
        _check_count(n_in, 1, MAX_WIDTH, f"{where} n_in")
        _check_count(n_out, 1, MAX_WIDTH, f"{where} n_out")
        if n_in != n_prev:
            raise _malformed(f"{where}: n_in {n_in} differs from the previous layer's n_out {n_prev}")
        n_prev = n_out
        if act_code not in ACTIVATION_NAMES:
            raise _malformed(f"{where}: unknown activation code {act_code}")
        if layer_reserved:
            raise _malformed(f"{where}: reserved byte is not 0")
        activation = ACTIVATION_NAMES[act_code]
        last = i == n_layers - 1
        if last != (activation == "identity"):
            raise _malformed(f"{where}: {activation} (only the last layer is identity, and it must be)")
        weights = cur.array("i1", n_out * n_in, f"{where} weights").reshape(n_out, n_in)
        bias = cur.array("<i4", n_out, f"{where} bias").astype(np.int64)
        mult = cur.array("<u2", n_out, f"{where} mult").astype(np.int64)
        shift = cur.array("u1", n_out, f"{where} shift").astype(np.int64)
        lut = cur.take(LUT_SIZE, f"{where} lut") if activation in LUT_ACTIVATIONS else None
        layers.append(QuantLayer(weights, bias, mult, shift, activation, int(out_zero), lut))
    if n_prev != n_outputs:
        raise _malformed(f"n_outputs {n_outputs} differs from the last layer's n_out {n_prev}")
    has_frontend = version == FRONTEND_VERSION or bool(flags & FLAG_FRONTEND)
    frontend = _read_frontend(cur) if has_frontend else None
    anomaly: dict = {}
    if flags & FLAG_ANOMALY:
        (threshold,) = ANOMALY_HEADER.unpack(cur.take(ANOMALY_HEADER.size, "anomaly threshold"))
        triples = cur.array("<u2", 3 * n_inputs, "anomaly score weights").astype(np.int64).reshape(-1, 3)
        anomaly = {
            "threshold": int(threshold),
            "score_weights": triples[:, 0].copy(),
            "deviation_weights": triples[:, 1].copy(),
            "score_center": triples[:, 2].copy(),
        }
    if cur.pos != cur.end:
        raise _malformed(f"{cur.end - cur.pos} unexpected bytes after the last layer")

    model = QuantModel(
        task="regress" if flags & FLAG_REGRESS else "anomaly" if flags & FLAG_ANOMALY else "classify",
        name=name,
        feature_names=feature_names,
        labels=labels,
        in_scale=in_scale,
        in_offset=in_offset,
        out_scale=out_scale,
        out_zero_point=out_zero_point,
        layers=layers,
        frontend=frontend,
        **anomaly,
    )
    validate(model)  # value rules: mult/shift/out_zero ranges, finite scales, the overflow proof
    return model


def load(path: str | Path) -> QuantModel:
    """Read a `.enn` file; a missing or invalid file is a UserError naming the file and the problem."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise UserError(f"{path}: no such file (make one with `edgenn quantize`)") from None
    except IsADirectoryError:
        raise UserError(f"{path}: is a directory, not a .enn model") from None
    except OSError as exc:
        raise UserError(f"{path}: cannot read ({exc.strerror})") from None
    if data.startswith(b"PK"):  # a zip archive: the float model `edgenn train` writes
        raise UserError(
            f"{path}: is a float model (.npz from `edgenn train`); this takes the integer .enn: "
            f"edgenn quantize {path} --data DATA -o {path.with_suffix('.enn')}"
        )
    try:
        return from_bytes(data)
    except ModelFormatError as exc:
        raise UserError(f"{path}: {exc}") from None


def float32_bytes(model: QuantModel) -> int:
    """What the same network's weights and biases would take as float32 (for size comparisons)."""
    return sum(4 * (layer.weights.size + layer.n_out) for layer in model.layers)


def describe(model: QuantModel) -> str:
    """One line: task, layer sizes and activations, e.g. 'classify 4-32(relu)-16(relu)-3'."""
    parts = [str(model.n_inputs)]
    if model.frontend is not None:
        parts[0] = f"[{fe_mod.describe(model.frontend)}] {model.n_inputs}"
    for layer in model.layers:
        act = "" if layer.activation == "identity" else f"({layer.activation})"
        parts.append(f"{layer.n_out}{act}")
    return f"{model.task} {'-'.join(parts)}"
