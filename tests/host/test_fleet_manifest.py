"""The signed manifest (edgenn.fleet.manifest): the signing string pinned by a test vector, round trips,
the board-side judgement (signature, replay, targeting) and chunk checks."""

from __future__ import annotations

import hashlib
import json
from dataclasses import replace

import numpy as np
import pytest
from fleet_vector import KEY, VECTOR, VECTOR_SIG, VECTOR_STRING

from edgenn import golden, modelfile
from edgenn.fleet import manifest as mf
from edgenn.fleet import topics
from edgenn.zoo import build_zoo

OTHER_KEY = bytes(range(1, 33))


@pytest.fixture(scope="module")
def model_bytes() -> bytes:
    return modelfile.to_bytes(build_zoo(seed=1)["relu_4"])  # 7 KB: several chunks


def test_signing_string_and_signature_are_pinned() -> None:
    assert VECTOR.signing_string() == VECTOR_STRING
    assert mf.signature(VECTOR, KEY) == VECTOR_SIG
    everyone = replace(VECTOR, boards=None)
    assert everyone.signing_string().split("\n")[8] == "*"
    assert mf.signature(everyone, KEY) != VECTOR_SIG


def test_serialized_manifest_has_the_protocol_fields() -> None:
    obj = json.loads(mf.sign(VECTOR, KEY).to_bytes())
    assert obj == {
        "v": 1,
        "group": "lab",
        "seq": 7,
        "name": "iris",
        "size": 1234,
        "sha256": "ab" * 32,
        "chunk": 512,
        "chunks": 3,
        "boards": ["b2", "b1"],
        "check": {"x": [142, 201, 13, 7], "q": [57, -48, -128]},
        "sig": VECTOR_SIG,
    }


def test_build_chunks_and_check_vector(model_bytes: bytes) -> None:
    m, chunks = mf.build(model_bytes, "lab", 3, KEY, boards=["b9", "b1"], chunk=1000)
    assert b"".join(chunks) == model_bytes
    assert [len(c) for c in chunks[:-1]] == [1000] * (len(chunks) - 1)
    assert m.chunks == len(chunks) == -(-len(model_bytes) // 1000)
    assert m.sha256 == hashlib.sha256(model_bytes).hexdigest() and m.size == len(model_bytes)
    assert m.boards == ("b1", "b9")
    model = modelfile.from_bytes(model_bytes)
    codes = np.array(m.check_x, dtype=np.uint8)
    assert list(golden.forward_q(model, codes[None, :])[0]) == list(m.check_q)
    assert len(m.check_x) == model.n_inputs and len(m.check_q) == model.n_outputs
    mf.verify(m, KEY)
    for i, piece in enumerate(chunks):
        assert mf.check_chunk(m, 3, i, len(piece)) is None


def test_parse_round_trip_and_verify(model_bytes: bytes) -> None:
    m, _ = mf.build(model_bytes, "lab", 12, KEY)
    back = mf.parse(m.to_bytes())
    assert back == m and back.boards is None
    mf.verify(back, KEY)
    with pytest.raises(mf.ManifestError, match="signed with another key"):
        mf.verify(back, OTHER_KEY)


@pytest.mark.parametrize(
    "change, problem",
    [
        ({"seq": 8}, "signed with another key"),
        ({"sha256": "cd" * 32}, "signed with another key"),
        ({"boards": ["b1", "b2", "b3"]}, "signed with another key"),
        ({"check": {"x": [142, 201, 13, 7], "q": [57, -48, -127]}}, "signed with another key"),
        ({"sig": None}, "signed with another key"),
        ({"seq": True}, "bad seq"),
        ({"seq": 0}, "bad seq"),
        ({"seq": 2**30}, "bad seq"),
        ({"chunks": 4}, "bad chunks"),
        ({"group": "a/b"}, "bad group"),
        ({"boards": ["#"]}, "boards must be"),
        ({"sha256": "AB" * 32}, "bad sha256"),
        ({"name": "caf\u00e9"}, "bad name"),
        ({"v": 2}, "unsupported manifest version"),
        ({"check": {"x": [256], "q": [0]}}, "bad check.x"),
    ],
)
def test_judge_refuses_altered_manifests(change: dict, problem: str) -> None:
    obj = json.loads(mf.sign(VECTOR, KEY).to_bytes())
    obj.update(change)
    verdict = mf.judge(json.dumps(obj).encode(), KEY, "b1", 0, None)
    assert verdict.action == "refuse" and problem in verdict.reason


def test_judge_missing_field_and_garbage() -> None:
    obj = json.loads(mf.sign(VECTOR, KEY).to_bytes())
    del obj["size"]
    assert "no 'size'" in mf.judge(json.dumps(obj).encode(), KEY, "b1", 0, None).reason
    assert "not JSON" in mf.judge(b"\xff\x00", KEY, "b1", 0, None).reason
    assert "not a JSON object" in mf.judge(b"[1]", KEY, "b1", 0, None).reason


def test_judge_targets_replay_and_not_news() -> None:
    payload = mf.sign(VECTOR, KEY).to_bytes()
    assert mf.judge(payload, KEY, "b1", 6, None).action == "download"
    assert mf.judge(payload, KEY, "b3", 6, None).action == "ignore"  # not named
    assert mf.judge(payload, KEY, "b1", 7, "ab" * 32).action == "ignore"  # already serving it
    replayed = mf.judge(payload, KEY, "b1", 9, "cd" * 32)
    assert replayed.action == "refuse" and replayed.reason == "replayed manifest (seq 7 <= accepted 9)"
    assert mf.judge(payload, OTHER_KEY, "b1", 0, None).reason == mf.BAD_SIGNATURE


def test_check_chunk_reasons() -> None:
    assert mf.check_chunk(VECTOR, 7, 0, 512) is None
    assert mf.check_chunk(VECTOR, 7, 2, 1234 - 1024) is None
    assert "not the manifest's 7" in mf.check_chunk(VECTOR, 6, 0, 512)
    assert "out of range" in mf.check_chunk(VECTOR, 7, 3, 10)
    assert mf.check_chunk(VECTOR, 7, 1, 511) == "chunk 1 is 511 bytes, not 512"


def test_names_are_made_printable_ascii() -> None:
    assert mf.manifest_name("mod\u00e8le-\U0001f600") == "mod?le-?"
    assert len(mf.manifest_name("x" * 100)) == mf.MAX_NAME
    m, _ = mf.build(modelfile.to_bytes(build_zoo(seed=1)["unicode_names"]), "g", 1, KEY)
    assert m.name.isascii() and mf.parse(m.to_bytes()) == m


def test_build_refuses_a_corrupt_model(model_bytes: bytes) -> None:
    corrupt = bytearray(model_bytes)
    corrupt[40] ^= 0xFF
    with pytest.raises(modelfile.ModelFormatError):
        mf.build(bytes(corrupt), "lab", 1, KEY)


def test_topics() -> None:
    assert topics.chunk("g", 7, 3) == "edgenn/g/model/7/3"
    assert topics.parse_chunk("edgenn/g/model/7/3") == (7, 3)
    assert topics.parse_chunk("edgenn/g/b1/status") is None
    assert topics.board_of("edgenn/g/b1/status") == "b1" and topics.board_of("edgenn/g/manifest") is None
    assert topics.valid_name("b-1_x") and not topics.valid_name("a+b") and not topics.valid_name("x" * 33)
