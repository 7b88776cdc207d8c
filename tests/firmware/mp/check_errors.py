# Runs INSIDE MicroPython. Loads every file named in JOBFILE (one per line; the first line is a valid
# model) and prints what happened, then feeds the valid model bad inputs. Every problem must be a
# ValueError with a message, and the interpreter must keep running to print {"alive": true}.
# usage: check_errors.py DIR JOBFILE
import json
import sys

import edgenn


def attempt(case, fn, *args):
    try:
        fn(*args)
    except Exception as e:  # report any exception type: the test asserts it is ValueError
        print(json.dumps({"case": case, "error": type(e).__name__, "message": str(e)}))
        return
    print(json.dumps({"case": case, "error": None, "message": ""}))


def main(directory, names):
    for name in names:
        attempt("load " + name, edgenn.load, directory + "/" + name)
    net = edgenn.load(directory + "/" + names[0])
    n = net.n_inputs
    good = [0.5] * n
    attempt("good predict", net.predict, good)
    for case, features in (("too few", good[:-1]), ("too many", good + [1.0]), ("empty", [])):
        attempt("predict " + case, net.predict, features)
        attempt("forward " + case, net.forward, features)
        attempt("quantize_input " + case, net.quantize_input, features)
    attempt("forward_q too few", net.forward_q, bytearray(n - 1))
    attempt("forward_q too many", net.forward_q, bytearray(n + 1))
    for bad in (float("nan"), float("inf"), -float("inf")):
        features = list(good)
        features[n - 1] = bad
        attempt("predict " + repr(bad), net.predict, features)
        attempt("quantize_input " + repr(bad), net.quantize_input, features)
    attempt("unknown kernel", edgenn.load, directory + "/" + names[0], "fastest")
    print(json.dumps({"kernels": list(edgenn.KERNELS), "default": net.kernel}))
    attempt("good predict after errors", net.predict, good)
    print(json.dumps({"alive": True}))


if __name__ == "__main__":
    argv = globals().get("ARGV") or sys.argv  # ARGV: set by wasm_run.mjs (no sys.argv there)
    with open(argv[2]) as f:
        main(argv[1], [line.strip() for line in f if line.strip()])
