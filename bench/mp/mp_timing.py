# Runs INSIDE the MicroPython unix port: the timing helpers of the benchmarks in bench/mp/
# (bench_predict.py, bench_heap.py). x86-64 timings: the ratios measured in one run are the point.
import gc
import time


def window_us(fn, rows, arg2, min_us):
    # microseconds per call over every row in turn, repeated for at least min_us
    n = 0
    t0 = time.ticks_us()
    while True:
        if arg2 is None:
            for r in rows:
                fn(r)
        else:
            for r in rows:
                fn(r, arg2)
        n += len(rows)
        dt = time.ticks_diff(time.ticks_us(), t0)
        if dt >= min_us:
            return dt / n


def timings(cases, windows=40, min_us=25000):
    # The candidates take turns, one window each, `windows` times; each keeps its fastest window.
    # Interleaving gives every candidate the same share of a shared machine's quiet moments.
    best = [None] * len(cases)
    for _ in range(windows):
        for i, (fn, rows, arg2) in enumerate(cases):
            gc.collect()  # the forest's garbage must not make another candidate pay for its collection
            us = window_us(fn, rows, arg2, min_us)
            if best[i] is None or us < best[i]:
                best[i] = us
    return best


def nothing(r, a=None):
    return 0


def allocated(fn, rows, arg2=None):
    gc.collect()
    before = gc.mem_alloc()
    for r in rows:
        if arg2 is None:
            fn(r)
        else:
            fn(r, arg2)
    return (gc.mem_alloc() - before) / len(rows)
