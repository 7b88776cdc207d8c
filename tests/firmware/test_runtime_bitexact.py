"""Bit-exact: every layer's output bytes from the device runtime, run inside real MicroPython, equal
the golden model's (edgenn.golden.forward_layers_q) on the whole model zoo. Zero mismatches is the
only pass. Every forward_q runs under micropython.heap_lock() (allocation-free, no long ints)."""

from __future__ import annotations

from pathlib import Path

import pytest
from mpy_helpers import WasmPort, need_wasm

# Interpreted bytecode runs ~80 ns (unix) to ~370 ns (wasm) per multiply-accumulate, viper ~2 ns: the
# viper runs check every row of every model; the bytecode runs check every row of the models up to
# ~25K MACs per row (>= 1000 rows each) and sample rows (edge rows first, then every k-th) of the
# biggest ones, so that the suite stays within a few minutes.
PORTABLE_PY_MACS = 25_000_000
PORTABLE_MPY_MACS = 3_000_000
WASM_MACS = 4_000_000


def macs_per_row(entry: dict) -> int:
    sizes = [entry["n_inputs"], *entry["layer_sizes"]]
    return sum(a * b for a, b in zip(sizes, sizes[1:], strict=False))


def job(manifest: dict, mac_budget: int | None, directory: Path) -> Path:
    """Writes the job file for mp/check_zoo.py into `directory` (copied into the wasm filesystem)."""
    specs = []
    for entry in manifest["models"]:
        if mac_budget is None:
            specs.append(entry["name"])
        else:
            rows = max(40, mac_budget // macs_per_row(entry))
            specs.append(f"{entry['name']}:{rows}" if rows < entry["rows"] else entry["name"])
    path = directory / f"job-{mac_budget}.txt"
    path.write_text(",".join(specs))
    return path


def assert_bit_exact(result, manifest: dict, kernel: str, full_rows: bool) -> None:
    assert result.returncode == 0, result.stderr
    reports = {r["model"]: r for r in result.json_lines()}
    assert set(reports) == {e["name"] for e in manifest["models"]}, result.stderr
    bad = {name: (r["mismatches"], r["first"]) for name, r in reports.items() if any(r["mismatches"])}
    assert not bad, f"layer mismatches (per layer; first: layer, row, neuron, got, golden): {bad}"
    for entry in manifest["models"]:
        report = reports[entry["name"]]
        assert report["kernel"] == kernel
        assert report["layers"] == len(entry["layer_sizes"])
        if full_rows:
            assert report["rows"] == entry["rows"] >= 1000


def assert_full_rows_below(result, manifest: dict, mac_budget: int) -> None:
    """Every model within the budget ran all of its (>= 1000) rows; the zoo has such models."""
    reports = {r["model"]: r for r in result.json_lines()}
    small = [e for e in manifest["models"] if macs_per_row(e) * e["rows"] <= mac_budget]
    assert len(small) >= len(manifest["models"]) // 2
    assert all(reports[e["name"]]["rows"] == e["rows"] >= 1000 for e in small)


@pytest.mark.parametrize("form", ["py", "mpy"])
def test_viper_kernel_is_bit_exact_on_the_zoo(form, unix_py, unix_mpy, zoo_dir, zoo_manifest):
    port = unix_py if form == "py" else unix_mpy
    result = port.run("check_zoo.py", zoo_dir, "viper", job(zoo_manifest, None, zoo_dir))
    assert_bit_exact(result, zoo_manifest, "viper", full_rows=True)


def test_portable_kernel_is_bit_exact_on_the_zoo_unix_py(unix_py, zoo_dir, zoo_manifest):
    result = unix_py.run("check_zoo.py", zoo_dir, "portable", job(zoo_manifest, PORTABLE_PY_MACS, zoo_dir))
    assert_bit_exact(result, zoo_manifest, "portable", full_rows=False)
    assert_full_rows_below(result, zoo_manifest, PORTABLE_PY_MACS)


def test_portable_kernel_is_bit_exact_on_the_zoo_unix_mpy(unix_mpy, zoo_dir, zoo_manifest):
    result = unix_mpy.run("check_zoo.py", zoo_dir, "portable", job(zoo_manifest, PORTABLE_MPY_MACS, zoo_dir))
    assert_bit_exact(result, zoo_manifest, "portable", full_rows=False)


def test_portable_kernel_is_bit_exact_on_32_bit_wasm(runtime_py, zoo_dir, zoo_manifest):
    need_wasm()
    port = WasmPort(runtime_py, {zoo_dir: "/zoo"}, heap=64 * 1024 * 1024)
    result = port.run("check_zoo.py", "/zoo", "portable", port.path(job(zoo_manifest, WASM_MACS, zoo_dir)))
    assert_bit_exact(result, zoo_manifest, "portable", full_rows=False)
    assert_full_rows_below(result, zoo_manifest, WASM_MACS)


def test_a_wrong_golden_byte_is_reported(unix_py, zoo_dir, tmp_path):
    """The check can fail: flip one expected byte of one layer and it must count exactly one mismatch."""
    import shutil

    for path in zoo_dir.glob("relu_2.*"):
        shutil.copy(path, tmp_path / path.name)
    layer1 = tmp_path / "relu_2.layer1.bin"
    data = bytearray(layer1.read_bytes())
    data[17] ^= 0x01
    layer1.write_bytes(bytes(data))
    (tmp_path / "job.txt").write_text("relu_2")
    result = unix_py.run("check_zoo.py", tmp_path, "viper", tmp_path / "job.txt")
    assert result.returncode == 0, result.stderr
    (report,) = result.json_lines()
    assert report["mismatches"] == [0, 1, 0]
    assert report["first"][:3] == [1, 17 // 16, 17 % 16]
