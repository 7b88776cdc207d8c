# Runs INSIDE MicroPython (unix port or the WebAssembly build), not CPython.
# For every model of the job: load it with the requested kernel, run input rows of NAME.inputs.bin
# through forward_q, and compare every layer's output bytes with the golden model's (NAME.layerK.bin,
# written by `python -m edgenn.zoo`). Prints one JSON line per model.
# Every forward_q runs under micropython.heap_lock(): an allocation (a long int on a 31-bit build
# included) raises MemoryError there instead of passing silently.
# usage: check_zoo.py DIR KERNEL JOBFILE   JOBFILE: NAME[:ROWS],... (a file because this unix port
# dies on a command-line argument longer than ~250 bytes).  ROWS: the first 3 rows (all 0, all 255,
# the code of real 0) then every k-th row, about ROWS in all; default: every row.
import json
import sys

import micropython

import edgenn


def selected_rows(total, wanted):
    if not wanted or wanted >= total:
        return range(total)
    step = (total - 3 + wanted - 4) // (wanted - 3)
    return [0, 1, 2] + list(range(3, total, step))


def check(directory, name, kernel, wanted=0):
    stem = directory + "/" + name
    net = edgenn.load(stem + ".enn", kernel)
    with open(stem + ".inputs.bin", "rb") as f:
        inputs = f.read()
    n_in = net.n_inputs
    total = len(inputs) // n_in
    expected = []
    for i in range(net.n_layers):
        with open(f"{stem}.layer{i}.bin", "rb") as f:
            expected.append(f.read())
        if len(expected[i]) != total * len(net.layer_output(i)):
            raise ValueError(f"fixture {name} layer {i} has {len(expected[i])} bytes")
    xq = bytearray(n_in)
    mismatches = [0] * net.n_layers
    first = None
    rows = 0
    for r in selected_rows(total, wanted):
        xq[:] = inputs[r * n_in:(r + 1) * n_in]
        micropython.heap_lock()
        try:
            net.forward_q(xq)
        finally:
            micropython.heap_unlock()
        rows += 1
        for i in range(net.n_layers):
            out = net.layer_output(i)
            exp = expected[i]
            n_out = len(out)
            base = r * n_out
            if bytes(out) == exp[base:base + n_out]:  # raw bytes: int8 as two's complement
                continue
            for c in range(n_out):
                if out[c] & 0xFF != exp[base + c]:
                    mismatches[i] += 1
                    if first is None:
                        first = [i, r, c, out[c] & 0xFF, exp[base + c]]
    return {"model": name, "kernel": net.kernel, "rows": rows, "layers": net.n_layers,
            "mismatches": mismatches, "first": first}


def main(directory, kernel, names):
    for spec in names:
        name, _, wanted = spec.partition(":")
        print(json.dumps(check(directory, name, kernel, int(wanted) if wanted else 0)))


if __name__ == "__main__":
    argv = globals().get("ARGV") or sys.argv  # ARGV: set by wasm_run.mjs (no sys.argv there)
    with open(argv[3]) as f:
        main(argv[1], argv[2], f.read().strip().split(","))
