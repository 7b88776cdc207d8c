# Runs INSIDE MicroPython. The sensor front end of a .enn model (format version 2) on raw windows:
# prints the integer features and input codes of every row, the classes a Window(net, STRIDE) gives
# for all rows' samples streamed one after another, and what one features/predict/push allocates
# (under heap_lock where LOCK is "lock": a MemoryError there is reported, not raised).
# usage: check_frontend.py MODEL.enn ROWS.txt KERNEL STRIDE LOCK
import gc
import sys

import micropython

import edgenn


def allocated(fn, arg, lock):
    fn(arg)
    gc.collect()
    if lock:
        micropython.heap_lock()
        try:
            for _ in range(5):
                fn(arg)
        except MemoryError:
            return -1
        finally:
            micropython.heap_unlock()
        return 0
    gc.disable()
    before = gc.mem_alloc()
    for _ in range(5):
        fn(arg)
    after = gc.mem_alloc()
    gc.enable()
    return (after - before) // 5


def main(model_path, rows_path, kernel, stride, lock):
    net = edgenn.load(model_path, kernel)
    print('{"kernel": "%s", "frontend": "%s", "n_raw": %d, "n_inputs": %d, "axes": %d, "window": %d}'
          % (net.kernel, net.frontend, net.n_raw, net.n_inputs, net.axes, net.window))
    rows = []
    with open(rows_path) as f:
        for line in f:
            rows.append([int(v) for v in line.split(",")])
    for row in rows:
        feats = net.features(row)
        codes = net.quantize_input(row)
        print('{"f": [%s], "x": "%s"}' % (",".join(str(v) for v in feats),
                                          "".join("%02x" % c for c in codes)))
    n_ax = net.axes
    w = net.window
    samples = []
    for row in rows:
        for t in range(w):
            samples.append(tuple(row[a * w + t] for a in range(n_ax)))
    win = edgenn.Window(net, stride)
    for i in range(len(samples)):
        k = win.push(samples[i])
        if k is not None:
            print('{"push": %d, "class": %d}' % (i, k))
    win.reset()
    pushes = samples[:2 * w + 3]

    def push_all(_):
        for s in pushes:
            win.push(s)

    row = rows[0]
    print('{"alloc_features": %d, "alloc_predict": %d, "alloc_push": %d}'
          % (allocated(net.features, row, lock), allocated(net.predict, row, lock),
             allocated(push_all, None, lock)))


argv = globals().get("ARGV") or sys.argv  # ARGV: set by wasm_run.mjs (no sys.argv there)
main(argv[1], argv[2], argv[3], int(argv[4]), argv[5] == "lock")
