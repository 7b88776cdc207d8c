"""The .enn writer and reader: every field round-trips, every documented refusal has its own message."""

from __future__ import annotations

import struct
import zlib

import numpy as np
import pytest

from edgenn import modelfile as mf
from edgenn.errors import UserError
from edgenn.zoo import build_zoo

ZOO = build_zoo(seed=0)


def assert_models_equal(a: mf.QuantModel, b: mf.QuantModel) -> None:
    assert (a.task, a.name, a.feature_names, a.labels) == (b.task, b.name, b.feature_names, b.labels)
    for field in ("in_scale", "in_offset", "out_scale", "out_zero_point"):
        x, y = getattr(a, field), getattr(b, field)
        np.testing.assert_array_equal(np.asarray(x, np.float32), np.asarray(y, np.float32), err_msg=field)
    assert len(a.layers) == len(b.layers)
    for la, lb in zip(a.layers, b.layers):
        np.testing.assert_array_equal(la.weights, lb.weights)
        for field in ("bias", "mult", "shift"):
            np.testing.assert_array_equal(getattr(la, field), getattr(lb, field), err_msg=field)
        assert (la.activation, la.out_zero, la.lut) == (lb.activation, lb.out_zero, lb.lut)


def with_crc(body: bytes) -> bytes:
    """Replace the last 4 bytes with the CRC of everything before them."""
    return body[:-4] + struct.pack("<I", zlib.crc32(body[:-4]) & 0xFFFFFFFF)


def patched(data: bytes, offset: int, fmt: str, value) -> bytes:
    buf = bytearray(data)
    struct.pack_into(fmt, buf, offset, value)
    return with_crc(bytes(buf))


def unchecked_bytes(model: mf.QuantModel, monkeypatch: pytest.MonkeyPatch) -> bytes:
    """Serialize a model the writer would refuse, to test that the reader refuses it too."""
    with monkeypatch.context() as m:
        m.setattr(mf, "validate", lambda model: None)
        return mf.to_bytes(model)


@pytest.mark.parametrize("name", sorted(ZOO))
def test_every_field_round_trips(name: str) -> None:
    model = ZOO[name]
    data = mf.to_bytes(model)
    back = mf.from_bytes(data)
    assert_models_equal(model, back)
    assert mf.to_bytes(back) == data
    assert back.layers[0].weights.dtype == np.int8 and back.layers[0].bias.dtype == np.int64


def test_layout_of_header_and_first_fields() -> None:
    model = ZOO["regress_multi"]
    data = mf.to_bytes(model)
    magic, version, flags, n_layers, n_inputs, length, n_outputs, reserved = struct.unpack_from(
        "<4sHHHHIHH", data
    )
    assert (magic, version, flags, reserved) == (b"EDNN", 1, 1, 0)
    assert (n_layers, n_inputs, n_outputs, length) == (3, 10, 3, len(data))
    in_scale = np.frombuffer(data, "<f4", 10, 20)
    np.testing.assert_array_equal(in_scale, model.in_scale)
    assert struct.unpack_from("<I", data, len(data) - 4)[0] == zlib.crc32(data[:-4])
    # the first layer's W starts after the layer header; row-major by neuron
    tail = data[: -4 - 0]
    layer0 = model.layers[0]
    w_bytes = layer0.weights.astype(np.int8).tobytes()
    assert tail.find(w_bytes) > 0
    assert mf.from_bytes(mf.to_bytes(ZOO["relu_2"])).task == "classify"


def test_save_is_atomic_and_load_reads_back(tmp_path) -> None:
    path = tmp_path / "m.enn"
    size = mf.save(ZOO["tanh_3"], path)
    assert size == path.stat().st_size
    assert_models_equal(mf.load(path), ZOO["tanh_3"])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.enn"]  # no temp file left behind


def test_save_of_an_invalid_model_leaves_no_file(tmp_path) -> None:
    bad = build_zoo(0)["relu_1"]
    bad.layers[0].mult[0] = 0
    with pytest.raises(mf.ModelFormatError, match="mult"):
        mf.save(bad, tmp_path / "bad.enn")
    assert list(tmp_path.iterdir()) == []


def test_load_reports_missing_and_corrupt_files_as_user_errors(tmp_path) -> None:
    with pytest.raises(UserError, match="no such file"):
        mf.load(tmp_path / "missing.enn")
    (tmp_path / "junk.enn").write_bytes(b"hello world, not a model")
    with pytest.raises(UserError, match="bad magic"):
        mf.load(tmp_path / "junk.enn")
    with pytest.raises(UserError, match="directory"):
        mf.load(tmp_path)


