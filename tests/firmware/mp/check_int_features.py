# Runs INSIDE MicroPython. Integer features (raw sensor readings) through quantize_input: prints the
# codes of every row as hex (the host compares them with the golden model), how many features took the
# small-int path, and the bytes one quantize_input and one predict of an integer row allocate.
# usage: check_int_features.py MODEL.enn ROWS.txt   (ROWS: comma-separated integers, one row a line)
import gc
import sys

import edgenn


def allocated(fn, arg):
    fn(arg)
    gc.collect()
    gc.disable()
    before = gc.mem_alloc()
    for _ in range(20):
        fn(arg)
    after = gc.mem_alloc()
    gc.enable()
    return (after - before) // 20


def main(model_path, rows_path):
    net = edgenn.load(model_path)
    codes = []
    first = None
    with open(rows_path) as f:
        for line in f:
            row = [int(v) for v in line.split(",")]
            if first is None:
                first = row
            codes.append("".join("%02x" % c for c in net.quantize_input(row)))
    dyadic = sum(1 for d in range(net.n_inputs) if net._q[2 * d] & 0xFFFFF)  # A of in_scale = A / 2**S
    print('{"fixed_point_features": %d, "kernel": "%s"}' % (dyadic, net.kernel))
    print('{"alloc_quantize_input": %d, "alloc_predict": %d}'
          % (allocated(net.quantize_input, first), allocated(net.predict, first)))
    for c in codes:
        print('{"codes": "%s"}' % c)


argv = globals().get("ARGV") or sys.argv  # ARGV: set by wasm_run.mjs (no sys.argv there)
main(argv[1], argv[2])
