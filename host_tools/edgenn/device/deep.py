"""`edgenn doctor --deep`: the layer zoo through every kernel a board has, byte for byte against golden.

The zoo (edgenn.zoo: every activation, 0 to 4 hidden layers, 1 to 256 inputs, extreme and edge-case
parameters) is cut to the models a board takes in a few seconds over a serial line (`DEEP_MODEL_BYTES`),
each with a few input rows of edge cases (all 0, all 255, the code of 0, one-hot, random). The host
computes golden's output bytes; the board loads each model once per kernel it has (`edgenn.KERNELS`, and
`asm` when its self-test passed: `edgenn.asm_status()`), runs the rows through `forward_q` and sends the
bytes back, with the time of one inference (`time.ticks_us`, the board's clock).

The same cases run through the board's machine code in the emulators (`run_in_emulator`: xtensawin under
qemu-xtensa, rv32imc under unicorn, edgenn.machinecode), layer by layer, so the deep check is tested on
the ESP32's and the C3's own instructions without a board.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field

import numpy as np
from mpremote.transport_serial import SerialTransport

from edgenn import golden, modelfile, zoo
from edgenn.device.board_info import board_eval
from edgenn.device.swap import board_exec
from edgenn.modelfile import QuantModel

DEEP_MODEL_BYTES = 3_200  # the zoo models up to this size: ~25 models, ~35 KB over the line
DEEP_ROWS = 6
DEEP_FILE = "_deep.enn"
SEED = 0


@dataclass(frozen=True)
class Case:
    name: str
    model: QuantModel
    rows: np.ndarray  # uint8 input codes (n, n_inputs)

    def golden_bytes(self) -> bytes:
        """The output bytes forward_q gives for every row, int8 as two's complement."""
        return np.asarray(golden.forward_q(self.model, self.rows)).astype(np.int8).view(np.uint8).tobytes()


@dataclass
class KernelCheck:
    case: str
    kernel: str
    ok: bool
    mismatched_bytes: int = 0
    us: int | None = None  # one inference, measured by the board (None in the emulator)
    instructions: int | None = None  # in the emulator: kernel instructions for all rows
    error: str = ""

    def detail(self) -> str:
        return self.error or f"{self.mismatched_bytes} byte(s) differ from golden"


@dataclass
class DeepReport:
    where: str  # "board" or "xtensawin emulator", ...
    kernels: list[str]
    asm_status: str | None
    checks: list[KernelCheck] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return bool(self.checks) and all(c.ok for c in self.checks)

    def failures(self) -> list[KernelCheck]:
        return [c for c in self.checks if not c.ok]

    def as_dict(self) -> dict:
        return {**asdict(self), "ok": self.ok}


def cases(seed: int = SEED, max_bytes: int = DEEP_MODEL_BYTES, n_rows: int = DEEP_ROWS) -> list[Case]:
    """The zoo models a board checks quickly, each with edge-case rows and a few random ones."""
    out = []
    for name, model in zoo.build_zoo(seed).items():
        if len(modelfile.to_bytes(model)) > max_bytes:
            continue
        rows = zoo.edge_inputs(model, n_random=n_rows, seed=seed)
        pick = np.r_[0:3, len(rows) - (n_rows - 3) : len(rows)]  # all 0, all 255, code of 0, random
        out.append(Case(name, model, rows[pick]))
    return out


def _compare(case: Case, kernel: str, got: bytes) -> KernelCheck:
    want = case.golden_bytes()
    if len(got) != len(want):
        return KernelCheck(case.name, kernel, False, len(want), error=f"{len(got)} bytes, golden {len(want)}")
    bad = sum(a != b for a, b in zip(got, want))
    return KernelCheck(case.name, kernel, bad == 0, bad)


# ---- on the board --------------------------------------------------------------------------------

_KERNELS = """
import edgenn
_k = list(edgenn.KERNELS)
_a = edgenn.asm_status() if hasattr(edgenn, 'asm_status') else None
if _a == 'ok':
    _k.insert(0, 'asm')
print(repr((_k, _a)))
"""

