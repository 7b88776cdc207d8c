"""Anomaly models on the board: the integer score from the device runtime, run inside real MicroPython
(unix port: viper and portable; 32-bit WebAssembly: portable, 31-bit small ints like an ESP32), equals
the golden score on every row, raw rows and input codes, with and without a sensor front end (and its
Window), every call under heap_lock; predict is the flag score > threshold. The score's bytecode frame
stays within the 11 words MicroPython keeps on the C stack."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from mpy_helpers import FIRMWARE, WasmPort, need_wasm

from edgenn import anomaly, data, frontend, golden, modelfile
from edgenn.quantize import quantize

AXES, WINDOW = 3, 32
MAX_SCORE = 65025 * 16512  # the kernel alone at the largest sum(c + e) the proof admits


def vibration(n: int, seed: int, fault: bool) -> np.ndarray:
    """3-axis windows of a machine at varying speed; a fault adds a fast tone and impacts."""
    rng = np.random.default_rng(seed)
    t = np.arange(WINDOW)
    f = rng.uniform(0.25, 0.35, (n, 1, 1))
    x = rng.uniform(2000, 3000, (n, AXES, 1)) * np.sin(f * t + rng.uniform(0, 6.3, (n, AXES, 1)))
    if fault:
        x += rng.uniform(1500, 3000, (n, AXES, 1)) * np.sin(2.4 * t + rng.uniform(0, 6.3, (n, AXES, 1)))
    x += rng.normal(0, 80, x.shape)
    return np.round(x).reshape(n, -1)


def write_model(directory: Path, name: str, qm, raw: np.ndarray, extra_codes: np.ndarray) -> None:
    modelfile.save(qm, directory / f"{name}.enn")
    codes = np.concatenate([golden.quantize_input(qm, raw), extra_codes.astype(np.uint8)])
    (directory / f"{name}.codes.bin").write_bytes(codes.tobytes())
    s_codes = anomaly.golden_scores_q(qm, codes)
    s_raw = anomaly.golden_scores(qm, raw)
    s_raw = np.concatenate([s_raw, np.zeros(len(codes) - len(raw), np.int64)])
    (directory / f"{name}.golden.txt").write_text("".join(f"{a},{b}\n" for a, b in zip(s_codes, s_raw)))
    if qm.frontend is None:
        (directory / f"{name}.raw.bin").write_bytes(raw.astype("<f4").tobytes())
    else:
        (directory / f"{name}.raw.txt").write_text("".join(",".join(map(str, r)) + "\n" for r in raw.astype(int)))


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> Path:
    directory = tmp_path_factory.mktemp("anomaly")
    rng = np.random.default_rng(5)
    for name, dataset, activation in (("wine_tanh", "wine", "tanh"), ("iris_relu", "iris", "relu")):
        ds = data.load_dataset(dataset)
        x = ds.X.astype(np.float32).astype(np.float64)  # the values a float32 array holds on the board
        fm = anomaly.train_anomaly(x[ds.y == 0], activation=activation, seed=0)
        qm, _ = quantize(fm, x[ds.y == 0])
        n = qm.n_inputs
        extra = np.concatenate([np.zeros((1, n)), np.full((1, n), 255), rng.integers(0, 256, (1000, n))])
        write_model(directory, name, qm, x, extra)
    fe = frontend.make("stats", AXES, [f"{a}{i}" for a in "xyz" for i in range(WINDOW)])
    normal = vibration(150, 1, fault=False)
    fm = anomaly.train_anomaly_windows(normal, fe, seed=0)
    qm, _ = quantize(fm, normal)
    rows = np.concatenate([vibration(20, 2, fault=False), vibration(20, 3, fault=True)])
    n = qm.n_inputs
    write_model(directory, "vib_stats", qm, rows, rng.integers(0, 256, (1000, n)))
    return directory


def check(result, name: str, kernel: str) -> dict:
    assert result.returncode == 0, result.stderr
    (report,) = result.json_lines()
    assert (report["model"], report["kernel"], report["task"]) == (name, kernel, "anomaly")
    assert report["rows"] > 100
    assert report["mismatches"] == 0, report["first"]
    assert report["flag_mismatches"] == 0
    assert report["max_score"] == MAX_SCORE
    return report


NAMES = ("wine_tanh", "iris_relu", "vib_stats")


@pytest.mark.parametrize("kernel", ["viper", "portable"])
@pytest.mark.parametrize("name", NAMES)
def test_unix_port_scores_equal_golden(models, unix_py, name, kernel):
    check(unix_py.run("check_anomaly.py", models, name, kernel), name, kernel)


@pytest.mark.parametrize("name", NAMES)
def test_unix_mpy_scores_equal_golden(models, unix_mpy, name):
    check(unix_mpy.run("check_anomaly.py", models, name, "viper"), name, "viper")


@pytest.mark.slow
@pytest.mark.parametrize("name", NAMES)
def test_wasm_32_bit_scores_equal_golden(models, runtime_py, name):
    need_wasm()
    port = WasmPort(runtime_py, {models: "/an"})
    check(port.run("check_anomaly.py", "/an", name, "portable"), name, "portable")


def test_a_wrong_golden_score_is_reported(models, unix_py, tmp_path):
    """The check can fail: one golden score off by one is one mismatch."""
    for path in models.glob("iris_relu.*"):
        (tmp_path / path.name).write_bytes(path.read_bytes())
    lines = (tmp_path / "iris_relu.golden.txt").read_text().splitlines()
    a, b = lines[7].split(",")
    lines[7] = f"{int(a) + 1},{b}"
    (tmp_path / "iris_relu.golden.txt").write_text("\n".join(lines) + "\n")
    result = unix_py.run("check_anomaly.py", tmp_path, "iris_relu", "viper")
    (report,) = result.json_lines()
    assert report["mismatches"] == 1 and report["first"][:2] == ["codes", 7]


# ---------------------------------------------------------------------------------------------------
# Frame sizes: a bytecode function whose state exceeds 11 words gets its frame from the heap per call


# ---------------------------------------------------------------------------------------------------
# The score's machine code as the ESP32 (xtensawin) and the C3/C6 (rv32imc) run it


def stress_model(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Random (c, e, m) whose sum(c + e) is the largest the proof admits: 16512 = 65025 * ... < 2**30."""
    share = rng.random(2 * n) + 0.01
    ce = np.floor(share / share.sum() * 16512).astype(np.int64)
    ce[0] += 16512 - ce.sum()
    return np.stack([ce[:n], ce[n:], rng.integers(0, 256, n)], axis=1), 16512


