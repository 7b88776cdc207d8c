# edgenn gesture example: an accelerometer, 32-sample windows, a model that computes its own features.
#
# On an ESP32 it reads an MPU6050 over I2C (SCL GPIO 22, SDA GPIO 21, +-8 g = 4096 LSB per g) at
# 50 Hz. Without `machine` (the virtual board, the unix port) it simulates an IMU performing gestures
# (idle, shake, circle, punch, tap), each in a random orientation, amplitude and speed, with noise,
# faster than real time (a sample every SIM_PERIOD_MS), and adds the true gesture to every prediction
# so you can watch the model at work. A file gesture.txt on the board naming one gesture makes the
# simulator perform only that one (what you do with a real IMU while `edgenn record` runs).
#
# Modes (see README.md):
#   main.py                  model.enn on the board: predict every window, one JSON line each
#                            (`edgenn monitor` shows them); no model yet: stream samples
#   main.py stream           one sample per line, "x,y,z" after a "# x,y,z" header: what
#                            `edgenn record --window 32` turns into labelled windows
#   main.py record N [G,..]  N simulated windows per gesture as a CSV (x0..x31,y0..,z0..,label)
# The model takes the raw window: edgenn.Window(net, stride) keeps a preallocated ring buffer, and
# every STRIDE samples the model's own front end (integer statistics and FFT bands, computed on the
# board bit-exactly as on the host) and network classify the latest 32 samples.
import math
import random
import sys
import time

WINDOW = 32
STRIDE = 32  # samples between predictions (WINDOW: back-to-back windows)
PERIOD_MS = 20  # 50 Hz
SIM_PERIOD_MS = 2  # the simulator's pace
LSB_PER_G = 4096
GESTURES = ("idle", "shake", "circle", "punch", "tap")
I2C_SCL, I2C_SDA = 22, 21


class MPU6050:
    """The accelerometer of an MPU6050: read() -> the same 3-element list, int16 readings."""

    def __init__(self, i2c, addr=0x68):
        self.i2c = i2c
        self.addr = addr
        self.buf = bytearray(6)
        self.sample = [0, 0, 0]
        i2c.writeto_mem(addr, 0x6B, b"\x00")  # PWR_MGMT_1: wake up
        i2c.writeto_mem(addr, 0x1C, b"\x10")  # ACCEL_CONFIG: +-8 g
        i2c.writeto_mem(addr, 0x1A, b"\x03")  # CONFIG: 44 Hz low-pass

    def read(self):
        self.i2c.readfrom_mem_into(self.addr, 0x3B, self.buf)  # ACCEL_XOUT_H.. big-endian
        b = self.buf
        for a in range(3):
            v = (b[2 * a] << 8) | b[2 * a + 1]
            self.sample[a] = v - 65536 if v & 0x8000 else v
        return self.sample


def _gauss():
    u = random.random() or 1e-9
    return math.sqrt(-2.0 * math.log(u)) * math.cos(6.283185307 * random.random())


def _rotation():
    # a uniformly random rotation (a random unit quaternion)
    u1, u2, u3 = random.random(), random.random(), random.random()
    a, b = math.sqrt(1 - u1), math.sqrt(u1)
    w, x = a * math.sin(6.283185307 * u2), a * math.cos(6.283185307 * u2)
    y, z = b * math.sin(6.283185307 * u3), b * math.cos(6.283185307 * u3)
    return ((1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)),
            (2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)),
            (2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)))


def _accel(kind, u, p):
    # acceleration in g in the gesture's own frame at phase u (0..1 over the gesture)
    inside = 0.0 <= u <= 1.0
    if kind == 1 and inside:  # shake: fast back and forth
        return (math.sin(6.283185307 * p * u), 0.0, 0.0)
    if kind == 2 and inside:  # circle
        return (math.cos(6.283185307 * p * u), math.sin(6.283185307 * p * u), 0.0)
    if kind == 3:  # punch: accelerate, stop hard
        return (1.5 * (math.exp(-((u - 0.35) / 0.08) ** 2) - 0.8 * math.exp(-((u - 0.6) / 0.06) ** 2)), 0.0, 0.0)
    if kind == 4:  # tap: two short spikes
        return (0.0, 0.0, 2.0 * (math.exp(-((u - 0.3) / 0.025) ** 2) + math.exp(-((u - 0.3 - p) / 0.025) ** 2)))
    return (0.0, 0.0, 0.0)


