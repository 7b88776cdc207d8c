"""The device runtime's API, bad inputs and memory, run inside real MicroPython (unix port and 32-bit
wasm): loader errors match the host reader's messages, wrong feature counts and NaN/inf are
ValueErrors that leave the interpreter running, quantize_input/predict/forward agree with the golden
model, and loading stays within 1.25 x file size + 8 KB of heap."""

from __future__ import annotations

import struct
import subprocess
import zlib
from pathlib import Path

import numpy as np
import pytest
from mpy_helpers import FIRMWARE, MPY_CROSS, RUNTIME_FILES, WasmPort, compile_runtime, need_wasm

from edgenn import golden, modelfile, zoo

HEADER_SIZE = 20


def with_crc(body: bytes) -> bytes:
    """Fix the length field and the CRC after an edit, so only the intended check can fail."""
    data = bytearray(body)
    struct.pack_into("<I", data, 12, len(data) + 4)
    return bytes(data) + struct.pack("<I", zlib.crc32(data) & 0xFFFFFFFF)


def first_layer_offset(model: modelfile.QuantModel) -> int:
    strings = [model.name, *model.feature_names, *model.labels]
    return (HEADER_SIZE + 8 * model.n_inputs + sum(1 + len(s.encode()) for s in strings)
            + 8 * model.n_outputs)


