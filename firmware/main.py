# Runs at power-on: the edgenn prediction server on the serial console (see edgenn_server.py).
# Ctrl-C stops it and leaves the REPL; a soft reset (Ctrl-D) starts it again.
import edgenn_server

edgenn_server.main()
