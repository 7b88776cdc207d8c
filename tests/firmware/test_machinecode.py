"""The ESP32's own machine code: firmware/edgenn_viper.py compiled by mpy-cross for xtensawin (ESP32, S2,
S3) and rv32imc (C3, C6), run in qemu-xtensa and unicorn (32-bit registers that wrap as on the chip).
Every output byte must equal golden's, on the whole zoo and on models trained on the bundled datasets;
a kernel with a deliberate off-by-one in its rounding must fail the same check; the instruction counts
must equal one-instruction-at-a-time counts."""

from __future__ import annotations

import json
import struct
import subprocess
from pathlib import Path

import numpy as np
import pytest
from mpy_helpers import FIRMWARE

from edgenn import golden, zoo
from edgenn.machinecode import estimate, kernels, mpy, rv32, xtensa
from edgenn.machinecode.memory import Call, MachineCodeError

ARCHES = list(kernels.ARCHES)
RANDOM_ROWS = 32  # per model, beside the edge rows (all 0, all 255, real 0, alternating, some one-hots)
ONE_HOTS = 12


def need_emulator(arch: str) -> None:
    if arch == "xtensawin" and xtensa.qemu_path() is None:
        pytest.skip("qemu-xtensa is missing (Debian package qemu-user; .ci/run installs it)")
    if arch == "rv32imc" and not rv32.available():
        pytest.skip("PyPI unicorn is missing (a dependency in pyproject.toml: pip install -e .)")


@pytest.fixture(scope="module", params=ARCHES)
def arch(request) -> str:
    need_emulator(request.param)
    return request.param


@pytest.fixture(scope="module")
def viper_mpy(arch) -> bytes:
    return kernels.compile_source(FIRMWARE / "edgenn_viper.py", arch)


def zoo_rows(model) -> np.ndarray:
    rows = zoo.edge_inputs(model, RANDOM_ROWS, seed=0)
    n = model.n_inputs
    fixed = [0, 1, 2, 3 + n, 4 + n]  # zeros, 255s, real 0, both alternations
    one_hot = 3 + np.linspace(0, n - 1, min(n, ONE_HOTS)).astype(int)
    random = np.arange(5 + n, len(rows))
    return rows[np.r_[fixed, one_hot, random]]


def layer_jobs(models: dict, rows_of) -> tuple[list, list, list]:
    """Every layer of every model on golden's input to that layer; the golden output to compare with."""
    jobs, want, where = [], [], []
    for name, model in models.items():
        rows = rows_of(model)
        outs = golden.forward_layers_q(model, rows)
        for k, (layer, u, o) in enumerate(zip(model.layers, [rows, *outs[:-1]], outs)):
            jobs.append(kernels.quant_layer_job(layer, u))
            want.append(np.asarray(o).view(np.uint8))
            where.append(f"{name} layer {k}")
    return jobs, want, where


def mismatches(runs: list, want: list, where: list) -> dict[str, int]:
    bad = {}
    for run, w, name in zip(runs, want, where):
        got = np.frombuffer(b"".join(run.outputs), dtype=np.uint8).reshape(w.shape)
        n = int((got != w).sum())
        if n:
            bad[name] = n
    return bad


@pytest.fixture(scope="module")
def zoo_models() -> dict:
    return zoo.build_zoo(seed=0)


def test_mpy_reader_finds_the_kernels(arch, viper_mpy):
    module = mpy.read(viper_mpy)
    assert module.arch == arch and module.version == (6, 3)
    assert module.objects[module.fun_table_index] == "<mp_fun_table>"
    layer, prepare = module.function("layer"), module.function("prepare")
    assert layer.kind == prepare.kind == "viper"
    assert len(layer.code) > 500 and layer.code != prepare.code
    with pytest.raises(mpy.MpyError, match="no function 'nope'"):
        module.function("nope")
    with pytest.raises(mpy.MpyError, match="not a .mpy"):
        mpy.read((FIRMWARE / "edgenn_viper.py").read_bytes())


@pytest.mark.parametrize("kernel_name", sorted(kernels.KERNELS))
def test_machine_code_is_bit_exact_on_the_zoo(arch, kernel_name, zoo_models):
    """Every registered kernel (viper, and any other registered in edgenn.machinecode.kernels)."""
    kernel = kernels.get_kernel(kernel_name)
    if arch not in kernel.sources:
        pytest.skip(f"kernel {kernel_name} has no {arch} source")
    code = kernels.kernel_mpy(kernel, arch)
    jobs, want, where = layer_jobs(zoo_models, zoo_rows)
    assert len(jobs) >= 100 and {layer.activation for m in zoo_models.values() for layer in m.layers} == {
        "identity",
        "relu",
        "sigmoid",
        "tanh",
    }
    runs = kernels.run_layers(arch, code, jobs, kernel=kernel, count=False)
    assert mismatches(runs, want, where) == {}
    assert sum(len(r.outputs) for r in runs) == sum(len(j[2]) for j in jobs)


