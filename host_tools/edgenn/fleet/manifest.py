"""The signed manifest of docs/fleet-protocol.md: build, sign, serialize, parse, verify; chunk a model.

One owner for the format: `fleet deploy` builds and signs with it, the simulated board (simboard.py)
parses and judges with it, and the board agent (firmware/edgenn_fleet.py) follows the same page; the
test vector in tests/host/test_fleet_manifest.py pins the signing string for both.

The signature is HMAC-SHA256 with the 32-byte fleet key over a line-per-field signing string (not over
the JSON, whose key order and spacing a MicroPython `json.dumps` need not reproduce).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import math
from dataclasses import dataclass, replace

from edgenn import modelfile
from edgenn.device.swap import probe_codes  # the golden check `deploy` makes over serial
from edgenn.fleet.topics import valid_name

VERSION = 1
SIGNING_TAG = "edgenn-manifest-v1"
DEFAULT_CHUNK = 2048  # bytes per chunk: one MQTT message a plain ESP32 receives into its heap at ease
MAX_CHUNK = 65536
MAX_NAME = 64
MAX_SEQ = 2**30 - 1  # a small int on the board (ESP32 small ints end at 2**30 - 1)
MAX_SIZE = 16 * 2**20
HEX_DIGITS = set("0123456789abcdef")
BAD_SIGNATURE = "bad signature (signed with another key?)"


class ManifestError(ValueError):
    """A manifest that is malformed or whose signature does not verify; the message is the board's reason."""


@dataclass(frozen=True)
class Manifest:
    group: str
    seq: int
    name: str
    size: int
    sha256: str  # 64 lowercase hex digits
    chunk: int
    chunks: int
    boards: tuple[str, ...] | None  # None: every board in the group
    check_x: tuple[int, ...]  # input codes 0..255
    check_q: tuple[int, ...]  # the int8 outputs golden gives for them
    sig: str = ""  # 64 hex digits; empty until signed

    def signing_string(self) -> str:
        boards = "*" if self.boards is None else ",".join(sorted(self.boards))
        check = ",".join(map(str, self.check_x)) + ";" + ",".join(map(str, self.check_q))
        fields = [SIGNING_TAG, self.group, self.seq, self.name, self.size, self.sha256, self.chunk]
        return "\n".join(str(f) for f in [*fields, self.chunks, boards, check])

    def targets(self, board: str) -> bool:
        return self.boards is None or board in self.boards

    def to_dict(self) -> dict:
        return {
            "v": VERSION,
            "group": self.group,
            "seq": self.seq,
            "name": self.name,
            "size": self.size,
            "sha256": self.sha256,
            "chunk": self.chunk,
            "chunks": self.chunks,
            "boards": None if self.boards is None else list(self.boards),
            "check": {"x": list(self.check_x), "q": list(self.check_q)},
            "sig": self.sig,
        }

    def to_bytes(self) -> bytes:
        """The retained payload: compact JSON, ASCII only."""
        return json.dumps(self.to_dict(), separators=(",", ":")).encode("ascii")


def signature(manifest: Manifest, key: bytes) -> str:
    return hmac.new(key, manifest.signing_string().encode("utf-8"), hashlib.sha256).hexdigest()


def sign(manifest: Manifest, key: bytes) -> Manifest:
    return replace(manifest, sig=signature(manifest, key))


def verify(manifest: Manifest, key: bytes) -> None:
    """Raise ManifestError(BAD_SIGNATURE) unless `manifest.sig` is the fleet key's signature."""
    if not hmac.compare_digest(manifest.sig, signature(manifest, key)):
        raise ManifestError(BAD_SIGNATURE)


def manifest_name(model_name: str) -> str:
    """The model's name as the manifest carries it: printable ASCII, at most MAX_NAME bytes (a board's
    status and a terminal show it; the .enn itself keeps the full name)."""
    text = "".join(c if " " <= c <= "~" else "?" for c in model_name)[:MAX_NAME]
    return text or "model"


def check_vector(model: modelfile.QuantModel) -> tuple[tuple[int, ...], tuple[int, ...]]:
    codes, outputs = probe_codes(model)
    return tuple(codes), tuple(outputs)


def chunk_model(data: bytes, chunk: int = DEFAULT_CHUNK) -> list[bytes]:
    """The model cut into `chunk`-byte pieces (the last one shorter); a model is never empty."""
    return [data[i : i + chunk] for i in range(0, len(data), chunk)]


def build(
    data: bytes,
    group: str,
    seq: int,
    key: bytes,
    boards: list[str] | None = None,
    chunk: int = DEFAULT_CHUNK,
) -> tuple[Manifest, list[bytes]]:
    """The signed manifest and the chunks for the .enn bytes `data` (which must parse: ModelFormatError)."""
    model = modelfile.from_bytes(data)
    x, q = check_vector(model)
    pieces = chunk_model(data, chunk)
    manifest = Manifest(
        group=group,
        seq=seq,
        name=manifest_name(model.name),
        size=len(data),
        sha256=hashlib.sha256(data).hexdigest(),
        chunk=chunk,
        chunks=len(pieces),
        boards=None if boards is None else tuple(sorted(set(boards))),
        check_x=x,
        check_q=q,
    )
    _check_fields(manifest)
    return sign(manifest, key), pieces


