# Runs INSIDE MicroPython. Input codes from the bits of the features: reads VALUES (raw little-endian
# values of TYPECODE, n_inputs per row) a row at a time into one array and prints the codes of every
# row as hex, one line per row. Every quantize_input runs under micropython.heap_lock() (an allocation
# or a long int on a 31-bit build raises MemoryError), except for "d": a float64 that is not a float32
# value takes golden's float formula (float objects). With "list", each row also goes in as a list of
# numbers (also under heap_lock) and must give the same codes. Then NaN and infinity must raise.
# usage: check_input_codes.py MODEL.enn VALUES.bin TYPECODE KERNEL [list]
import array
import sys

import micropython

import edgenn

_SIZE = {"f": 4, "d": 8, "h": 2, "i": 4}


def main(model_path, values_path, typecode, kernel, with_list):
    net = edgenn.load(model_path, kernel)
    n = net.n_inputs
    buf = array.array(typecode, bytes(_SIZE[typecode] * n))
    row = [0] * n
    hexrow = bytearray(2 * n)
    saved = bytearray(n)
    digits = b"0123456789abcdef"
    rows = 0
    list_rows = 0
    list_mismatches = 0
    lock = typecode != "d"
    net.quantize_input(row)  # the first list call makes the list buffer
    with open(values_path, "rb") as f:
        while f.readinto(buf) == len(hexrow) // 2 * _SIZE[typecode]:
            if lock:
                micropython.heap_lock()
            try:
                xq = net.quantize_input(buf, typecode)
            finally:
                if lock:
                    micropython.heap_unlock()
            for d in range(n):
                saved[d] = xq[d]
                hexrow[2 * d] = digits[xq[d] >> 4]
                hexrow[2 * d + 1] = digits[xq[d] & 15]
            print(hexrow.decode())
            if with_list:
                for d in range(n):
                    row[d] = buf[d]
                if lock:
                    micropython.heap_lock()
                try:
                    xq = net.quantize_input(row)
                finally:
                    if lock:
                        micropython.heap_unlock()
                for d in range(n):
                    if xq[d] != saved[d]:
                        list_mismatches += 1
                list_rows += 1
            rows += 1
    refused = 0
    if typecode in "fd":
        for bad in (float("nan"), float("inf"), -float("inf")):
            buf[n - 1] = bad
            try:
                net.quantize_input(buf, typecode)
            except ValueError:
                refused += 1
    print('{"rows": %d, "kernel": "%s", "list_rows": %d, "list_mismatches": %d, "refused": %d}'
          % (rows, net.kernel, list_rows, list_mismatches, refused))


argv = globals().get("ARGV") or sys.argv  # ARGV: set by wasm_run.mjs (no sys.argv there)
main(argv[1], argv[2], argv[3], argv[4], len(argv) > 5 and argv[5] == "list")
