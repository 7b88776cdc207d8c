"""The sensor front end on the host: the integer specification's bounds, the float form it tracks,
the .enn version 2 section (written, read, checked), the .npz, and `train --features`."""

from __future__ import annotations

import json
import struct
import zlib

import numpy as np
import pytest

from edgenn import cli, frontend, golden, modelfile, nn, quantize
from edgenn.data import Dataset
from edgenn.floatmodel import FloatModel


def columns(axes: int, window: int) -> list[str]:
    return [f"{'xyzwabcd'[a]}{t}" for a in range(axes) for t in range(window)]


def extreme_windows(axes: int, window: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    n = axes * window
    alternating = np.tile([32767, -32768], n // 2)
    return np.vstack(
        [
            rng.integers(-32768, 32768, (20, n)),
            np.full((1, n), 32767),
            np.full((1, n), -32768),
            np.zeros((1, n)),
            alternating,
            -alternating,
            np.tile([1, -1], n // 2),
            rng.integers(-2, 3, (3, n)),
            np.concatenate([np.full(n // 2, 32767), np.full(n - n // 2, -32768)]),
        ]
    ).astype(np.int64)


@pytest.mark.parametrize(("axes", "window"), [(1, 4), (3, 32), (3, 128), (4, 1024), (8, 512), (2, 100)])
def test_integer_front_end_stays_below_2_30_on_extreme_windows(axes, window):
    fe = frontend.make("spectral", axes, columns(axes, window))
    X = extreme_windows(axes, window, seed=window)
    feats = frontend.features_int(fe, X)  # raises AssertionError if an intermediate reaches 2**30
    assert feats.shape == (len(X), fe.n_features)
    assert np.abs(feats).max() < 2**20
    constant = frontend.features_int(fe, np.full((1, axes * window), 1234))[0]
    assert constant[0] == 1234 and not np.any(constant[1:5])  # mean, then std/min/max/mac all 0


def test_float_features_track_the_integer_ones():
    fe = frontend.make("spectral", 3, columns(3, 32))
    rng = np.random.default_rng(1)
    t = np.arange(32)
    X = np.round(3000 * np.sin(0.4 * t)[None, :].repeat(3, 0).reshape(1, -1) + rng.normal(0, 50, (40, 96)))
    ints, floats = frontend.features_int(fe, X), frontend.features_float(fe, X)
    scale = np.abs(floats).max(axis=0)
    # integers in the sensor's units: a few units of rounding (the FFT floors at every stage), plus 1%
    assert np.all(np.abs(ints - floats) <= 3.0 + 0.01 * scale)


def test_readings_are_rounded_and_saturated():
    got = frontend.raw_values(np.array([[0.5, -0.5, 1.49, 2.5, 40000, -40000, -32768.4, 32766.6]]))
    assert got.tolist() == [[1, 0, 1, 3, 32767, -32768, -32768, 32767]]
    with pytest.raises(ValueError, match="NaN and infinity"):
        frontend.raw_values(np.array([[1.0, np.nan]]))


@pytest.fixture(scope="module")
def trained() -> tuple[FloatModel, modelfile.QuantModel, np.ndarray]:
    rng = np.random.default_rng(2)
    n = 150
    y = np.arange(n) % 3
    t = np.arange(32)
    wave = np.sin(np.array([0.0, 0.3, 1.2])[y][:, None] * t + rng.uniform(0, 6, (n, 1)))
    X = np.round(2000 * rng.normal(size=(n, 3, 1)) * wave[:, None, :] + rng.normal(0, 30, (n, 3, 32)))
    X = X.reshape(n, -1)
    ds = Dataset("w", "w", X, y, columns(3, 32), "label", "classify", ["a", "b", "c"])
    fe = frontend.make("spectral", 3, ds.feature_names, n_bands=4)
    fm = nn.train_windows(ds, fe, nn.TrainConfig(hidden=(8,), epochs=20))
    qm, _ = quantize.quantize(fm, X)
    return fm, qm, X


def test_enn_version_2_round_trip_and_version_1_without_front_end(trained, tmp_path):
    fm, qm, X = trained
    data = modelfile.to_bytes(qm)
    assert struct.unpack_from("<H", data, 4)[0] == 2
    back = modelfile.from_bytes(data)
    assert back.frontend == qm.frontend and back.input_names == list(qm.frontend.columns)
    np.testing.assert_array_equal(golden.predict(back, X), golden.predict(qm, X))
    plain = modelfile.from_bytes(data)
    plain.frontend = None
    assert struct.unpack_from("<H", modelfile.to_bytes(plain), 4)[0] == 1
    fm.save(tmp_path / "m.npz")
    again = FloatModel.load(tmp_path / "m.npz")
    assert again.frontend == fm.frontend
    np.testing.assert_array_equal(again.predict(X), fm.predict(X))


def with_crc(body: bytes) -> bytes:
    data = bytearray(body)
    struct.pack_into("<I", data, 12, len(data) + 4)
    return bytes(data) + struct.pack("<I", zlib.crc32(data) & 0xFFFFFFFF)


def test_reader_checks_the_front_end(trained):
    _, qm, _ = trained
    body = modelfile.to_bytes(qm)[:-4]
    fe = qm.frontend
    names = sum(1 + len(c.encode()) for c in fe.columns)
    cos_at = len(body) - names - 2 * fe.fft_size
    twisted = bytearray(body)
    twisted[cos_at] ^= 1
    with pytest.raises(modelfile.ModelFormatError, match="twiddles differ"):
        modelfile.from_bytes(with_crc(bytes(twisted)))
    kind_at = cos_at - 2 * (fe.n_bands + 1) - 8
    bad_kind = bytearray(body)
    bad_kind[kind_at] = 7
    with pytest.raises(modelfile.ModelFormatError, match="unknown front end kind 7"):
        modelfile.from_bytes(with_crc(bytes(bad_kind)))
    floats = modelfile.from_bytes(with_crc(body))
    floats.in_scale = floats.in_scale * np.float32(1.0001)  # no longer dyadic
    with pytest.raises(modelfile.ModelFormatError, match="not fixed point"):
        modelfile.to_bytes(floats)


def test_train_cli_with_a_front_end(tmp_path, capsys):
    rng = np.random.default_rng(3)
    X = rng.integers(-500, 500, (60, 2 * 16))
    X[::2, :16] += (4000 * np.sin(np.arange(16))).astype(int)
    labels = np.where(np.arange(60) % 2 == 0, "wave", "still")
    path = tmp_path / "w.csv"
    header = ",".join(columns(2, 16)) + ",label"
    path.write_text(header + "\n" + "\n".join(",".join(map(str, r)) + f",{k}" for r, k in zip(X, labels)))
    train = ["train", str(path), "--label", "label", "--features", "stats", "-o", str(tmp_path / "w.npz")]
    code = cli.main([*train, "--axes", "2", "--json"])
    out = json.loads(capsys.readouterr().out)
    assert code == 0 and out["features"] == "stats 2x16 -> 15 features" and out["layers"][0] == 15
    code = cli.main([*train, "--axes", "3"])
    assert code == 2 and "do not split into 3 axes" in capsys.readouterr().err


def test_report_takes_raw_windows(trained, tmp_path, capsys):
    fm, qm, X = trained
    fm.save(tmp_path / "w.npz")
    modelfile.save(qm, tmp_path / "w.enn")
    header = ",".join(columns(3, 32)) + ",label"
    rows = [",".join(str(int(v)) for v in r) + "," + "abc"[k % 3] for k, r in enumerate(X[:60])]
    (tmp_path / "w.csv").write_text(header + "\n" + "\n".join(rows) + "\n")
    argv = ["report", str(tmp_path / "w.enn"), str(tmp_path / "w.csv"), "--float", str(tmp_path / "w.npz")]
    code = cli.main([*argv, "-o", str(tmp_path / "w.html")])
    assert code == 0, capsys.readouterr().err
    page = (tmp_path / "w.html").read_text()
    # the calibrated ranges are the front end's 44 features (compared with the raw window: a crash)
    assert "Feature ranges: seen in DATA vs calibrated" in page
