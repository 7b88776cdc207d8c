"""Property-based fuzzing of the .enn reader: whatever the bytes, it returns a valid model or raises
ModelFormatError with one of the documented messages, never any other exception."""

from __future__ import annotations

import struct
import zlib

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edgenn import modelfile as mf
from edgenn.zoo import build_zoo

SAMPLES = [mf.to_bytes(m) for name, m in sorted(build_zoo(seed=3).items()) if "256" not in name]
DOCUMENTED_PREFIXES = (
    "file is empty",
    "not an edgenn model (bad magic)",
    "truncated header",
    "format version ",
    "truncated: ",
    "trailing bytes: ",
    "CRC mismatch: file is corrupted",
    "malformed: ",
)
FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def read_or_documented_error(data: bytes) -> mf.QuantModel | None:
    try:
        model = mf.from_bytes(data)
    except mf.ModelFormatError as exc:
        assert str(exc).startswith(DOCUMENTED_PREFIXES), str(exc)
        return None
    assert mf.to_bytes(model) == data  # whatever is accepted is a valid model that re-serializes exactly
    return model


def fix_length_and_crc(buf: bytearray) -> bytes:
    struct.pack_into("<I", buf, 12, len(buf))
    struct.pack_into("<I", buf, len(buf) - 4, zlib.crc32(bytes(buf[:-4])) & 0xFFFFFFFF)
    return bytes(buf)


@FUZZ
@given(st.binary(max_size=600))
def test_random_bytes(data: bytes) -> None:
    read_or_documented_error(data)


@FUZZ
@given(st.binary(max_size=200))
def test_random_bytes_after_a_valid_header(tail: bytes) -> None:
    read_or_documented_error(SAMPLES[0][:20] + tail)
    read_or_documented_error(fix_length_and_crc(bytearray(SAMPLES[0][:20] + tail + b"\0\0\0\0")))


@FUZZ
@given(st.sampled_from(SAMPLES), st.data())
def test_truncations(sample: bytes, data) -> None:
    n = data.draw(st.integers(0, len(sample) - 1))
    assert read_or_documented_error(sample[:n]) is None


@FUZZ
@given(st.sampled_from(SAMPLES), st.data())
def test_flipped_bits(sample: bytes, data) -> None:
    buf = bytearray(sample)
    for bit in data.draw(st.lists(st.integers(0, 8 * len(buf) - 1), min_size=1, max_size=3, unique=True)):
        buf[bit // 8] ^= 1 << (bit % 8)
    assert read_or_documented_error(bytes(buf)) is None  # CRC-32 detects any 3 flipped bits below 91607 bits


@FUZZ
@given(st.sampled_from(SAMPLES), st.data())
def test_random_field_values_with_a_valid_crc(sample: bytes, data) -> None:
    """Overwrite random spots (any field: counts, strings, activations, mult, shift...) with random
    bytes, then repair the length and CRC so the reader has to check the structure itself."""
    buf = bytearray(sample)
    for _ in range(data.draw(st.integers(1, 4))):
        offset = data.draw(st.integers(6, len(buf) - 5))  # anything after magic+version, before the CRC
        chunk = data.draw(st.binary(min_size=1, max_size=4))
        buf[offset : offset + len(chunk)] = chunk[: len(buf) - 4 - offset]
    read_or_documented_error(fix_length_and_crc(buf))


@FUZZ
@given(st.sampled_from(SAMPLES), st.data())
def test_inserted_or_deleted_bytes_with_a_valid_crc(sample: bytes, data) -> None:
    buf = bytearray(sample)
    offset = data.draw(st.integers(20, len(buf) - 4))
    if data.draw(st.booleans()):
        buf[offset:offset] = data.draw(st.binary(min_size=1, max_size=16))
    else:
        del buf[offset : min(offset + data.draw(st.integers(1, 16)), len(buf) - 4)]
    read_or_documented_error(fix_length_and_crc(buf))
