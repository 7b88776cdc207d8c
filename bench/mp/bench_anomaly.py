# Runs INSIDE the MicroPython unix port (bench/anomaly.py drives it): the anomaly score net.score(row)
# of every row, with every kernel, for each model of the job. One JSON line per model.
# usage: bench_anomaly.py JOBFILE   (lines: PATH.enn ROWFILE; a row per line, comma-separated)
import gc
import json
import sys

import edgenn


def number(text):
    return float(text) if "." in text or "e" in text else int(text)


def main(jobs):
    for path, row_path in jobs:
        rows = []
        with open(row_path) as f:
            for line in f:
                if line.strip():
                    rows.append([number(v) for v in line.split(",")])
        result = {"model": path, "scores": {}}
        for kernel in edgenn.KERNELS:
            gc.collect()
            net = edgenn.load(path, kernel)
            result["scores"][kernel] = [net.score(row) for row in rows]
            net = None
        print(json.dumps(result))


with open(sys.argv[1]) as f:
    main([line.split() for line in f if line.strip()])
