# Runs INSIDE the MicroPython unix port (micropython.mem_peak is not in every build). For every model
# in JOBFILE: the bytes allocated while loading it (peak minus the current total before the load;
# both counters include garbage, so this is an upper bound). Prints one JSON line per model.
# usage: check_memory.py DIR JOBFILE
import gc
import json
import os
import sys

import micropython

import edgenn


def main(directory, names):
    for name in names:
        path = directory + "/" + name
        size = os.stat(path)[6]
        gc.collect()
        before = micropython.mem_current()
        net = edgenn.load(path)
        peak = micropython.mem_peak()
        print(json.dumps({"model": name, "bytes": size, "load_peak": peak - before, "kernel": net.kernel}))
        net = None


if __name__ == "__main__":
    with open(sys.argv[2]) as f:
        main(sys.argv[1], [line.strip() for line in f if line.strip()])
