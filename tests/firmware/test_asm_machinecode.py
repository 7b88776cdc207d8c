"""The inline-assembler kernels (firmware/edgenn_asm_<arch>.py) as the board runs them: compiled by
mpy-cross, re-tagged as viper code (mpy.retag_asm_as_viper, as deploy installs them), run in the emulators. Every
output byte must equal golden's on the zoo and on real models; a deliberately broken asm kernel must
fail the same check; the instruction counts must meet the issue's goals."""

from __future__ import annotations

import numpy as np
import pytest
from mpy_helpers import FIRMWARE
from test_machinecode import layer_jobs, mismatches, need_emulator, zoo_rows

from edgenn import golden, zoo
from edgenn.machinecode import kernels, mpy

ASM = kernels.get_kernel("asm")
ASM_ARCHES = [a for a in kernels.ARCHES if (FIRMWARE / ASM.sources[a]).exists()]


@pytest.fixture(scope="module", params=ASM_ARCHES)
def arch(request) -> str:
    need_emulator(request.param)
    return request.param


@pytest.fixture(scope="module")
def asm_mpy(arch) -> bytes:
    return kernels.kernel_mpy(ASM, arch)


@pytest.fixture(scope="module")
def zoo_models() -> dict:
    return zoo.build_zoo(seed=0)


def test_xtensawin_kernel_exists():
    assert "xtensawin" in ASM_ARCHES


def test_retag_turns_asm_into_viper_code(arch):
    raw = kernels.compile_source(FIRMWARE / ASM.sources[arch], arch)
    before = mpy.read(raw).function("layer")
    after = mpy.read(mpy.retag_asm_as_viper(raw)).function("layer")
    assert before.kind == "asm" and after.kind == "viper" and before.code == after.code
    assert mpy.read(mpy.retag_asm_as_viper(raw)).arch == arch
    assert len(mpy.retag_asm_as_viper(raw)) == len(raw) - 2  # n_pos_args and type_sig: one byte each
    with pytest.raises(mpy.MpyError, match="no inline-assembler function"):
        mpy.retag_asm_as_viper(kernels.compile_source(FIRMWARE / "edgenn_viper.py", arch))
    with pytest.raises(mpy.MpyError, match="truncated"):
        mpy.retag_asm_as_viper(raw[:-3])
    with pytest.raises(mpy.MpyError, match="unexpected bytes"):
        mpy.retag_asm_as_viper(raw + b"\0")


def test_asm_is_bit_exact_on_the_zoo(arch, asm_mpy, zoo_models):
    jobs, want, where = layer_jobs(zoo_models, zoo_rows)
    assert len(jobs) >= 100
    runs = kernels.run_layers(arch, asm_mpy, jobs, kernel=ASM, count=False)
    assert mismatches(runs, want, where) == {}


def test_asm_is_bit_exact_on_real_models(arch, asm_mpy, real_models):
    models = {name: qm for name, (qm, _) in real_models.items()}
    codes = {id(qm): rows for qm, rows in real_models.values()}
    jobs, want, where = layer_jobs(models, lambda m: codes[id(m)])
    assert sum(len(j[2]) for j in jobs) > 2000
    runs = kernels.run_layers(arch, asm_mpy, jobs, kernel=ASM, count=False)
    assert mismatches(runs, want, where) == {}


# one rounding constant per kernel, changed by one: the tests must notice
BREAKS = {
    "xtensawin": ("    addi(a12, a8, -1)  # 2**(t-1)\n", "    addi(a12, a8, -2)  # 2**(t-1)\n"),
    "rv32imc": ("    addi(t0, t0, -1)  # 2**(t-1)\n", "    addi(t0, t0, -2)  # 2**(t-1)\n"),
}


def broken_asm_source(arch: str, directory) -> object:
    source = (FIRMWARE / ASM.sources[arch]).read_text()
    exact, broken = BREAKS[arch]
    assert source.count(exact) == 1
    path = directory / ASM.sources[arch]
    path.write_text(source.replace(exact, broken))
    return path


def test_a_broken_asm_kernel_is_caught(arch, zoo_models, tmp_path):
    broken = mpy.retag_asm_as_viper(kernels.compile_source(broken_asm_source(arch, tmp_path), arch))
    jobs, want, where = layer_jobs(zoo_models, zoo_rows)
    bad = mismatches(kernels.run_layers(arch, broken, jobs, kernel=ASM, count=False), want, where)
    assert sum(bad.values()) > 0, "the machine-code check did not notice a rounding error"


def mlp_jobs(sizes: list[int], seed: int = 0) -> list:
    rng = np.random.default_rng(seed)
    model = zoo.random_model(rng, sizes[0], sizes[1:-1], ["relu"] * (len(sizes) - 2), sizes[-1], "classify")
    rows = rng.integers(0, 256, size=(1, sizes[0]), dtype=np.uint8)
    jobs = []
    u = rows
    for layer, out in zip(model.layers, golden.forward_layers_q(model, rows)):
        jobs.append(kernels.quant_layer_job(layer, u))
        u = np.asarray(out).view(np.uint8)
    return jobs


