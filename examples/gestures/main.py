# edgenn gesture example: an accelerometer, 32-sample windows, a model that computes its own features.
#
# On an ESP32 it reads an MPU6050 over I2C (SCL GPIO 22, SDA GPIO 21, +-8 g = 4096 LSB per g) at
# 50 Hz. Without `machine` (the virtual board, the unix port) it simulates an IMU performing gestures
# (idle, shake, circle, punch, tap), each in a random orientation, amplitude and speed, with noise,
# faster than real time (a sample every SIM_PERIOD_MS), and adds the true gesture to every prediction
# so you can watch the model at work. A file gesture.txt on the board naming one gesture makes the
# simulator perform only that one (what you do with a real IMU while `edgenn record` runs).
#
# Fault mode (anomaly detection, docs/anomaly-tutorial.md): a file machine.txt on the board makes the
# simulated IMU a sensor bolted to a running motor and fan instead, sampled at 1 kHz. It names the
# machine's state, or several separated by commas, which the simulator then runs in turn for
# MACHINE_SECONDS each: normal, imbalance (the once-per-revolution line grows), bearing (a
# high-frequency ringing, pulsed by the defect), looseness (an impact every revolution), stall (the
# rotor stops; the motor hums at 100 Hz). With an anomaly model on the board (edgenn train --task
# anomaly), run mode prints the score and the flag of every window instead of a class.
#
# Modes (see README.md):
#   main.py                  model.enn on the board: predict every window, one JSON line each
#                            (`edgenn monitor` shows them; an anomaly model: its score and flag);
#                            no model yet: stream samples
#   main.py stream           one sample per line, "x,y,z" after a "# x,y,z" header: what
#                            `edgenn record --window 32` turns into labelled windows
#   main.py record N [G,..]  N simulated windows per gesture as a CSV (x0..x31,y0..,z0..,label);
#                            machine states instead of gestures: MACHINE_WINDOW-sample machine windows
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
MACHINE_STATES = ("normal", "imbalance", "bearing", "looseness", "stall")
MACHINE_RATE_HZ = 1000  # the simulated machine's sampling rate
MACHINE_WINDOW = 64  # samples per window in `record` mode for machine states (64 ms)
MACHINE_SECONDS = 1  # simulated seconds per state when machine.txt names several


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

    names = GESTURES

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


class SimulatedMachine:
    """An IMU on a motor-driven fan at 1 kHz; read() -> [x, y, z] int16 readings, like MPU6050.

    Speed (15-30 rev/s) and load drift slowly; the vibration is the 1x and 2x lines of the rotation,
    the fan's blade pass (6x), broadband noise that grows with load, sensor noise and gravity. Every
    line is a phase accumulator, so the signal stays continuous however the windows are cut. A fault
    has a severity drawn when its state starts (0.3-1: from subtle to plain)."""

    names = MACHINE_STATES

    def __init__(self, states, seed=1, seconds=MACHINE_SECONDS):
        random.seed(seed)
        self.states = states
        self.every = seconds * MACHINE_RATE_HZ  # samples per state (0: until _state is called)
        self.sample = [0, 0, 0]
        self.n = 0  # samples so far
        self.k = 0  # the state's position in `states`
        self.speed = 22.0
        self.load = 0.5
        self.phase = [0.0, 0.0, 0.0, 0.0]  # rotation, bearing carrier, bearing defect, mains hum
        self.ring = 0.0  # the looseness impact's ringing, decaying
        self.truth = -1
        self._state(0)

    def _state(self, k):
        self.truth = self.states[k % len(self.states)]
        self.severity = 0.3 + 0.7 * random.random()
        self.carrier = 180.0 + 240.0 * random.random()  # the housing resonance a defect rings, Hz
        self.order = 3.3 + 0.6 * random.random()  # defect frequency / shaft speed

    def read(self):
        n = self.n
        self.n = n + 1
        if self.every and n and n % self.every == 0:  # the next state (a new severity if the same)
            self.k += 1
            self._state(self.k)
        if n % 100 == 0:  # speed and load drift (a variable-speed drive, a changing load)
            self.speed = min(30.0, max(15.0, self.speed + 1.5 * _gauss()))
            self.load = min(1.0, max(0.0, self.load + 0.1 * _gauss()))
        dt = 1.0 / MACHINE_RATE_HZ
        state, sev, p = self.truth, self.severity, self.phase
        x = y = z = 0.0
        noise = 0.004
        if state != 4:  # the rotor turns
            p[0] = (p[0] + 6.283185307 * self.speed * dt) % 6.283185307
            one = 0.05 + 0.07 * self.load
            if state == 1:  # imbalance: the 1x line 1.6-4x stronger
                one *= 1.6 + 2.4 * sev
            two = one * 0.25 * (1 + 2.5 * sev * (state == 3))
            blade = 0.01 + 0.02 * self.load
            r = p[0]
            x = one * math.sin(r) + 0.7 * two * math.sin(2 * r + 0.5) + 0.5 * blade * math.sin(6 * r)
            y = 0.8 * one * math.cos(r) + two * math.sin(2 * r + 1.9) + 0.5 * blade * math.cos(6 * r + 0.3)
            z = 0.25 * one * math.sin(r + 1.0) + 0.6 * two * math.sin(2 * r) + blade * math.sin(6 * r + 1.2)
            noise += 0.008 + 0.012 * self.load
            if state == 2:  # bearing: a resonance rung at the defect frequency
                p[1] = (p[1] + 6.283185307 * self.carrier * dt) % 6.283185307
                p[2] = (p[2] + 6.283185307 * self.order * self.speed * dt) % 6.283185307
                b = (0.02 + 0.08 * sev) * 0.5 * (1 + math.sin(p[2])) * math.sin(p[1])
                x += 0.7 * b
                y += b
                z += 0.5 * b
            if state == 3:  # looseness: an impact once per revolution, ringing for a few ms
                if r < 6.283185307 * self.speed * dt:
                    self.ring = 0.15 + 0.6 * sev
                i = self.ring * math.sin(6.283185307 * 260.0 * (r / 6.283185307) / self.speed)
                self.ring *= 0.78  # ~4 ms decay at 1 kHz
                x += 0.4 * i
                y += i
                z += 0.3 * i
        else:  # stall: no rotation; the locked motor hums at twice the mains frequency
            p[3] = (p[3] + 6.283185307 * 100.0 * dt) % 6.283185307
            h = (0.01 + 0.03 * sev) * math.sin(p[3])
            x, y, z = h, h, 0.4 * h
        g = (0.07, -0.12, 0.99)  # gravity: the sensor sits a little tilted
        v3 = (x, y, z)
        for i in range(3):
            v = g[i] + v3[i] + noise * _gauss()
            v = int(v * LSB_PER_G + (0.5 if v >= 0 else -0.5))
            self.sample[i] = -32768 if v < -32768 else (32767 if v > 32767 else v)
        return self.sample