def parse(payload: bytes) -> Manifest:
    """A manifest from its retained payload, every field's type and range checked (ManifestError).
    The signature is not checked here: call verify()."""
    try:
        obj = json.loads(payload.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise ManifestError("malformed manifest: not JSON") from None
    if not isinstance(obj, dict):
        raise ManifestError("malformed manifest: not a JSON object")
    if obj.get("v") != VERSION:
        raise ManifestError(f"unsupported manifest version {obj.get('v')!r} (this side reads {VERSION})")
    check = obj.get("check")
    boards = obj.get("boards")
    if not isinstance(check, dict) or not _int_list(check.get("x")) or not _int_list(check.get("q")):
        raise ManifestError("malformed manifest: check must be {x: [ints], q: [ints]}")
    if boards is not None and not (isinstance(boards, list) and all(valid_name(b) for b in boards)):
        raise ManifestError("malformed manifest: boards must be null or a list of board ids")
    sig = obj.get("sig")
    if not isinstance(sig, str):
        raise ManifestError(BAD_SIGNATURE)
    try:
        manifest = Manifest(
            group=obj["group"],
            seq=obj["seq"],
            name=obj["name"],
            size=obj["size"],
            sha256=obj["sha256"],
            chunk=obj["chunk"],
            chunks=obj["chunks"],
            boards=None if boards is None else tuple(boards),
            check_x=tuple(check["x"]),
            check_q=tuple(check["q"]),
            sig=sig,
        )
    except KeyError as exc:
        raise ManifestError(f"malformed manifest: no {exc.args[0]!r}") from None
    _check_fields(manifest)
    return manifest


def _int_list(value: object) -> bool:
    return isinstance(value, list) and all(_is_int(v) for v in value)


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _check_fields(m: Manifest) -> None:
    problems = []
    if not valid_name(m.group):
        problems.append("group")
    if not (_is_int(m.seq) and 1 <= m.seq <= MAX_SEQ):
        problems.append("seq")
    if not (isinstance(m.name, str) and 0 < len(m.name) <= MAX_NAME and m.name == manifest_name(m.name)):
        problems.append("name")
    if not (_is_int(m.size) and 0 < m.size <= MAX_SIZE):
        problems.append("size")
    if not (isinstance(m.sha256, str) and len(m.sha256) == 64 and set(m.sha256) <= HEX_DIGITS):
        problems.append("sha256")
    if not (_is_int(m.chunk) and 0 < m.chunk <= MAX_CHUNK):
        problems.append("chunk")
    elif not (_is_int(m.chunks) and _is_int(m.size) and m.chunks == math.ceil(m.size / m.chunk)):
        problems.append("chunks")
    if not m.check_x or not all(0 <= v <= 255 for v in m.check_x):
        problems.append("check.x")
    if not m.check_q or not all(-128 <= v <= 127 for v in m.check_q):
        problems.append("check.q")
    if problems:
        raise ManifestError(f"malformed manifest: bad {', '.join(problems)}")


@dataclass(frozen=True)
class Verdict:
    """What a board does with a manifest: `action` is 'ignore', 'refuse' (with `reason`) or 'download'."""

    action: str
    reason: str | None = None
    manifest: Manifest | None = None  # set when the manifest parsed and its signature verified
    seq: int | None = None  # the seq a refused manifest claims (when it parsed): what the refusal is about


def judge(payload: bytes, key: bytes, board: str, accepted_seq: int, serving_sha256: str | None) -> Verdict:
    """The board side's manifest checks, in the protocol's order: parse, signature, is it for me,
    replay, already served. The board agent makes the same decisions in MicroPython."""
    try:
        manifest = parse(payload)
    except ManifestError as exc:
        return Verdict("refuse", str(exc))
    try:
        verify(manifest, key)
    except ManifestError as exc:
        return Verdict("refuse", str(exc), seq=manifest.seq)
    if not manifest.targets(board):
        return Verdict("ignore", manifest=manifest)
    if manifest.seq == accepted_seq and manifest.sha256 == serving_sha256:
        return Verdict("ignore", manifest=manifest)  # not news
    if manifest.seq <= accepted_seq:
        reason = f"replayed manifest (seq {manifest.seq} <= accepted {accepted_seq})"
        return Verdict("refuse", reason, manifest, manifest.seq)
    return Verdict("download", manifest=manifest)


def check_chunk(manifest: Manifest, seq: int, index: int, length: int) -> str | None:
    """None for a chunk that belongs to `manifest`, else the reason the board refuses it."""
    if seq != manifest.seq:
        return f"chunk {index} of seq {seq}, not the manifest's {manifest.seq}"
    if index >= manifest.chunks:
        return f"chunk {index} out of range (the model has {manifest.chunks})"
    want = manifest.chunk if index < manifest.chunks - 1 else manifest.size - manifest.chunk * index
    if length != want:
        return f"chunk {index} is {length} bytes, not {want}"
    return None
