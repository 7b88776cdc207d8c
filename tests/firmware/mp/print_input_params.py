# Runs INSIDE MicroPython: prints the input parameters the runtime derives at load (net._q, two ints
# per feature) as one JSON line, for the machine-code tests of edgenn_viper.codes.
# usage: print_input_params.py MODEL.enn
import sys

import edgenn

net = edgenn.load(sys.argv[1])
print('{"q": [%s]}' % ", ".join(str(v) for v in net._q))