# Runs one model through one kernel: the output bytes of every row (hex) and one inference's time.
_RUN = """
import edgenn, time, gc, binascii
gc.collect()
try:
    _n = edgenn.load({name!r}, {kernel!r})
    _o = bytearray()
    _t = None
    for _r in {rows!r}:
        _x = bytearray(_r)
        _t0 = time.ticks_us()
        _y = _n.forward_q(_x)
        _t1 = time.ticks_us()
        _t = time.ticks_diff(_t1, _t0) if _t is None else min(_t, time.ticks_diff(_t1, _t0))
        _o.extend(bytes(_y))
    _res = ('ok', binascii.hexlify(_o).decode(), _t)
except Exception as e:
    _res = ('error', repr(e), None)
_n = None
gc.collect()
print(repr(_res))
"""


def run_on_board(transport: SerialTransport, selected: list[Case] | None = None) -> DeepReport:
    """Every case through every kernel on a connected board (raw REPL), checked against golden."""
    from edgenn.device.deploy import upload  # deploy's checked copy (hash verified on the board)

    started = time.monotonic()
    selected = cases() if selected is None else selected
    kernels, asm = board_eval(transport, _KERNELS)
    report = DeepReport("board", list(kernels), asm)
    try:
        for case in selected:
            upload(transport, DEEP_FILE, modelfile.to_bytes(case.model))
            rows = [bytes(r) for r in case.rows]
            for kernel in kernels:
                status, payload, us = board_eval(
                    transport, _RUN.format(name=DEEP_FILE, kernel=kernel, rows=rows)
                )
                if status != "ok":
                    report.checks.append(KernelCheck(case.name, kernel, False, error=str(payload)))
                    continue
                check = _compare(case, kernel, bytes.fromhex(payload))
                check.us = us
                report.checks.append(check)
    finally:
        board_exec(transport, f"import os\ntry:\n os.remove({DEEP_FILE!r})\nexcept OSError:\n pass")
    report.seconds = round(time.monotonic() - started, 2)
    return report


# ---- in the emulators ----------------------------------------------------------------------------


def run_in_emulator(arch: str, selected: list[Case] | None = None, names: tuple[str, ...] = ()) -> DeepReport:
    """The same cases through the board's machine code for `arch` (xtensawin: qemu-xtensa, rv32imc:
    unicorn), each registered kernel that has code for it (or `names`), every layer on golden's input."""
    from edgenn.machinecode import kernels as mc

    started = time.monotonic()
    selected = cases() if selected is None else selected
    names = names or tuple(k for k, kernel in mc.KERNELS.items() if arch in kernel.sources)
    report = DeepReport(f"{arch} emulator", list(names), None)
    for name in names:
        kernel = mc.get_kernel(name)
        code = mc.kernel_mpy(kernel, arch)
        jobs, where = [], []
        for case in selected:
            u = case.rows
            for layer, out in zip(case.model.layers, golden.forward_layers_q(case.model, case.rows)):
                jobs.append(mc.quant_layer_job(layer, u))
                where.append(case)
                u = np.asarray(out).view(np.uint8)
        runs = mc.run_layers(arch, code, jobs, kernel=kernel)
        got: dict[str, bytearray] = {}
        instructions: dict[str, int] = {}
        for case, run in zip(where, runs):
            got[case.name] = bytearray(b"".join(run.outputs))  # the last layer's run wins: the output
            instructions[case.name] = instructions.get(case.name, 0) + sum(run.instructions)
        for case in selected:
            check = _compare(case, name, bytes(got[case.name]))
            check.instructions = instructions[case.name]
            report.checks.append(check)
    report.seconds = round(time.monotonic() - started, 2)
    return report


# ---- the report ------------------------------------------------------------------------------------


def deep_lines(report: DeepReport) -> list[str]:
    """What a user pastes into a bug report: per kernel, the cases passed and one inference's time."""
    models = len({c.case for c in report.checks})
    lines = [
        f"deep check    {models} zoo models x kernels {', '.join(report.kernels)} on the {report.where}, "
        f"byte for byte against golden ({report.seconds} s)",
        f"  asm self-test  {report.asm_status or '-'}",
    ]
    for kernel in report.kernels:
        mine = [c for c in report.checks if c.kernel == kernel]
        passed = sum(c.ok for c in mine)
        timed = [c for c in mine if c.us is not None]
        slowest = max(timed, key=lambda c: c.us) if timed else None
        timing = f"; one inference {slowest.us} us ({slowest.case}, the slowest)" if slowest else ""
        lines.append(f"  {kernel:<8} {passed}/{len(mine)} models bit-exact{timing}")
    for c in report.failures():
        lines.append(f"  FAILED {c.kernel} on {c.case}: {c.detail()}")
    return lines
