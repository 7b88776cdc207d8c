# Runs INSIDE the MicroPython unix port (bench/heap.py drives it, `-X heapsize=` sets the heap). In one
# process: microseconds per call of forward_q, predict from a list and from an array('f') (and, with
# FOREST=1, an everywhereml random forest's predict on the same rows) on a fresh heap and, in turns, on
# a nearly full one: live 64-byte objects until about 20 KB are free, with one small hole early, where
# the allocator starts every search (it scans from its lowest free block, so a function that calls it
# per inference slows down as the heap fills). One JSON line.
# usage: bench_heap.py MODEL.enn ROWS.txt N_ROWS FOREST   (ROWS: label then features, comma-separated)
import array
import gc
import json
import sys

from mp_timing import allocated, nothing, timings

import edgenn

LEAVE = 20 * 1024  # bytes left free in the filled heap


def fill_heap():
    # 6-tuples: 2 + 6 words = 64 bytes on x86-64, one allocation each, every one holding the one before
    # (no big list to keep them: the heap may have no large block left). Of 32 tuples made first, one
    # is dropped: a 64-byte hole below all the others.
    gc.collect()
    early = [(i, i, i, i, i, i) for i in range(32)]
    n = (gc.mem_free() - LEAVE) // 64
    chain = None
    for i in range(n):
        chain = (chain, i, i, i, i, i)
    early[16] = None
    gc.collect()
    return early, chain, n, gc.mem_free()


KEYS = ("forward_q", "list", "array", "copy", "forest_between_gc", "forest")


def measure(net, lists, arrays, codes, clf, rounds):
    # Rounds of: every case on the fresh heap, fill it, every case again, empty it. Each keeps its
    # fastest window per state; the ratio filled / fresh is the median over the rounds of the two
    # states' best in the same round (neighbours in time share the machine's quiet and busy moments).
    # Short windows (2 ms) dodge other processes. The forest allocates per prediction: in short
    # windows its fastest time is between garbage collections (forest_between_gc); long windows
    # (100 ms) make its collections part of its time, as in an application (forest).
    cases = [
        (net.forward_q, codes, None),
        (net.predict, lists, None),
        (net.predict, arrays, "f"),
        # the part of predict(list) that is the list: its float objects copied into the float64 array
        # the input codes are read from (a subscript and an array store per value, in the runtime)
        (net._values, lists, None),
    ]
    if clf is not None:
        cases.append((clf.predict, lists, None))
    loop = (nothing, lists, None)  # the timing loop itself, subtracted from every figure
    best = {"fresh": {}, "filled": {}}
    out = {"fresh": {}, "filled": {}}
    ratios = {key: [] for key in KEYS}
    gc.collect()
    out["fresh"]["free_bytes"] = gc.mem_free()
    for _ in range(rounds):
        this = {}
        for state in ("fresh", "filled"):
            keep = fill_heap() if state == "filled" else None
            us = timings([loop] + cases, windows=5, min_us=2000)
            us = [t - us[0] for t in us[1:]]
            if clf is not None:
                slow = timings([loop, (clf.predict, lists, None)], windows=1, min_us=100000)
                us.append(slow[1] - slow[0])
            this[state] = us
            for key, t in zip(KEYS, us):
                if key not in best[state] or t < best[state][key]:
                    best[state][key] = t
            if keep is not None:
                out[state]["objects"] = keep[2]
                out[state]["free_bytes"] = keep[3]  # right after filling
            keep = None
            gc.collect()
        for key, fresh, filled in zip(KEYS, this["fresh"], this["filled"]):
            ratios[key].append(filled / fresh)
    for state, b in best.items():
        for key, t in b.items():
            out[state][key + "_us"] = t
    out["ratio"] = {key: sorted(r)[len(r) // 2] for key, r in ratios.items() if r}
    # bytes each allocates per call (fresh heap)
    for key, (fn, rows, arg2) in zip(KEYS, cases):
        out["fresh"][key + "_bytes"] = allocated(fn, rows, arg2)
    return out


def main(model_path, rows_path, n_rows, with_forest):
    net = edgenn.load(model_path)
    lists = []
    with open(rows_path) as f:
        for line in f:
            if len(lists) == n_rows:
                break
            lists.append([float(s) for s in line.split(",")[1:]])
    arrays = [array.array("f", r) for r in lists]
    codes = [bytearray(net.quantize_input(r)) for r in lists]
    clf = None
    if with_forest:
        import forest

        clf = forest.RandomForestClassifier()
    out = measure(net, lists, arrays, codes, clf, 20)
    out["kernel"] = net.kernel
    out["rows"] = len(lists)
    print(json.dumps(out))


main(sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4] == "1")