@pytest.mark.parametrize(
    "arch", [pytest.param(a, marks=pytest.mark.slow) if a == "rv32imc" else a for a in ("xtensawin", "rv32imc")]
)
def test_score_machine_code_equals_golden(models, arch):
    from test_machinecode import need_emulator

    from edgenn.machinecode import kernels
    from edgenn.machinecode.memory import Call

    need_emulator(arch)
    mpy_bytes = kernels.compile_source(FIRMWARE / "edgenn_viper.py", arch)
    buffers: list[bytes] = []
    calls: list[Call] = []
    want: list[int] = []

    def add(u: np.ndarray, r: np.ndarray, w: np.ndarray) -> None:
        base = len(buffers)
        buffers.extend([u.astype(np.uint8).tobytes(), r.astype(np.int8).tobytes(), w.astype("<u2").tobytes()])
        calls.append(Call("score", [base, base + 1, base + 2], ints=(len(u),)))
        d_r = u.astype(np.int64) - (r.astype(np.int64) + 128)
        d_m = u.astype(np.int64) - w[:, 2]
        want.append(int(np.sum(w[:, 0] * d_r**2 + w[:, 1] * d_m**2)))

    for name in NAMES:
        qm = modelfile.load(models / f"{name}.enn")
        codes = np.frombuffer((models / f"{name}.codes.bin").read_bytes(), np.uint8).reshape(-1, qm.n_inputs)
        codes = codes[:: max(1, len(codes) // 60)]
        w = np.stack([qm.score_weights, qm.deviation_weights, qm.score_center], axis=1)
        for u, r in zip(codes, golden.forward_q(qm, codes)):
            add(u, r, w)
        assert anomaly.golden_scores_q(qm, codes).tolist() == want[-len(codes) :]
    rng = np.random.default_rng(11)
    for n in (1, 7, 64):
        w, _ = stress_model(rng, n)
        add(np.zeros(n), np.full(n, 127), np.column_stack([w[:, :2], np.full(n, 255)]))  # the maximum
        for _ in range(10):
            add(rng.integers(0, 256, n), rng.integers(-128, 128, n), w)
    result = kernels.run_calls(arch, mpy_bytes, ["score"], buffers, calls, count=False)
    assert result.returns == want
    assert MAX_SCORE in want and max(want) < 2**30


# ---------------------------------------------------------------------------------------------------
# Damaged anomaly sections: the host reader and the board both refuse them, with "malformed: ..."


def damaged_files(qm: modelfile.QuantModel) -> dict[str, tuple[bytes, str]]:
    import struct
    import zlib

    good = modelfile.to_bytes(qm)
    n = qm.n_inputs
    at = len(good) - 4 - 6 * n - 4  # the threshold; the (c, e, m) triples follow

    def fixed(data: bytes | bytearray) -> bytes:
        data = bytearray(data)
        struct.pack_into("<I", data, 12, len(data))
        return bytes(data[:-4]) + struct.pack("<I", zlib.crc32(bytes(data[:-4])) & 0xFFFFFFFF)

    def patch(offset: int, fmt: str, value: int) -> bytes:
        data = bytearray(good)
        struct.pack_into(fmt, data, offset, value)
        return fixed(data)

    overflow = bytearray(good)
    for d in range(n):
        struct.pack_into("<HH", overflow, at + 4 + 6 * d, 0xFFFF, 0xFFFF)
    return {
        "good.enn": (good, ""),
        "threshold.enn": (patch(at, "<i", 2**30), "malformed: anomaly threshold"),
        "center.enn": (patch(at + 4 + 4, "<H", 256), "malformed: anomaly score center"),
        "overflow.enn": (fixed(overflow), "malformed: anomaly score fails the overflow proof"),
        "both.enn": (patch(6, "<H", modelfile.FLAG_ANOMALY | modelfile.FLAG_REGRESS), "malformed: flags say both"),
        "v1flag.enn": (patch(4, "<H", 1), "malformed: unknown flag bits 0x0002"),
        "short.enn": (fixed(good[: at + 6] + good[-4:]), "malformed: anomaly score weights runs past the end"),
    }


def test_damaged_anomaly_sections_are_refused_by_host_and_board(models, unix_py, tmp_path):
    qm = modelfile.load(models / "iris_relu.enn")
    cases = damaged_files(qm)
    for name, (data, message) in cases.items():
        (tmp_path / name).write_bytes(data)
        if message:
            with pytest.raises(modelfile.ModelFormatError, match=message.replace("(", r"\(")):
                modelfile.from_bytes(data)
        else:
            modelfile.from_bytes(data)
    (tmp_path / "job.txt").write_text("\n".join(cases))
    result = unix_py.run("check_errors.py", tmp_path, tmp_path / "job.txt")
    assert result.returncode == 0, result.stderr
    loads = {r["case"][5:]: r for r in result.json_lines() if r.get("case", "").startswith("load ")}
    for name, (_, message) in cases.items():
        if message:
            assert loads[name]["error"] == "ValueError" and loads[name]["message"].startswith(message), loads[name]
        else:
            assert loads[name]["error"] is None