class SimulatedIMU:
    """Performs one gesture per WINDOW samples; read() -> [x, y, z] int16 readings, like MPU6050."""

    def __init__(self, gestures=None, seed=1):
        random.seed(seed)
        self.gestures = gestures or list(range(len(GESTURES)))
        self.next = 0
        self.t = WINDOW
        self.sample = [0, 0, 0]
        self.truth = self.gestures[0]

    def _start(self):
        self.truth = self.gestures[self.next % len(self.gestures)]
        self.next += 1
        k = self.truth
        self.param = (3.0 + 2.0 * random.random(), 1.0 + random.random(), 0.0,
                      0.0, 0.25 + 0.2 * random.random())[k]
        self.speed = 0.6 + random.random()
        self.shift = 0.6 * random.random() - 0.3
        self.amp = 0.5 + 1.5 * random.random()
        self.rot = _rotation()
        down = _rotation()
        self.offset = [down[i][2] + 0.02 * _gauss() for i in range(3)]
        self.t = 0

    def read(self):
        if self.t >= WINDOW:
            self._start()
        u = (self.t / WINDOW - self.shift) * self.speed
        g = _accel(self.truth, u, self.param)
        r = self.rot
        for i in range(3):
            v = self.amp * (r[i][0] * g[0] + r[i][1] * g[1] + r[i][2] * g[2]) + self.offset[i] + 0.03 * _gauss()
            v = int(v * LSB_PER_G + (0.5 if v >= 0 else -0.5))
            self.sample[i] = -32768 if v < -32768 else (32767 if v > 32767 else v)
        self.t += 1
        return self.sample


def open_imu():
    """(read, wait, simulator or None): the MPU6050 on a board, the simulator elsewhere."""
    try:
        import machine

        i2c = machine.I2C(0, scl=machine.Pin(I2C_SCL), sda=machine.Pin(I2C_SDA), freq=400000)
        imu = MPU6050(i2c)
        return imu.read, lambda: time.sleep_ms(PERIOD_MS), None
    except (ImportError, AttributeError, OSError, ValueError):
        only = None
        try:
            with open("gesture.txt") as f:
                only = [GESTURES.index(f.read().strip())]
        except (OSError, ValueError):
            pass
        sim = SimulatedIMU(only)
        return sim.read, lambda: time.sleep_ms(SIM_PERIOD_MS), sim


def record(n, names):
    # n simulated windows per gesture as a training CSV (axis-major columns, then the label)
    kinds = [GESTURES.index(g) for g in names] if names else list(range(len(GESTURES)))
    sim = SimulatedIMU(kinds, seed=7)
    print(",".join(["%s%d" % (a, t) for a in "xyz" for t in range(WINDOW)] + ["label"]))
    cols = [[0] * WINDOW for _ in range(3)]
    for _ in range(n * len(kinds)):
        for t in range(WINDOW):
            s = sim.read()
            for a in range(3):
                cols[a][t] = s[a]
        print(",".join(str(v) for c in cols for v in c) + "," + GESTURES[sim.truth])


def stream():
    read, wait, _ = open_imu()
    print("# x,y,z")
    while True:
        s = read()
        print("%d,%d,%d" % (s[0], s[1], s[2]))
        wait()


def run():
    import edgenn

    net = edgenn.load("model.enn")
    win = edgenn.Window(net, STRIDE)
    read, wait, sim = open_imu()
    print('{"ready": true, "sensor": "%s", "model": "%s", "frontend": "%s"}'
          % ("simulated" if sim else "mpu6050", net.name, net.frontend))
    start = time.ticks_ms()
    while True:
        s = read()
        t0 = time.ticks_us()
        k = win.push(s)  # the ring buffer; None until a window is due
        us = time.ticks_diff(time.ticks_us(), t0)
        if k is not None:
            truth = ', "truth": "%s"' % GESTURES[sim.truth] if sim else ""
            print('{"t_ms": %d, "class": %d, "label": "%s", "us": %d%s}'
                  % (time.ticks_diff(time.ticks_ms(), start), k, net.label(k), us, truth))
        wait()


def main(argv):
    if len(argv) > 2 and argv[1] == "record":
        record(int(argv[2]), argv[3].split(",") if len(argv) > 3 else None)
    elif len(argv) > 1 and argv[1] == "stream":
        stream()
    else:
        try:
            open("model.enn").close()
        except OSError:
            stream()
            return
        run()


main(sys.argv)