def test_viper_machine_code_is_bit_exact_on_real_models(arch, viper_mpy, real_models):
    models = {name: qm for name, (qm, _) in real_models.items()}
    codes = {id(qm): rows for qm, rows in real_models.values()}
    jobs, want, where = layer_jobs(models, lambda m: codes[id(m)])
    assert sum(len(j[2]) for j in jobs) > 2000  # every row of every dataset, every layer
    runs = kernels.run_layers(arch, viper_mpy, jobs, count=False)
    assert mismatches(runs, want, where) == {}


def test_an_off_by_one_in_the_rounding_is_caught(arch, zoo_models, tmp_path):
    source = (FIRMWARE / "edgenn_viper.py").read_text()
    exact = "+ (1 << (t - 16))) >> (t - 15)"
    assert source.count(exact) == 1
    broken = tmp_path / "edgenn_viper.py"
    broken.write_text(source.replace(exact, "+ (1 << (t - 16)) + 1) >> (t - 15)"))
    broken_mpy = kernels.compile_source(broken, arch)
    jobs, want, where = layer_jobs(zoo_models, lambda model: zoo_rows(model)[:12])
    bad = mismatches(kernels.run_layers(arch, broken_mpy, jobs, count=False), want, where)
    assert sum(bad.values()) > 0, "the machine-code check did not notice a rounding error"


def small_layer() -> tuple:
    rng = np.random.default_rng(3)
    model = zoo.random_model(rng, 37, [], [], 5, "classify")
    rows = rng.integers(0, 256, size=(2, 37), dtype=np.uint8)
    return model.layers[0], rows


@pytest.mark.parametrize("kernel_name", sorted(kernels.KERNELS))
def test_xtensa_block_counts_equal_single_step_counts(kernel_name, tmp_path):
    need_emulator("xtensawin")
    kernel = kernels.get_kernel(kernel_name)
    if "xtensawin" not in kernel.sources:
        pytest.skip(f"kernel {kernel_name} has no xtensawin source")
    module = mpy.read(kernels.kernel_mpy(kernel, "xtensawin"))
    layer, rows = small_layer()
    program = kernels.layer_program([kernels.quant_layer_job(layer, rows)], kernel)
    args = (module, program.functions, program.buffers, program.calls)
    counted = xtensa.run(*args)
    elf, info = xtensa.build(*args)
    exe = tmp_path / "run.elf"
    exe.write_bytes(elf)
    exe.chmod(0o755)
    log = tmp_path / "single.log"
    cmd = [
        xtensa.qemu_path(),
        "-cpu",
        xtensa.CPU,
        "-singlestep",
        "-d",
        "exec,nochain",
        "-D",
        str(log),
        str(exe),
    ]
    subprocess.run(cmd, check=True, capture_output=True)
    single = single_step_counts(log, info, len(program.calls))
    assert single == counted.instructions
    assert all(n > 100 for n in single)


def single_step_counts(log: Path, info: dict, n_calls: int) -> list[int]:
    counts = [0] * n_calls
    job = -1
    for line in log.read_text().splitlines():
        if not line.startswith("Trace"):
            continue
        pc = int(line.split("[")[1].split("/")[1], 16)
        if pc == info["loop"]:
            job += 1
        elif 0 <= job < n_calls and any(a <= pc < b for a, b in info["placed"].functions.values()):
            counts[job] += 1
    return counts


def test_rv32_block_counts_equal_per_instruction_counts(monkeypatch):
    need_emulator("rv32imc")
    viper_mpy = kernels.compile_source(FIRMWARE / "edgenn_viper.py", "rv32imc")
    from unicorn import UC_HOOK_BLOCK, UC_HOOK_CODE, Uc

    layer, rows = small_layer()
    per_instruction = [0]
    original = Uc.hook_add

    def both_hooks(self, kind, callback, user_data=None, begin=1, end=0, *args):
        if kind == UC_HOOK_BLOCK:  # add an instruction hook over the same range beside the block hook

            def each(uc, addr, size, user):
                per_instruction[0] += 1

            original(self, UC_HOOK_CODE, each, None, begin, end)
        return original(self, kind, callback, user_data, begin, end, *args)

    monkeypatch.setattr(Uc, "hook_add", both_hooks)
    run = kernels.run_layers("rv32imc", viper_mpy, [kernels.quant_layer_job(layer, rows)])[0]
    stubs = sum(run.other_instructions)  # the identity stub (c.jr ra) per argument conversion
    assert stubs == 4 * len(rows)
    prepare_stubs = 3  # prepare converts two arguments and its int return value
    assert per_instruction[0] == run.prepare_instructions + sum(run.instructions) + stubs + prepare_stubs
    assert all(n > 100 for n in run.instructions)


