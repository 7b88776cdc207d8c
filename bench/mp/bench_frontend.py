# Runs INSIDE the MicroPython unix port (bench/frontend.py drives it). Microseconds per call of the
# sensor front end (net.features on a raw window) and of the network (forward_q on input codes) for
# every model of the job, with the viper and the portable kernels. One JSON line per model.
# usage: bench_frontend.py JOBFILE   (lines: PATH.enn ROWFILE)
import gc
import json
import sys

from bench_runtime import best_of  # beside this script: the same timing loop as the runtime benchmark

import edgenn


def run_frontend(net):
    net._run_frontend(net._win, net._h)


def main(jobs):
    for path, row_path in jobs:
        with open(row_path) as f:
            row = [int(v) for v in f.readline().split(",")]
        result = {"model": path}
        for kernel in edgenn.KERNELS:
            gc.collect()
            net = edgenn.load(path, kernel)
            if net.frontend is not None:
                # the front end alone (the window already in its buffer), then with the copy of the
                # readings into it (what features() adds)
                net.features(row)
                result[kernel + "_frontend_us"] = best_of(run_frontend, net)
                result[kernel + "_features_us"] = best_of(net.features, row)
                codes = bytearray(net.quantize_input(row))
            else:
                codes = bytearray(net.n_inputs)
            result[kernel + "_network_us"] = best_of(net.forward_q, codes)
            # the whole of predict() on a raw window: input (front end or scaling) + network
            result[kernel + "_predict_us"] = best_of(net.predict, row[: net.n_raw])
            net = None
        print(json.dumps(result))


with open(sys.argv[1]) as f:
    main([line.split() for line in f if line.strip()])