VALID = mf.to_bytes(ZOO["sigmoid_2"])


def test_empty_file() -> None:
    with pytest.raises(mf.ModelFormatError, match="^file is empty$"):
        mf.from_bytes(b"")


def test_wrong_magic() -> None:
    with pytest.raises(mf.ModelFormatError, match=r"^not an edgenn model \(bad magic\)$"):
        mf.from_bytes(b"ENNX" + VALID[4:])
    with pytest.raises(mf.ModelFormatError, match="bad magic"):
        mf.from_bytes(b"\x89PNG")


def test_unknown_version() -> None:
    data = bytearray(VALID)
    struct.pack_into("<H", data, 4, 4)
    expected = r"^format version 4 not supported \(reader knows 1, 2 and 3\)$"
    with pytest.raises(mf.ModelFormatError, match=expected):
        mf.from_bytes(bytes(data))


def test_every_truncation_is_reported_as_such() -> None:
    messages = set()
    for n in range(len(VALID)):
        with pytest.raises(mf.ModelFormatError) as info:
            mf.from_bytes(VALID[:n])
        msg = str(info.value)
        if n == 0:
            assert msg == "file is empty"
        elif n < 20:
            assert msg == "truncated header"
        else:
            assert msg == f"truncated: header says {len(VALID)} bytes, file has {n}"
        messages.add(msg.split(":")[0])
    assert messages == {"file is empty", "truncated header", "truncated"}


def test_trailing_bytes() -> None:
    with pytest.raises(mf.ModelFormatError, match="^trailing bytes: "):
        mf.from_bytes(VALID + b"\x00")