def test_counts_and_outputs_agree_between_counting_and_plain_runs(arch, viper_mpy):
    layer, rows = small_layer()
    job = kernels.quant_layer_job(layer, rows)
    counted = kernels.run_layers(arch, viper_mpy, [job])[0]
    plain = kernels.run_layers(arch, viper_mpy, [job], count=False)[0]
    assert counted.outputs == plain.outputs
    assert golden.layer_forward(layer, rows).view(np.uint8).tobytes() == b"".join(counted.outputs)
    # one row's count is the same however many rows run in the session
    out, n = kernels.run_layer(arch, viper_mpy, job[0], job[1], job[2][0])
    assert out == counted.outputs[0] and n == counted.instructions[0]


def test_a_call_into_an_unstubbed_runtime_entry_is_an_error(arch, tmp_path):
    src = tmp_path / "alloc.py"
    src.write_text("import micropython\n\n@micropython.viper\ndef f(p: ptr8):\n    return [p[0]]\n")
    code = kernels.compile_source(src, arch)
    with pytest.raises(MachineCodeError, match=r"mp_fun_table\[\d+\]"):
        kernels.run_calls(arch, code, ["f"], [b"\x05"], [Call("f", [0])])


def test_prepare_rejections_come_back_as_on_the_board(arch, viper_mpy):
    layer, rows = small_layer()
    blob, header, xs = kernels.quant_layer_job(layer, rows)
    bad_shift = bytearray(blob)
    bad_shift[layer.n_in * layer.n_out + 6 * layer.n_out + 2] = 30  # neuron 2's shift outside 15..29
    with pytest.raises(MachineCodeError, match="neuron 2, problem 2"):
        kernels.run_layers(arch, viper_mpy, [(bytes(bad_shift), header, xs)])
    assert struct.unpack("<4i", header)[:3] == (37, 5, 0)


def test_a_kernel_without_prepare_gets_the_host_preparation(arch, monkeypatch, zoo_models):
    """The registry contract other kernels (e.g. inline assembler) use: no `prepare`, same bytes."""
    kernel = kernels.Kernel("no-prepare", {arch: "edgenn_viper.py"}, prepare=None)
    monkeypatch.setitem(kernels.KERNELS, kernel.name, kernel)
    code = kernels.kernel_mpy(kernels.get_kernel("no-prepare"), arch)
    model = zoo_models["mixed_3"]
    jobs, want, where = layer_jobs({"mixed_3": model}, zoo_rows)
    runs = kernels.run_layers(arch, code, jobs, kernel=kernel)
    assert mismatches(runs, want, where) == {}
    assert all(r.prepare_instructions == 0 for r in runs)