def _machine_states():
    # the states machine.txt names (comma-separated), or None without it
    try:
        with open("machine.txt") as f:
            text = f.read().strip()
    except OSError:
        return None
    return [MACHINE_STATES.index(w.strip()) for w in text.split(",") if w.strip() in MACHINE_STATES] or [0]


def open_imu():
    """(read, wait, simulator or None): the MPU6050 on a board, the simulator elsewhere."""
    try:
        import machine

        i2c = machine.I2C(0, scl=machine.Pin(I2C_SCL), sda=machine.Pin(I2C_SDA), freq=400000)
        imu = MPU6050(i2c)
        return imu.read, lambda: time.sleep_ms(PERIOD_MS), None
    except (ImportError, AttributeError, OSError, ValueError):
        states = _machine_states()
        if states is not None:
            sim = SimulatedMachine(states)
            return sim.read, lambda: time.sleep_ms(1) if sim.n % 4 == 0 else None, sim
        only = None
        try:
            with open("gesture.txt") as f:
                only = [GESTURES.index(f.read().strip())]
        except (OSError, ValueError):
            pass
        sim = SimulatedIMU(only)
        return sim.read, lambda: time.sleep_ms(SIM_PERIOD_MS), sim


def record(n, names):
    # n simulated windows per gesture (or machine state) as a training CSV (axis-major columns, then
    # the label)
    if names and names[0] in MACHINE_STATES:
        kinds = [MACHINE_STATES.index(g) for g in names]
        window, sim = MACHINE_WINDOW, SimulatedMachine(kinds, seed=7, seconds=0)
    else:
        kinds = [GESTURES.index(g) for g in names] if names else list(range(len(GESTURES)))
        window, sim = WINDOW, SimulatedIMU(kinds, seed=7)
    print(",".join(["%s%d" % (a, t) for a in "xyz" for t in range(window)] + ["label"]))
    cols = [[0] * window for _ in range(3)]
    for i in range(n * len(kinds)):
        if sim.names is MACHINE_STATES:
            sim._state(i)  # one state per window, in turn
        for t in range(window):
            s = sim.read()
            for a in range(3):
                cols[a][t] = s[a]
        print(",".join(str(v) for c in cols for v in c) + "," + sim.names[sim.truth])


def stream():
    read, wait, _ = open_imu()
    print("# x,y,z")
    while True:
        s = read()
        print("%d,%d,%d" % (s[0], s[1], s[2]))
        wait()


def run():
    import gc

    # A collection first, as firmware/main.py does: compiling this script left garbage all over the
    # heap, and the runtime's modules loaded among it would leave the model no block large enough.
    # Then collections every 2 KB while the runtime loads (as the prediction server imports it): its
    # own import garbage goes as it comes, and the runtime packs into the first GC area.
    gc.collect()
    gc.threshold(2048)
    import edgenn

    gc.threshold(-1)

    net = edgenn.load("model.enn")
    win = edgenn.Window(net, STRIDE)
    read, wait, sim = open_imu()
    anomaly = net.task == "anomaly"
    print('{"ready": true, "sensor": "%s", "model": "%s", "frontend": "%s"%s}'
          % ("simulated" if sim else "mpu6050", net.name, net.frontend,
             ', "threshold": %d' % net.threshold if anomaly else ""))
    start = time.ticks_ms()
    while True:
        s = read()
        t0 = time.ticks_us()
        k = win.push(s)  # the ring buffer; None until a window is due
        us = time.ticks_diff(time.ticks_us(), t0)
        if k is not None:
            truth = ', "truth": "%s"' % sim.names[sim.truth] if sim else ""
            t_ms = time.ticks_diff(time.ticks_ms(), start)
            if anomaly:  # an anomaly model: push returned the window's integer score
                print('{"t_ms": %d, "score": %d, "anomaly": %s, "us": %d%s}'
                      % (t_ms, k, "true" if k > net.threshold else "false", us, truth))
            else:
                print('{"t_ms": %d, "class": %d, "label": "%s", "us": %d%s}'
                      % (t_ms, k, net.label(k), us, truth))
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
