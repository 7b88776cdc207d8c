# Runs INSIDE MicroPython. An anomaly model (format version 3) against the golden integer scores:
# score_q on input codes, score/predict on raw rows (float32 arrays, or integer windows through the
# front end and a Window), every call under micropython.heap_lock(), and the score kernel alone at
# the largest score the overflow proof admits. Prints one JSON line.
# usage: check_anomaly.py DIR NAME KERNEL
import array
import json
import sys

import micropython

import edgenn

try:
    import edgenn_viper
except Exception:
    edgenn_viper = None


def locked(fn, a, b=None, c=None, d=None):
    # fixed arguments (a *args call may build its argument array on the heap)
    micropython.heap_lock()
    try:
        if b is None:
            return fn(a)
        if c is None:
            return fn(a, b)
        return fn(a, b, c, d)
    finally:
        micropython.heap_unlock()


def ints(path):
    with open(path) as f:
        return [[int(v) for v in line.split(",")] for line in f if line.strip()]


def main(directory, name, kernel):
    stem = directory + "/" + name
    net = edgenn.load(stem + ".enn", kernel)
    n = net.n_inputs
    report = {"model": name, "kernel": net.kernel, "task": net.task, "threshold": net.threshold,
              "rows": 0, "mismatches": 0, "first": None, "flag_mismatches": 0}
    want = ints(stem + ".golden.txt")  # per line: score of the codes row, score of the raw row
    with open(stem + ".codes.bin", "rb") as f:
        codes = f.read()
    xq = bytearray(n)
    for r in range(len(codes) // n):
        xq[:] = codes[r * n:(r + 1) * n]
        s = locked(net.score_q, xq)
        report["rows"] += 1
        if s != want[r][0]:
            report["mismatches"] += 1
            report["first"] = report["first"] or ["codes", r, s, want[r][0]]
    raw = ints(stem + ".raw.txt") if net.frontend else None
    if raw is None:
        with open(stem + ".raw.bin", "rb") as f:
            flat = f.read()
        a = array.array("f", bytes(4 * n))
        rows = len(flat) // (4 * n)
    else:
        rows = len(raw)
        w = edgenn.Window(net, net.window)
    for r in range(rows):
        if raw is None:
            a[:] = array.array("f", flat[4 * n * r:4 * n * (r + 1)])
            s = locked(net.score, a, "f")
            flag = locked(net.predict, a, "f")
        else:
            s = locked(net.score, raw[r])
            flag = locked(net.predict, raw[r])
            got = None
            for i in range(net.window):
                sample = [raw[r][ax * net.window + i] for ax in range(net.axes)]
                got = locked(w.push, sample)
            if got != s:
                report["mismatches"] += 1
                report["first"] = report["first"] or ["window", r, got, s]
        report["rows"] += 1
        if s != want[r][1]:
            report["mismatches"] += 1
            report["first"] = report["first"] or ["raw", r, s, want[r][1]]
        if flag != (want[r][1] > net.threshold):
            report["flag_mismatches"] += 1
    # the kernel alone at the proof's limit: u = 0, r = code 255, m = 255, sum(c + e) = 16512
    u = bytearray(8)
    q = array.array("b", [127] * 8)
    wt = array.array("H", [1032, 1032, 255] * 8)
    kern = edgenn._score_portable if kernel == "portable" else edgenn_viper.score
    report["max_score"] = locked(kern, u, q, wt, 8)
    print(json.dumps(report))


if __name__ == "__main__":
    argv = globals().get("ARGV") or sys.argv  # ARGV: set by wasm_run.mjs (no sys.argv there)
    main(argv[1], argv[2], argv[3])