def test_crc_mismatch_for_any_flipped_body_bit() -> None:
    for offset in (20, 21, len(VALID) // 2, len(VALID) - 5, len(VALID) - 1):
        data = bytearray(VALID)
        data[offset] ^= 0x10
        with pytest.raises(mf.ModelFormatError, match="^CRC mismatch: file is corrupted$"):
            mf.from_bytes(bytes(data))


def test_distinct_messages() -> None:
    broken_crc = bytearray(VALID)
    broken_crc[-1] ^= 1
    cases = [b"", b"XXXX" + VALID[4:], VALID[:10], VALID[:-1], VALID + b"!", bytes(broken_crc)]
    version = bytearray(VALID)
    version[4] = 9
    cases.append(bytes(version))
    heads = []
    for data in cases:
        with pytest.raises(mf.ModelFormatError) as info:
            mf.from_bytes(data)
        heads.append(str(info.value).split(":")[0].split(" (")[0])
    assert len(set(heads)) == len(heads), heads


# Offsets inside VALID (sigmoid_2: 13 inputs, hidden 32 sigmoid, 16 sigmoid, 3 outputs)
def _first_layer_offset(model: mf.QuantModel) -> int:
    strings = [model.name, *model.feature_names, *model.labels]
    return 20 + 8 * model.n_inputs + sum(1 + len(s.encode()) for s in strings) + 8 * model.n_outputs


L0 = _first_layer_offset(ZOO["sigmoid_2"])


@pytest.mark.parametrize(
    ("offset", "fmt", "value", "fragment"),
    [
        (6, "<H", 2, "unknown flag bits"),
        (8, "<H", 0, "n_layers is 0"),
        (8, "<H", 17, "n_layers is 17"),
        (10, "<H", 0, "n_inputs is 0"),
        (10, "<H", 5000, "n_inputs is 5000"),
        (16, "<H", 0, "n_outputs is 0"),
        (16, "<H", 4097, "n_outputs is 4097"),
        (18, "<H", 1, "reserved header field"),
        (20, "<f", float("nan"), "in_scale is not finite"),
        (L0, "<H", 12, "n_in 12 differs"),
        (L0 + 2, "<H", 0, "layer 0 n_out is 0"),
        (L0 + 4, "<B", 0, "layer 0: identity"),
        (L0 + 4, "<B", 7, "unknown activation code 7"),
        (L0 + 5, "<B", 1, "reserved byte"),
        (L0 + 6, "<i", 40000, "out_zero outside"),
        (L0 + 10 + 32 * 13 + 4 * 32, "<H", 0, "mult outside 1..32767"),
        (L0 + 10 + 32 * 13 + 4 * 32, "<H", 40000, "mult outside"),
        (L0 + 10 + 32 * 13 + 6 * 32, "<B", 14, "shift outside 15..29"),
        (L0 + 10 + 32 * 13 + 6 * 32, "<B", 30, "shift outside"),
        (L0 + 10 + 32 * 13, "<i", 2**29, "layer 0 neuron 0 fails the overflow proof"),
    ],
)
def test_malformed_fields_with_a_valid_crc(offset: int, fmt: str, value, fragment: str) -> None:
    with pytest.raises(mf.ModelFormatError, match="^malformed: ") as info:
        mf.from_bytes(patched(VALID, offset, fmt, value))
    assert fragment in str(info.value)


def test_last_layer_must_be_identity_and_only_it(monkeypatch) -> None:
    model = build_zoo(0)["relu_1"]
    model.layers[-1].activation = "relu"
    with pytest.raises(mf.ModelFormatError, match="last layer must be identity"):
        mf.to_bytes(model)
    with pytest.raises(mf.ModelFormatError, match="only the last layer is identity"):
        mf.from_bytes(unchecked_bytes(model, monkeypatch))


def test_reader_refuses_what_the_writer_refuses(monkeypatch) -> None:
    def broken(change) -> mf.QuantModel:
        model = build_zoo(0)["tanh_1"]
        change(model)
        return model

    def bias_past_the_proof(m: mf.QuantModel) -> None:
        m.layers[0].bias[0] = mf.max_admissible_bias(m.layers[0].weights)[0] + 1

    changes = {
        "overflow proof": bias_past_the_proof,
        "out_scale must be > 0": lambda m: m.out_scale.__setitem__(0, 0.0),
        "out_scale values differ": lambda m: m.out_scale.__setitem__(0, 2 * m.out_scale[1]),
        "out_zero_point is not finite": lambda m: m.out_zero_point.__setitem__(1, np.inf),
        "in_offset is not finite": lambda m: m.in_offset.__setitem__(0, np.nan),
    }
    for fragment, change in changes.items():
        model = broken(change)
        with pytest.raises(mf.ModelFormatError, match=fragment):
            mf.to_bytes(model)
        with pytest.raises(mf.ModelFormatError, match=fragment):
            mf.from_bytes(unchecked_bytes(model, monkeypatch))


def test_the_largest_admissible_bias_is_accepted() -> None:
    model = build_zoo(0)["relu_1"]
    layer = model.layers[0]
    layer.bias[:] = -mf.max_admissible_bias(layer.weights)
    assert int(mf.overflow_bound(layer.weights, layer.bias).max()) == 2**29 - 1
    assert_models_equal(mf.from_bytes(mf.to_bytes(model)), model)


def test_strings_must_be_utf8_and_short() -> None:
    model = build_zoo(0)["relu_1"]
    model.labels[0] = "y" * 256
    with pytest.raises(mf.ModelFormatError, match="256 bytes long"):
        mf.to_bytes(model)
    data = bytearray(VALID)
    name_at = 20 + 8 * 13  # the model name's length byte
    data[name_at + 1] = 0xFF  # invalid UTF-8 start byte (names are non-empty in the zoo)
    assert data[name_at] > 0
    with pytest.raises(mf.ModelFormatError, match="not valid UTF-8"):
        mf.from_bytes(with_crc(bytes(data)))


def test_bytes_left_over_after_the_last_layer() -> None:
    data = bytearray(VALID[:-4] + b"\0\0" + VALID[-4:])
    struct.pack_into("<I", data, 12, len(data))
    with pytest.raises(mf.ModelFormatError, match="2 unexpected bytes after the last layer"):
        mf.from_bytes(with_crc(bytes(data)))


def test_section_running_past_the_crc() -> None:
    data = bytearray(VALID[:-40] + VALID[-4:])
    struct.pack_into("<I", data, 12, len(data))
    with pytest.raises(mf.ModelFormatError, match="runs past the end"):
        mf.from_bytes(with_crc(bytes(data)))


def test_describe_and_sizes() -> None:
    model = ZOO["relu_2"]
    assert mf.describe(model) == "classify 13-32(relu)-16(relu)-3"
    assert mf.float32_bytes(model) == 4 * (13 * 32 + 32 + 32 * 16 + 16 + 16 * 3 + 3)
