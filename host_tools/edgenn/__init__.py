"""edgenn: train a small MLP with NumPy, quantize it to integers, run it on an ESP32 under MicroPython."""

__version__ = "0.1.0"