def damaged_files(model: modelfile.QuantModel) -> dict[str, bytes]:
    """name -> bytes: one file per reader error the format lists, each with a single fault."""
    good = modelfile.to_bytes(model)
    body = good[:-4]
    layer = first_layer_offset(model)
    l0 = model.layers[0]
    w_end = layer + 10 + l0.n_out * l0.n_in
    mult_at = w_end + 4 * l0.n_out
    shift_at = mult_at + 2 * l0.n_out

    def edit(offset: int, fmt: str, value: float) -> bytes:
        data = bytearray(body)
        struct.pack_into(fmt, data, offset, value)
        return with_crc(bytes(data))

    flipped = bytearray(good)
    flipped[len(good) // 2] ^= 0x10
    return {
        "good.enn": good,
        "empty.enn": b"",
        "bad_magic.enn": b"ENNX" + good[4:],
        "not_a_model.enn": b"# a python file\n" * 4,
        "short_magic.enn": b"EDN",
        "truncated_header.enn": good[:HEADER_SIZE - 1],
        "version_3.enn": good[:4] + struct.pack("<H", 3) + good[6:],
        "version_2_without_front_end.enn": with_crc(body[:4] + struct.pack("<H", 2) + body[6:]),
        "truncated.enn": good[: len(good) - 37],
        "trailing.enn": good + b"\0\0",
        "corrupt.enn": bytes(flipped),
        "bad_crc.enn": good[:-4] + bytes(4),
        "flags.enn": edit(6, "<H", 0x0004),
        "reserved.enn": edit(18, "<H", 1),
        "no_layers.enn": edit(8, "<H", 0),
        "hidden_identity.enn": edit(layer + 4, "B", 0),
        "bad_activation.enn": edit(layer + 4, "B", 9),
        "out_zero.enn": edit(layer + 6, "<i", 40000),
        "mult_0.enn": edit(mult_at, "<H", 0),
        "mult_big.enn": edit(mult_at, "<H", 40000),
        "shift_14.enn": edit(shift_at, "B", 14),
        "shift_30.enn": edit(shift_at, "B", 30),
        "overflow_proof.enn": edit(w_end, "<i", 2**29 - 1),
        "overflow_bias_min.enn": edit(w_end, "<i", -(2**31)),
        "n_in_mismatch.enn": edit(layer, "<H", model.n_inputs + 1),
        "leftover.enn": with_crc(body + b"\0"),
        # issue 19 item 1: every scale validated at load (a valid CRC is no proof of a sane model)
        **{
            f"scale_{field}_{name}.enn": edit(at, "<f", value)
            for field, at, values in (
                ("in_scale", HEADER_SIZE, ("nan", "inf", "-inf", "0", "-1.5")),
                ("in_offset", HEADER_SIZE + 4 * model.n_inputs, ("nan", "inf")),
                ("out_scale", layer - 8 * model.n_outputs, ("nan", "-0.5", "0")),
                ("out_zero_point", layer - 4 * model.n_outputs, ("nan",)),
            )
            for name, value in ((v, float(v)) for v in values)
        },
        "past_end.enn": with_crc(body[:-3]),
    }


def host_message(data: bytes) -> str | None:
    try:
        modelfile.from_bytes(data)
    except modelfile.ModelFormatError as exc:
        return str(exc)
    return None


@pytest.fixture(scope="module")
def damaged_dir(tmp_path_factory) -> Path:
    directory = tmp_path_factory.mktemp("damaged")
    model = zoo.build_zoo(0)["relu_2"]
    files = damaged_files(model)
    for name, data in files.items():
        (directory / name).write_bytes(data)
    (directory / "job.txt").write_text("\n".join(files) + "\n")
    return directory


def check_errors(result, directory: Path) -> None:
    assert result.returncode == 0, result.stderr
    lines = result.json_lines()
    assert lines[-1] == {"alive": True}
    cases = {line["case"]: line for line in lines if "case" in line}
    for path in sorted(directory.glob("*.enn")):
        got = cases[f"load {path.name}"]
        expected = host_message(path.read_bytes())
        if expected is None:
            assert got["error"] is None, (path.name, got)
            continue
        assert got["error"] == "ValueError", (path.name, got)
        if expected.startswith("malformed:"):
            # the board words the detail its own way; the category is the contract
            assert got["message"].startswith("malformed: "), (path.name, got, expected)
        else:
            assert got["message"] == expected, (path.name, got)
    for case, line in cases.items():
        if case.startswith("load ") or case.startswith("good predict"):
            continue
        assert line["error"] == "ValueError" and line["message"], (case, line)
    scales = [case for case in cases if case.startswith("load scale_")]
    assert len(scales) == 11
    for case in scales:  # the message names the field: in_scale[0] is nan: must be finite
        field = case[len("load scale_") :].rsplit("_", 1)[0]
        assert f"{field}[0] is " in cases[case]["message"], (case, cases[case])
    assert cases["good predict"]["error"] is None
    assert cases["good predict after errors"]["error"] is None
    assert "NaN and infinity" in cases["quantize_input nan"]["message"]
    assert "expected 13 features, got 12" in cases["predict too few"]["message"]


def test_every_damaged_file_is_a_clear_value_error_unix(unix_py, damaged_dir):
    result = unix_py.run("check_errors.py", damaged_dir, damaged_dir / "job.txt")
    check_errors(result, damaged_dir)
    kernels = next(line for line in result.json_lines() if "kernels" in line)
    assert kernels == {"kernels": ["viper", "portable"], "default": "viper"}


def test_every_damaged_file_is_a_clear_value_error_wasm(runtime_py, damaged_dir):
    need_wasm()
    port = WasmPort(runtime_py, {damaged_dir: "/bad"})
    result = port.run("check_errors.py", "/bad", "/bad/job.txt")
    check_errors(result, damaged_dir)
    kernels = next(line for line in result.json_lines() if "kernels" in line)
    assert kernels == {"kernels": ["portable"], "default": "portable"}  # no viper in the wasm build


def test_every_damaged_file_has_a_distinct_fault(damaged_dir):
    """The fixture itself: every damaged file is rejected by the host reader, the good one is not."""
    for path in damaged_dir.glob("*.enn"):
        assert (host_message(path.read_bytes()) is None) == (path.name == "good.enn"), path.name


def test_loading_peak_heap_is_within_budget(runtime_mpy_x64, zoo_dir, zoo_manifest):
    from mpy_helpers import UnixPort, need_micropython

    need_micropython()
    names = [e["file"] for e in zoo_manifest["models"]]
    (zoo_dir / "memory-job.txt").write_text("\n".join(names) + "\n")
    result = UnixPort(runtime_mpy_x64).run("check_memory.py", zoo_dir, zoo_dir / "memory-job.txt")
    assert result.returncode == 0, result.stderr
    reports = result.json_lines()
    assert len(reports) == len(names)
    over = [(r["model"], r["bytes"], r["load_peak"]) for r in reports
            if r["load_peak"] > 1.25 * r["bytes"] + 8192]
    assert not over, f"peak heap while loading above 1.25 x file + 8 KB: {over}"
    biggest = max(reports, key=lambda r: r["bytes"])
    assert biggest["load_peak"] >= biggest["bytes"]  # the counter sees the weights: the check is real


def api_job(directory: Path, names: list[str], rows: int = 200) -> Path:
    rng = np.random.default_rng(7)
    models = zoo.build_zoo(0)
    lines = []
    for name in names:
        model = models[name]
        modelfile.save(model, directory / f"{name}.enn")
        # features whose codes cover 0..255 and the clamps: invert the input scaling of random codes
        codes = rng.uniform(-40, 300, size=(rows, model.n_inputs))
        x = (codes - model.in_offset.astype(np.float64)) / model.in_scale.astype(np.float64)
        x[: model.n_inputs, :] = np.round(x[: model.n_inputs, :])  # a few integer-valued rows
        (directory / f"{name}.rows.bin").write_bytes(x.astype("<f8").tobytes())
        lines.append(f"{name}.enn {name}.rows.bin")
    (directory / "api-job.txt").write_text("\n".join(lines) + "\n")
    return directory / "api-job.txt"


API_MODELS = ["relu_2", "regress_multi", "tanh_2", "unicode_names"]


def check_api(result, directory: Path) -> None:
    assert result.returncode == 0, result.stderr
    reports = {r["model"]: r for r in result.json_lines()}
    models = zoo.build_zoo(0)
    assert set(reports) == {f"{n}.enn" for n in API_MODELS}
    for name in API_MODELS:
        model, report = models[name], reports[f"{name}.enn"]
        raw = (directory / f"{name}.rows.bin").read_bytes()
        x = np.frombuffer(raw, dtype="<f8").reshape(-1, model.n_inputs)
        codes = np.frombuffer(bytes.fromhex(report["codes"]), dtype=np.uint8).reshape(x.shape)
        np.testing.assert_array_equal(codes, golden.quantize_input(model, x))
        assert (report["name"], report["task"], report["labels"]) == (model.name, model.task, model.labels)
        assert (report["n_inputs"], report["n_outputs"]) == (model.n_inputs, model.n_outputs)
        q = golden.forward_q(model, codes)
        if model.task == "classify":
            np.testing.assert_array_equal(report["predict"], golden.predict(model, x))
            np.testing.assert_array_equal(np.array(report["forward"]), q)
        else:
            real = golden.dequantize(model, q)
            np.testing.assert_allclose(np.array(report["forward"]), real, rtol=1e-6, atol=1e-4)
            np.testing.assert_allclose(report["predict"], real[:, 0], rtol=1e-6, atol=1e-4)
        assert report["out_is_output_buffer"] and report["xq_is_input_buffer"]


def test_quantize_predict_forward_match_golden_unix(unix_py, tmp_path):
    job = api_job(tmp_path, API_MODELS)
    result = unix_py.run("check_api.py", tmp_path, job)
    check_api(result, tmp_path)
    for report in result.json_lines():
        assert report["alloc_forward_q"] == 0
        assert report["kernel"] == "viper"


def test_quantize_predict_forward_match_golden_wasm(runtime_py, tmp_path):
    need_wasm()
    job = api_job(tmp_path, API_MODELS)
    result = WasmPort(runtime_py, {tmp_path: "/api"}).run("check_api.py", "/api", "/api/api-job.txt")
    check_api(result, tmp_path)
    assert job.exists()


@pytest.mark.parametrize("arch", ["xtensawin", "rv32imc", "x64"])
def test_runtime_compiles_with_mpy_cross(arch, tmp_path):
    if not MPY_CROSS:
        pytest.skip("mpy-cross is not installed")
    sizes = compile_runtime(tmp_path, arch)
    assert set(sizes) == {name.replace(".py", ".mpy") for name in RUNTIME_FILES}
    assert all(size > 500 for size in sizes.values())


def test_crc_fallback_matches_binascii(unix_py, tmp_path):
    script = tmp_path / "crc.py"
    script.write_text(
        "import binascii, edgenn\n"
        "data = bytes(range(256)) * 3\n"
        "a = edgenn._crc32_bitwise(data[:100], 0)\n"
        "b = edgenn._crc32_bitwise(data[100:], a)\n"
        "print(b == binascii.crc32(data), a == binascii.crc32(data[:100]))\n"
    )
    proc = subprocess.run([unix_py_binary(), str(script)], capture_output=True, text=True, timeout=60,
                          env={"MICROPYPATH": str(FIRMWARE)})
    assert proc.stdout.split() == ["True", "True"], proc.stderr


def unix_py_binary() -> str:
    from mpy_helpers import MICROPYTHON, need_micropython

    need_micropython()
    return MICROPYTHON


def test_runs_in_a_board_sized_heap(runtime_mpy_x64, tmp_path):
    """With the heap of a plain ESP32 (128 KB), the .mpy runtime loads a 46 KB model and predicts."""
    from mpy_helpers import UnixPort, need_micropython

    need_micropython()
    model = zoo.build_zoo(0)["edge_relu_2"]  # 256-128-64-4: the 46 KB model of the zoo
    modelfile.save(model, tmp_path / "big.enn")
    x = np.zeros((1, model.n_inputs))  # one row: the test script's own buffers must fit too
    (tmp_path / "big.rows.bin").write_bytes(x.astype("<f8").tobytes())
    (tmp_path / "job.txt").write_text("big.enn big.rows.bin\n")
    result = UnixPort(runtime_mpy_x64).run("check_api.py", tmp_path, tmp_path / "job.txt", heapsize="128K")
    assert result.returncode == 0, result.stderr
    (report,) = result.json_lines()
    codes = np.frombuffer(bytes.fromhex(report["codes"]), dtype=np.uint8).reshape(x.shape)
    np.testing.assert_array_equal(report["predict"], golden.predict(model, x))
    np.testing.assert_array_equal(codes, golden.quantize_input(model, x))
    assert report["alloc_forward_q"] == 0
