# Runs INSIDE MicroPython. For each model in JOBFILE (lines "NAME.enn ROWSFILE", ROWSFILE: float64
# little-endian features, n_inputs per row): quantize_input, predict and forward on every row; prints
# the codes, the predictions and the forward values as JSON lines for the host to compare with the
# golden model. Also reports the bytes one call allocates where the build can count them.
# usage: check_api.py DIR JOBFILE
import array
import json
import sys

import micropython

import edgenn


def allocated(fn, arg):
    if not hasattr(micropython, "mem_current"):
        return None
    fn(arg)
    before = micropython.mem_current()
    fn(arg)
    return micropython.mem_current() - before


def main(directory, jobs):
    for model, rows_file in jobs:
        net = edgenn.load(directory + "/" + model)
        with open(directory + "/" + rows_file, "rb") as f:
            data = f.read()
        x = array.array("d", data)
        n = net.n_inputs
        codes = bytearray()
        preds = []
        forwards = []
        for r in range(len(x) // n):
            row = x[r * n:(r + 1) * n]
            codes.extend(net.quantize_input(row))
            preds.append(net.predict(row))
            forwards.append([v for v in net.forward(row)])
        row = list(x[0:n])
        ints = [int(v) for v in row]
        xq = bytearray(net.quantize_input(row))
        print(json.dumps({
            "model": model, "task": net.task, "name": net.name, "labels": net.labels,
            "n_inputs": net.n_inputs, "n_outputs": net.n_outputs, "kernel": net.kernel,
            "codes": "".join(f"{c:02x}" for c in codes), "predict": preds, "forward": forwards,
            "out_is_output_buffer": net.forward_q(xq) is net.forward_q(xq),
            "xq_is_input_buffer": net.quantize_input(row) is net.quantize_input(row),
            "alloc_forward_q": allocated(net.forward_q, xq),
            "alloc_predict_float": allocated(net.predict, row),
            "alloc_predict_int": allocated(net.predict, ints),
        }))


if __name__ == "__main__":
    argv = globals().get("ARGV") or sys.argv  # ARGV: set by wasm_run.mjs (no sys.argv there)
    with open(argv[2]) as f:
        main(argv[1], [line.split() for line in f if line.strip()])
