# edgenn sensor loop: read a sensor, predict, print one JSON line per window (`edgenn monitor` shows them).
#
# On an ESP32 it samples an analog input (machine.ADC on GPIO 34, 0-3.3 V) at 1 kHz. Without `machine`
# (the virtual board, the unix port) it simulates the same kind of signal: a machine that is idle, hums
# (a sine wave) or knocks (spikes), switching state every few seconds, so the predictions can be
# checked against the truth it prints alongside.
#
# The model takes 4 features of a 32-sample window: mean, standard deviation, peak-to-peak, mean |step|.
# Make one from simulated recordings (see README.md):
#   micropython main.py record 900 > sensor.csv      # 300 windows per state, CSV with a `state` column
import math
import random
import sys
import time

WINDOW = 32
PERIOD_US = 1000  # 1 kHz sampling
ADC_PIN = 34
STATES = ("idle", "hum", "knock")
SECONDS_PER_STATE = 3

_window = [0.0] * WINDOW
_feats = [0.0] * 4


class SimulatedSensor:
    # Pseudo-random but reproducible: MicroPython's random is the same generator on every port.
    def __init__(self, seed=1):
        random.seed(seed)
        self.t = 0
        self.state = 0
        self.amp = 0.5
        self._rand = random.random

    def read(self):
        self.t += 1
        noise = (self._rand() - 0.5) * 0.04
        if self.state == 0:  # idle: flat, a little noise
            return 1.0 + noise
        if self.state == 1:  # hum: 50 Hz sine at 1 kHz sampling, random amplitude
            return 1.2 + self.amp * math.sin(self.t * 0.314159) + noise
        if self._rand() < 0.08:  # knock: sparse spikes
            return 1.0 + self.amp * 3 + noise
        return 1.0 + noise

    def set_state(self, state):
        self.state = state
        self.amp = 0.2 + 0.6 * self._rand()


def features(window):
    n = len(window)
    total = 0.0
    lo = hi = window[0]
    step = 0.0
    prev = window[0]
    for v in window:
        total += v
        lo = v if v < lo else lo
        hi = v if v > hi else hi
        step += abs(v - prev)
        prev = v
    mean = total / n
    var = 0.0
    for v in window:
        var += (v - mean) * (v - mean)
    _feats[0] = mean
    _feats[1] = math.sqrt(var / n)
    _feats[2] = hi - lo
    _feats[3] = step / (n - 1)
    return _feats


def fill(read, wait):
    for i in range(WINDOW):
        _window[i] = read()
        wait()


def record(n_rows):
    # Prints a training CSV from the simulator: n_rows windows, a third of them per state.
    sensor = SimulatedSensor(seed=7)
    print("mean,std,p2p,step,state")
    for i in range(n_rows):
        state = i % 3
        sensor.set_state(state)
        fill(sensor.read, _no_wait)
        f = features(_window)
        print("%.6f,%.6f,%.6f,%.6f,%s" % (f[0], f[1], f[2], f[3], STATES[state]))


def _no_wait():
    pass


def run():
    import gc

    # Collections every 2 KB while the runtime loads (as the prediction server imports it): its import
    # garbage goes as it comes, and the runtime packs into the first GC area, leaving the model room.
    gc.collect()
    gc.threshold(2048)
    import edgenn

    gc.threshold(-1)
    net = edgenn.load("model.enn")
    fleet = None
    try:  # a board joined to a fleet (`edgenn fleet join`) also publishes each prediction over MQTT
        import edgenn_fleet

        fleet = edgenn_fleet.start(net=net)  # None when this board never joined
    except ImportError:
        pass
    try:
        import machine

        adc = machine.ADC(machine.Pin(ADC_PIN))  # AttributeError on ports without an ADC (unix)
        adc.atten(machine.ADC.ATTN_11DB)  # 0..3.3 V

        def read():
            return adc.read_uv() / 1000000

        def wait():
            time.sleep_us(PERIOD_US)

        sensor = None
        source = "adc%d" % ADC_PIN
    except (ImportError, AttributeError):
        sensor = SimulatedSensor()
        read = sensor.read

        def wait():
            pass

        source = "simulated"
    print('{"ready": true, "sensor": "%s", "model": "%s"}' % (source, net.name))
    start = time.ticks_ms()
    while True:
        now = time.ticks_diff(time.ticks_ms(), start)
        if sensor is not None:
            sensor.set_state((now // 1000 // SECONDS_PER_STATE) % 3)
            time.sleep_ms(WINDOW * PERIOD_US // 1000)  # keep the simulated clock near real time
        fill(read, wait)
        f = features(_window)
        t0 = time.ticks_us()
        k = net.predict(f)
        us = time.ticks_diff(time.ticks_us(), t0)
        if fleet is not None:
            edgenn_fleet.publish(k, edgenn_fleet.SRC_WINDOW)  # queued, nothing allocated
            edgenn_fleet.step()  # a few ms of MQTT: connect, updates, send the queue
        truth = ', "truth": "%s"' % STATES[sensor.state] if sensor is not None else ""
        print('{"t_ms": %d, "class": %d, "label": "%s", "us": %d%s}' % (now, k, net.labels[k], us, truth))


if len(sys.argv) > 2 and sys.argv[1] == "record":
    record(int(sys.argv[2]))
else:
    run()
