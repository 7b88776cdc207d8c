"""The sensor front end's own machine code (`edgenn_fe_viper`: fe_load, fe_series, fe_fft, fe_bands), counted.

The board's runtime calls fe_load and fe_series once per axis (and for `spectral` fe_fft and fe_bands
once per pair of axes, after its second axis or the last one) and fe_series once more for the
magnitude (`edgenn_fe.run`); this runs exactly those calls in the emulator of the board's
architecture, on the scratch layout `edgenn_fe.setup` builds (docs/model-format.md, "The sensor
front end"), and returns the features (which must equal the golden model's) and the instructions.
Only the viper kernel has a front end; it is counted whatever kernel runs the layers.
"""

from __future__ import annotations

import numpy as np

from edgenn import frontend
from edgenn.frontend import FrontEnd
from edgenn.machinecode import kernels
from edgenn.machinecode.counting import CLASSES
from edgenn.machinecode.memory import Call
from edgenn.resources import shipped_dir

OFF = 2**29  # scratch values and twiddles are stored + 2**29 (see edgenn_fe_viper.py)
SERIES_INDEX = 17  # h[17]: the series fe_load / fe_series work on


def scratch(fe: FrontEnd) -> tuple[np.ndarray, list[int]]:
    """The ws words and the header h the runtime builds at load (the series index left 0)."""
    w, p, nb, n = fe.window, fe.fft_size, fe.n_bands, fe.axes
    pre = 2 * w
    prev = pre + 2 * p
    pedge = prev + p
    pcos = pedge + nb + 1
    psin = pcos + p // 2
    ws = np.zeros(psin + p // 2, np.int64)
    if fe.kind == "spectral":
        ws[pedge : pedge + nb + 1] = fe.band_edges
        cos, sin = frontend.twiddles(p)
        ws[pcos:psin] = cos + OFF
        ws[psin : psin + p // 2] = sin + OFF
        ws[prev : prev + p] = frontend.bit_reverse(p)
    n_stats = 5 * fe.n_series
    w_shift = w.bit_length() if w & (w - 1) == 0 else 0
    h = [n, w, frontend.KIND_CODES[fe.kind], p, nb, fe.norm_bits, w, 0, 0, w, pre, pre + p, prev, pedge]
    h += [pcos, psin, n_stats, 0, w_shift, 0]
    return ws, h


def run_frontend(arch: str, fe: FrontEnd, window: np.ndarray) -> dict:
    """One raw window through the board's front end machine code: features, instructions (the kernel's
    own, and in mp_fun_table stubs) and instructions by class."""
    code = kernels.compile_source(shipped_dir("firmware", "EDGENN_FIRMWARE_DIR") / "edgenn_fe_viper.py", arch)
    ws, h = scratch(fe)
    raw = frontend.raw_values(np.asarray(window).reshape(1, -1))[0]
    buffers = [(raw + 32768).astype("<u2").tobytes(), ws.astype("<u4").tobytes(), bytes(4 * fe.n_features)]
    calls = []
    for k in range(fe.n_series):
        header = list(h)
        header[SERIES_INDEX] = k
        buffers.append(np.array(header, "<i4").tobytes())
        hb = len(buffers) - 1
        if k < fe.axes:
            calls.append(Call("fe_load", [0, 1, hb]))
        calls.append(Call("fe_series", [1, 2, hb]))
        if fe.kind == "spectral" and k < fe.axes and (k % 2 or k == fe.axes - 1):  # a pair's FFT
            calls += [Call("fe_fft", [1, 1, hb]), Call("fe_bands", [1, 2, hb])]
    functions = ["fe_load", "fe_series", "fe_fft", "fe_bands"]
    result = kernels.run_calls(arch, code, functions, buffers, calls)
    classes = dict.fromkeys(CLASSES, 0)
    for c in result.classes:
        for name in CLASSES:
            classes[name] += c.get(name, 0)
    return {
        "features": np.frombuffer(result.buffers[2], "<i4").astype(np.int64),
        "instructions": int(sum(result.instructions)),
        "other_instructions": int(sum(result.other_instructions)),
        "classes": classes,
    }


def windows(fe: FrontEnd, n: int = 2, seed: int = 0) -> np.ndarray:
    """Rows to average over: a seeded sine-plus-noise window per row (a signal, not a constant)."""
    rng = np.random.default_rng(seed)
    t = np.arange(fe.window)
    rows = []
    for _ in range(n):
        per_axis = [
            rng.uniform(500, 8000) * np.sin(rng.uniform(0.1, 1.5) * t + rng.uniform(0, 6))
            for _ in range(fe.axes)
        ]
        rows.append(np.round(np.concatenate(per_axis) + rng.normal(0, 50, fe.n_values)))
    return np.array(rows)


def estimate_frontend(
    fe: FrontEnd, arch: str, cycles: dict[str, int], mhz: int, rows: np.ndarray | None = None
) -> dict:
    """The front end's instructions per window on `arch` (averaged over `rows`), checked bit-exact
    against the golden model, and the estimated time from the core's cycles per instruction class."""
    rows = windows(fe) if rows is None else np.asarray(rows)
    total = other = 0
    classes = dict.fromkeys(CLASSES, 0)
    for row in rows:
        run = run_frontend(arch, fe, row)
        expected = frontend.features_int(fe, row.reshape(1, -1))[0]
        if not np.array_equal(run["features"], expected):
            raise AssertionError("the front end's machine code differs from the golden model")
        total += run["instructions"]
        other += run["other_instructions"]
        for name in CLASSES:
            classes[name] += run["classes"][name]
    n = len(rows)
    cyc = sum(classes[name] * cycles[name] for name in CLASSES) / n
    return {
        "frontend": frontend.describe(fe),
        "instructions": round(total / n),
        "other_instructions": round(other / n),
        "cycles": round(cyc),
        "us": round(cyc / mhz, 1),
        "rows_averaged": n,
    }
