# Runs at power-on: the edgenn prediction server on the serial console (see edgenn_server.py).
# Ctrl-C stops it and leaves the REPL; a soft reset (Ctrl-D) starts it again.
# A collection first: what booting left behind goes before the server's long-lived objects land among
# it, so the model gets the largest free blocks (deploy checks a new model with the heap in this state).
import gc

gc.collect()
import edgenn_server

edgenn_server.main()