def test_edgenn_estimate_json(arch, tmp_path, capsys):
    from edgenn import modelfile
    from edgenn.cli import main

    board = {"xtensawin": "esp32", "rv32imc": "esp32c3"}[arch]
    model = zoo.random_model(np.random.default_rng(7), 64, [32], ["relu"], 10, "classify")
    path = tmp_path / "m.enn"
    modelfile.save(model, path)
    # without --kernel: the kernel deploy installs on that board (asm on xtensawin and rv32imc boards)
    assert main(["estimate", str(path), "--board", board, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["kernel"] == "asm"
    assert main(["estimate", str(path), "--board", board, "--kernel", "viper", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["arch"] == arch and out["kernel"] == "viper" and out["board"] == board
    assert out["macs"] == 64 * 32 + 32 * 10
    assert out["kernel_instructions"] == sum(layer["kernel_instructions"] for layer in out["layers"])
    assert out["instructions"] >= out["kernel_instructions"]
    assert sum(out["instruction_classes"].values()) == pytest.approx(out["kernel_instructions"], abs=8)
    assert 8 < out["instructions_per_mac"] < 30
    assert out["us"] == pytest.approx(out["cycles"] / out["clock_mhz"], abs=0.1) and out["us_is_estimate"]
    # the same count as running the layers directly on the same rows
    rows = estimate.input_rows(model)
    outs = golden.forward_layers_q(model, rows)
    code = kernels.kernel_mpy(kernels.get_kernel("viper"), arch)
    runs = kernels.run_layers(arch, code, [kernels.quant_layer_job(model.layers[0], rows)])
    assert round(sum(runs[0].instructions) / len(rows)) == out["layers"][0]["kernel_instructions"]
    assert outs[0].shape == (len(rows), 32)


@pytest.mark.parametrize(
    "argv, fragment",
    [(["--board", "esp32"], "no such file"), (["--board", "virtual"], "invalid choice")],
)
def test_edgenn_estimate_user_errors(argv, fragment, tmp_path, capsys):
    from edgenn.cli import main

    try:
        code = main(["estimate", str(tmp_path / "missing.enn"), *argv])
    except SystemExit as exc:  # argparse
        code = exc.code
    assert code == 2
    assert fragment in capsys.readouterr().err


ASM_SOURCES = {
    "xtensawin": """import micropython


@micropython.asm_xtensa
def bump(a2, a3):
    l8ui(a4, a2, 0)
    addi(a4, a4, 1)
    s8i(a4, a3, 0)
    mov(a2, a4)
""",
    "rv32imc": """import micropython


@micropython.asm_rv32
def bump(a0, a1):
    lbu(a2, 0(a0))
    addi(a2, a2, 1)
    sb(a2, 0(a1))
    mv(a0, a2)
""",
}


def test_inline_assembler_functions_run_with_their_calling_convention(arch, tmp_path):
    """@micropython.asm_* code is called like C with converted arguments (no function object)."""
    src = tmp_path / "bump.py"
    src.write_text(ASM_SOURCES[arch])
    code = kernels.compile_source(src, arch)
    assert mpy.read(code).function("bump").kind == "asm"
    result = kernels.run_calls(arch, code, ["bump"], [b"\x29", b"\x00"], [Call("bump", [0, 1])] * 2)
    assert result.buffers[1] == b"\x2a" and result.returns == [42, 42]
    assert all(n > 4 for n in result.instructions)  # the four instructions written, prologue, return
    assert result.classes[0]["load"] >= 1 and result.classes[0]["store"] >= 1


def test_a_missing_emulator_is_a_user_error_that_says_how_to_install_it(tmp_path, monkeypatch, capsys):
    from edgenn import modelfile
    from edgenn.cli import main

    path = tmp_path / "m.enn"
    modelfile.save(zoo.random_model(np.random.default_rng(1), 8, [4], ["relu"], 2, "classify"), path)
    monkeypatch.setattr(xtensa, "qemu_path", lambda: None)
    assert main(["estimate", str(path), "--board", "esp32"]) == 2
    assert "apt-get install qemu-user" in capsys.readouterr().err


def test_estimate_takes_a_board_name_as_the_report_calls_it(arch):
    board = {"xtensawin": "esp32s3", "rv32imc": "esp32c6"}[arch]
    model = zoo.random_model(np.random.default_rng(2), 8, [4], ["relu"], 2, "classify")
    result = estimate.estimate(model, board)
    assert result["arch"] == arch and result["board"] == board and result["us"] > 0


def test_estimate_of_a_sensor_front_end_model_counts_its_network(arch, tmp_path, capsys):
    from edgenn.cli import main

    rng = np.random.default_rng(3)
    columns = [f"{a}{i}" for a in "xyz" for i in range(8)]
    lines = [",".join(columns) + ",label"]
    for r in range(24):
        lines.append(
            ",".join(str(v) for v in rng.integers(-2000, 2000, 24) * (1 + r % 2)) + f",{'ab'[r % 2]}"
        )
    (tmp_path / "w.csv").write_text("\n".join(lines) + "\n")
    npz, enn = str(tmp_path / "w.npz"), str(tmp_path / "w.enn")
    options = "--label label --axes 3 --features stats --folds 0 --epochs 5 --hidden 8"
    assert main(["train", str(tmp_path / "w.csv"), *options.split(), "-o", npz]) == 0
    assert main(["quantize", npz, "--data", str(tmp_path / "w.csv"), "-o", enn]) == 0
    capsys.readouterr()
    board = {"xtensawin": "esp32", "rv32imc": "esp32c3"}[arch]
    assert main(["estimate", enn, "--board", board, "--json"]) == 0  # was a traceback (zero row of features)
    out = json.loads(capsys.readouterr().out)
    assert out["macs"] == 20 * 8 + 8 * 2
    assert out["frontend"]["instructions"] > 0 and out["frontend"]["us"] > 0  # counted apart, bit-exact
