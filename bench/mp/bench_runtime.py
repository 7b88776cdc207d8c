# Runs INSIDE the MicroPython unix port (bench/runtime.py drives it). For every model of the job:
# microseconds per inference of edgenn's viper and portable kernels (forward_q on input codes) and of
# a float MLP written the way pure-Python MicroPython MLP libraries are (lists of lists, math.exp),
# plus the peak heap while loading. Prints one JSON line per model.
# usage: bench_runtime.py JOBFILE   (lines: PATH.enn SIZES, e.g. "/tmp/m.enn 64,32,10")
import gc
import json
import math
import sys
import time

import micropython

import edgenn


def float_mlp(sizes, seed):
    # weights as lists of lists of floats, like MicroMLP-style libraries
    x = seed
    layers = []
    for i in range(len(sizes) - 1):
        rows = []
        for _ in range(sizes[i + 1]):
            row = []
            for _ in range(sizes[i]):
                x = (x * 1103515245 + 12345) & 0x3FFFFFFF
                row.append((x / 0x3FFFFFFF - 0.5) * 0.2)
            rows.append(row)
        layers.append((rows, [0.01] * sizes[i + 1]))
    return layers


def float_forward(layers, inputs):
    values = inputs
    last = len(layers) - 1
    for i, (rows, biases) in enumerate(layers):
        out = []
        for row, b in zip(rows, biases):
            s = b
            for w, v in zip(row, values):
                s += w * v
            out.append(s if i == last else 1.0 / (1.0 + math.exp(-s)))
        values = out
    return values


class FloatRunner:
    def __init__(self, layers):
        self.layers = layers

    def __call__(self, inputs):
        return float_forward(self.layers, inputs)


def per_call_us(fn, arg, min_us=200000):
    fn(arg)
    n = 1
    while True:
        t0 = time.ticks_us()
        for _ in range(n):
            fn(arg)
        dt = time.ticks_diff(time.ticks_us(), t0)
        if dt >= min_us:
            return dt / n
        n *= 2 if dt > min_us // 10 else 8


def best_of(fn, arg, repeats=3):
    return min(per_call_us(fn, arg) for _ in range(repeats))


def main(jobs):
    for path, sizes_text in jobs:
        sizes = [int(s) for s in sizes_text.split(",")]
        macs = 0
        for i in range(len(sizes) - 1):
            macs += sizes[i] * sizes[i + 1]
        result = {"model": path, "sizes": sizes, "macs": macs}
        for kernel in edgenn.KERNELS:
            gc.collect()
            before = micropython.mem_current()
            net = edgenn.load(path, kernel)
            result["load_peak_bytes"] = micropython.mem_peak() - before
            xq = bytearray(net.n_inputs)
            for j in range(net.n_inputs):
                xq[j] = (j * 37 + 11) & 0xFF
            result[kernel + "_us"] = best_of(net.forward_q, xq)
            net = None
        mlp = float_mlp(sizes, 12345)
        inputs = [0.1 * j for j in range(sizes[0])]
        result["float_us"] = best_of(FloatRunner(mlp), inputs, 2)
        print(json.dumps(result))


if __name__ == "__main__":
    with open(sys.argv[1]) as f:
        main([line.split() for line in f if line.strip()])