def test_instructions_per_mac_meet_the_goals(arch, asm_mpy):
    # whole 64-32-10 inference, measured by running the code
    runs = kernels.run_layers(arch, asm_mpy, mlp_jobs([64, 32, 10]), kernel=ASM)
    per_mac = sum(r.instructions[0] for r in runs) / (64 * 32 + 32 * 10)
    assert per_mac <= 6.0, per_mac
    # the inner loop: the extra instructions of 64 more inputs per neuron, over 64 x n_out MACs
    n_out = 32
    counts = []
    for n_in in (64, 128):
        job = kernels.quant_layer_job(*random_layer(n_in, n_out))
        counts.append(kernels.run_layers(arch, asm_mpy, [job], kernel=ASM)[0].instructions[0])
    inner = (counts[1] - counts[0]) / (64 * n_out)
    assert (arch != "xtensawin" or inner <= 5.0) and inner <= 6.0, inner


def random_layer(n_in: int, n_out: int) -> tuple:
    rng = np.random.default_rng(n_in)
    model = zoo.random_model(rng, n_in, [], [], n_out, "classify")
    return model.layers[0], rng.integers(0, 256, size=(1, n_in), dtype=np.uint8)


DUMP_CASES = """
import edgenn, json
for blob, head, x in edgenn._self_test_cases():
    print(json.dumps([bytes(blob).hex(), list(head), bytes(x).hex()]))
"""


@pytest.fixture(scope="module")
def self_test_jobs(tmp_path_factory) -> list:
    """The runtime's own load-time self-test cases (generated by firmware/edgenn.py in the unix port),
    as emulator jobs: blob back in file form (weights ^ 0x80), h, the input row."""
    import json
    import os
    import shutil
    import struct
    import subprocess

    from mpy_helpers import MICROPYTHON, need_micropython

    need_micropython()
    d = tmp_path_factory.mktemp("selftest")
    for name in ("edgenn.py", "edgenn_viper.py"):
        shutil.copy(FIRMWARE / name, d / name)
    env = dict(os.environ, MICROPYPATH=str(d))
    proc = subprocess.run(
        [MICROPYTHON, "-c", DUMP_CASES], capture_output=True, text=True, env=env, timeout=60
    )
    assert proc.returncode == 0, proc.stderr
    jobs = []
    for line in proc.stdout.splitlines():
        blob_hex, head, x_hex = json.loads(line)
        blob = bytearray.fromhex(blob_hex)
        n = head[0] * head[1]
        blob[:n] = bytes(b ^ 0x80 for b in blob[:n])
        jobs.append((bytes(blob), struct.pack("<4i", *head), [bytes.fromhex(x_hex)]))
    assert len(jobs) == 2 * 4 * 8
    return jobs


def test_the_load_time_self_test_passes_the_kernel_and_refuses_a_broken_one(
    arch, asm_mpy, self_test_jobs, tmp_path
):
    # What edgenn._asm_self_test compares on the board, run here on the board's own machine code: the
    # asm kernel agrees with viper on every case (it serves), the broken copy differs (it is refused).
    viper = kernels.run_layers(
        arch, kernels.kernel_mpy(kernels.get_kernel("viper"), arch), self_test_jobs, count=False
    )
    good = kernels.run_layers(arch, asm_mpy, self_test_jobs, kernel=ASM, count=False)
    broken_mpy = mpy.retag_asm_as_viper(kernels.compile_source(broken_asm_source(arch, tmp_path), arch))
    broken = kernels.run_layers(arch, broken_mpy, self_test_jobs, kernel=ASM, count=False)
    want = [r.outputs for r in viper]
    assert [r.outputs for r in good] == want
    differing = sum(b.outputs != w for b, w in zip(broken, want))
    print(f"{arch}: the broken kernel differs from viper on {differing} of 64 self-test cases")
    assert differing >= 8, f"the self-test vectors hardly notice the broken asm kernel ({differing} of 64)"


# What every chip of the arch has. xtensawin: the core ISA plus MUL32 (mull); the ESP32-S2 has no
# zero-overhead loop and no MAC16, and an .mpy cannot tell an S2 from an S3. rv32imc: RV32IM + C.
ALLOWED = {
    "xtensawin": {
        "entry", "retw.n", "add", "addi", "addx2", "addx4", "sub", "neg", "xor", "or", "and", "mov.n", "movi.n",
        "l32i", "l32i.n", "s32i", "s32i.n", "l8ui", "s8i", "slli", "srli", "srai", "sll", "sra", "ssl", "ssr",
        "j", "beq", "bne", "bnez", "bbsi", "mull",
    },
    "rv32imc": {
        "add", "addi", "sub", "neg", "or", "and", "andi", "mv", "li", "lw", "sw", "lbu", "sb", "slli", "srli",
        "srai", "sll", "sra", "snez", "j", "beq", "beqz", "bnez", "bne", "ret", "mul",
    },
}  # fmt: skip


def test_the_kernels_use_only_instructions_every_chip_of_the_arch_has(arch, asm_mpy):
    import capstone6pwndbg as cs

    code = mpy.read(asm_mpy).function("layer").code
    if arch == "xtensawin":
        md = cs.Cs(cs.CS_ARCH_XTENSA, cs.CS_MODE_LITTLE_ENDIAN)
    else:
        md = cs.Cs(cs.CS_ARCH_RISCV, cs.CS_MODE_RISCV32 | cs.CS_MODE_RISCVC)
    instructions = list(md.disasm(code, 0))
    assert sum(i.size for i in instructions) == len(code)  # every byte decodes: no data in the code
    assert {i.mnemonic for i in instructions} <= ALLOWED[arch]
