# edgenn prediction server, started by the board's main.py (`import edgenn_server; edgenn_server.main()`).
# A module of its own so `edgenn deploy` installs it compiled (.mpy): a board compiling 15 KB of source
# at every boot would need far more heap than the runtime itself.
#
# Line protocol on the serial console (stdin/stdout), one JSON reply per request line:
#   5.1,3.5,1.4,0.2   -> {"class": 0, "label": "setosa", "scores": [57, -48, -128], "us": 412}
#                        (regression models: {"value": 152.3, "scores": [...], "us": ...})
#                        (anomaly models: {"score": 5120, "anomaly": false, "scores": [...], "us": ...};
#                         the q and x replies of an anomaly model end with "score" and "anomaly" too)
#   q 142,201,13,7    -> {"q": [57, -48, -128], "us": 380}   input codes in, int8 outputs out
#   x 5.1,3.5,1.4,0.2 -> {"x": [142, 201, 13, 7], "q": [57, -48, -128], "us": 412}   the board's codes too
#   model OFFSET      -> {"offset", "size", "hex"}: up to 256 bytes of the deployed model file
#   info              -> model name, task, inputs, outputs, labels, kernel, MicroPython version, heap
#   help              -> the list of requests
#   an empty line     -> nothing (a person pressing Enter; the host ends a partial line this way)
#   anything else     -> {"error": "..."} and the server keeps serving
# A value is [+-] digits [. digits] (or . digits), then optionally [eE] [+-] digits: the host's grammar
# (edgenn.device.client.NUMBER); "e", ".", "1e", "nan", "inf" are errors.
# A line ends at CR or LF (CR LF counts once). Lines longer than max_line bytes are rejected with one
# error reply and the rest of that line is discarded. Every byte other than Ctrl-C is just data here:
# Ctrl-C (0x03) is turned into KeyboardInterrupt by the board itself, which stops this server and
# leaves the board at the REPL -- that is how mpremote takes over to deploy. A soft reset (Ctrl-D at
# the REPL) starts the server again.
#
# Steady state: the line buffer, the input codes, the output buffer and the reply buffer are all
# allocated once; a prediction allocates only the parsed floats (heap objects on an ESP32): integer
# values stay small ints, and with a model whose input scaling is dyadic (edgenn quantize makes it so)
# a line of integers (raw sensor readings) allocates nothing at all up to the reply.
import gc
import sys
import time

from micropython import const

PROTOCOL = const(2)  # 2: the `x` request and `float_bits` in info
MODEL_FILE = "model.enn"
BACKUP_FILE = "model.enn.bak"
_CR = const(13)
_LF = const(10)
_COMMA = const(44)
_SPACE = const(32)
_TAB = const(9)
_FIELD_MAX = const(32)  # characters in one value: "-1.2345678901234567e-100" is 24
_AGENT_IDLE_MS = const(20)  # with a fleet agent: the longest it waits for serial input before its next step
_IMPORT_GC_BYTES = const(2048)  # a collection every 2 KB allocated while the runtime is imported

_INF = float("inf")
_NINF = -_INF
_stdin = getattr(sys.stdin, "buffer", sys.stdin)
_stdout = getattr(sys.stdout, "buffer", sys.stdout)


def _find_model():
    # model.enn; else the previous model that deploy keeps as model.enn.bak (a power cut between the
    # two renames of a deploy leaves only that one); else any *.enn a user copied by hand.
    import os

    names = os.listdir()
    for name in (MODEL_FILE, BACKUP_FILE):
        if name in names:
            return name
    for name in sorted(names):
        if name.endswith(".enn"):
            return name
    return None


def _file_size_crc(name):
    # The .enn file ends with its CRC32 (little-endian): the host compares it with a local file.
    import os

    size = os.stat(name)[6]
    with open(name, "rb") as f:
        f.seek(max(0, size - 4))
        b = f.read(4)
    crc = 0
    for i in range(len(b) - 1, -1, -1):
        crc = crc * 256 + b[i]
    return size, "%08x" % crc


def _version():
    v = sys.implementation.version
    return "%d.%d.%d" % (v[0], v[1], v[2])


def _import_runtime():
    # Importing the runtime leaves garbage (the loader's buffers, dicts it outgrew) among the objects it
    # keeps. Left until the heap runs out, that garbage pushes the rest of the runtime into the next GC
    # area, where it breaks up the block a model's layer needs (measured on the esp32 profile: the largest
    # free block after the import was 32,000 B, and 48,128 B, a whole area, with a collection every 2 KB
    # allocated). A few ms of collections at load time pack the runtime into the first area.
    try:
        was = gc.threshold()
        gc.threshold(_IMPORT_GC_BYTES)
    except AttributeError:  # a port built without gc.threshold
        was = None
    try:
        import edgenn
    finally:
        if was is not None:
            gc.threshold(was)
    return edgenn


def _board():
    # the profile a virtual board emulates (the host's boards.profile_name_for); None on a real board
    try:
        import edgenn_vboard
        return edgenn_vboard.board
    except ImportError:
        return None


class Server:
    # model_file: serve this file instead of looking for one (deploy checks a new model this way, in
    # the raw REPL, with the heap as main.py leaves it, before it becomes model.enn).
    def __init__(self, model_file=None):
        self.fleet = None  # the fleet agent (edgenn_fleet), on a board that joined a fleet
        self.net = None
        self.model_file = None
        self.problem = None
        self.warning = None
        self.runtime = None
        try:
            edgenn = _import_runtime()
            self.runtime = getattr(edgenn, "__version__", "?")
        except ImportError as exc:
            self.problem = "edgenn runtime not installed on the board (%s): run `edgenn deploy`" % exc
            edgenn = None
        if edgenn is not None:
            self.model_file = model_file or _find_model()
            if self.model_file is None:
                self.problem = "no model deployed: run `edgenn deploy MODEL.enn --port PORT`"
            else:
                gc.collect()  # the imports' garbage goes first: the model's layers need large blocks
                self.load(edgenn, self.model_file)
                if self.net is None and model_file is None and self.model_file == MODEL_FILE:
                    # model.enn does not load or cannot serve (no heap for it, a damaged file): serve
                    # the previous model rather than nothing, and say so in the banner and in info.
                    failed = self.problem
                    self.problem = None
                    gc.collect()
                    if self.load(edgenn, BACKUP_FILE):
                        self.warning = "%s; serving %s" % (failed, BACKUP_FILE)
                    else:
                        self.problem = failed
                        self.load_size(MODEL_FILE)
        if self.net is None:
            self.attach(None)  # the buffers of a server without a model: it still answers every line
        self.field = bytearray(b" " * _FIELD_MAX)
        self.field_used = 0
        self.one = bytearray(1)

    def attach(self, net):
        # Everything the server derives from a model, so that a model the loader accepted but that
        # cannot serve (it raises here) is a failed load like any other, never a dead server.
        n_in = net.n_inputs if net else 0
        n_out = net.n_outputs if net else 0
        # A model with a sensor front end takes a raw window (n_raw readings), not n_in features.
        n_raw = getattr(net, "n_raw", n_in) if net else 0
        # Room for 24 characters per value ("-1.2345678901234567e-100,") plus a command word.
        self.max_line = max(256, 24 * n_raw + 32)
        self.line = bytearray(self.max_line)
        self.line_mv = memoryview(self.line)
        self.feats = [0.0] * n_raw
        labels = []
        if net:
            import json

            labels = [json.dumps(str(label)).encode() for label in net.labels]
            # The preallocated input-code buffer: quantize_input fills and returns it every time.
            self.xq = net.quantize_input(self.feats)
            self.regress = net.task == "regress"
            self.out_scale = getattr(net, "out_scale", None)
            self.out_zero_point = getattr(net, "out_zero_point", None)
            net.forward_q(self.xq)  # one inference before serving: a model that cannot run fails here
        self.labels = labels
        width = 0
        for label in labels:
            width = max(width, len(label))
        # "-128, " is 6 bytes per output; "255, " 5 per input code (the `x` request echoes them)
        self.reply = bytearray(96 + 48 + width + 6 * n_out + 5 * n_in)  # 48: an anomaly score and flag
        self.n_raw = n_raw
        self.net = net

    def load(self, edgenn, name):
        # True when `name` loaded and is ready to serve; a bad or missing file must not kill the
        # server: report it instead.
        if not self.load_size(name):
            self.model_file = None
            self.problem = "cannot load %s: no such file" % name
            return False
        try:
            self.attach(edgenn.load(name))
        except Exception as exc:
            self.net = None
            self.problem = "cannot load %s: %s" % (name, exc)
            return False
        self.model_file = name
        return True

    def load_size(self, name):
        try:
            self.model_size, self.model_crc = _file_size_crc(name)
        except OSError:
            return False
        self.model_file = name
        return True

    # ---- replies -------------------------------------------------------------------------------

    def send(self, text):
        _stdout.write(text)
        _stdout.write(b"\n")

    def error(self, message):
        import json

        self.send(json.dumps({"error": message}))

    def send_object(self, pairs):
        # JSON object with the keys in this order (MicroPython dicts do not keep insertion order, and
        # a person reading a terminal wants "model" before "heap_free").
        import json

        _stdout.write(b"{")
        first = True
        for key, value in pairs:
            _stdout.write(('"%s": ' if first else ', "%s": ') % key)
            _stdout.write(json.dumps(value))
            first = False
        _stdout.write(b"}\n")

    def banner(self):
        pairs = [("ready", True), ("edgenn", PROTOCOL), ("model", self.net.name if self.net else None),
                 ("max_line", self.max_line)]
        if self.problem:
            pairs.append(("error", self.problem))
        if self.warning:
            pairs.append(("warning", self.warning))
        self.send_object(pairs)

    def info(self):
        net = self.net
        pairs = [("model", net.name if net else None)]
        if net:
            pairs += [("task", net.task), ("inputs", net.n_inputs), ("values", self.n_raw),
                      ("frontend", getattr(net, "frontend", None)), ("outputs", net.n_outputs),
                      ("labels", [str(x) for x in net.labels]), ("kernel", getattr(net, "kernel", "?"))]
        else:
            pairs.append(("error", self.problem))
        if self.warning:
            pairs.append(("warning", self.warning))
        pairs += [("model_file", self.model_file)]
        if self.model_file:
            pairs += [("model_size", self.model_size), ("model_crc32", self.model_crc)]
        gc.collect()
        # 32 on an ESP32 (single-precision floats: input scaling may round differently from the host)
        float_bits = 64 if 1.0 + 2.0 ** -40 != 1.0 else 32
        pairs += [("runtime", self.runtime), ("micropython", _version()), ("platform", sys.platform),
                  ("board", _board()), ("protocol", PROTOCOL), ("float_bits", float_bits),
                  ("max_line", self.max_line), ("heap_free", gc.mem_free()), ("heap_alloc", gc.mem_alloc())]
        self.send_object(pairs)

    def send_model(self, start, end):
        # "model OFFSET" -> up to 256 bytes of the model file as hex, so the host can read back
        # exactly what the board runs without stopping the server.
        if self.model_file is None:
            self.error(self.problem)
            return
        try:
            offset = int(self.line_mv[start:end])
        except ValueError:
            offset = -1
        if offset < 0 or offset > self.model_size:
            self.error("model OFFSET: OFFSET must be 0..%d" % self.model_size)
            return
        import binascii

        with open(self.model_file, "rb") as f:
            f.seek(offset)
            chunk = f.read(256)
        self.send(b'{"offset": %d, "size": %d, "hex": "%s"}' % (offset, self.model_size,
                                                                binascii.hexlify(chunk)))

    def help(self):
        self.send(b'{"help": "send V1,V2,... (one value per input) for a prediction; '
                  b'q C1,C2,... (input codes 0-255) for raw int8 outputs; x V1,V2,... for the input codes and '
                  b'raw outputs of raw values; model OFFSET (read the model file '
                  b'back as hex); info; help"}')

    # ---- parsing -------------------------------------------------------------------------------

    def parse(self, start, end, codes):
        # Fills self.feats (floats) or self.xq (codes 0..255) from line[start:end].
        # Returns None or an error message. Only digits, sign, '.', 'e'/'E', spaces and commas
        # are accepted, so float() never sees "nan", "inf" or "1_0", and each value must be a number
        # by the host's grammar (_number_ok), so "e", ".", "1e" are refused, not read as 0.0 or 1.0
        # by MicroPython's lenient float(). Each value is copied into the
        # space-padded field buffer and converted from there: no slice objects, only the float.
        line = self.line
        field = self.field
        n_in = self.net.n_inputs if codes else self.n_raw
        count = 0
        i = start
        while True:
            while i < end and (line[i] == _SPACE or line[i] == _TAB):
                i += 1
            k = 0  # bytes copied into field (trailing spaces included: float() skips them)
            whole = True  # no '.', 'e' or 'E': an integer (a raw sensor reading) stays an int
            while i < end and line[i] != _COMMA:
                c = line[i]
                if c == 46 or c == 101 or c == 69:
                    whole = False
                if not (48 <= c <= 57 or c == 46 or c == 45 or c == 43 or c == 101 or c == 69
                        or c == _SPACE or c == _TAB):
                    self.field_used = _FIELD_MAX  # the field holds leftovers: blank it all next time
                    if 33 <= c <= 126:
                        return "value %d is not a number" % (count + 1)
                    return "bad byte 0x%02x in value %d" % (c, count + 1)
                if k == _FIELD_MAX:
                    self.field_used = _FIELD_MAX
                    return "value %d is longer than %d characters" % (count + 1, _FIELD_MAX)
                field[k] = c
                k += 1
                i += 1
            if k == 0:
                return "value %d is empty" % (count + 1)
            j = k
            while j < self.field_used:  # blank what the previous, longer value left behind
                field[j] = _SPACE
                j += 1
            self.field_used = k
            if not _number_ok(field, k):
                return "value %d is not a number" % (count + 1)
            if count < n_in:
                try:
                    if codes:
                        v = int(field)
                        if v < 0 or v > 255:
                            return "code %d out of range 0..255" % (count + 1)
                        self.xq[count] = v
                    elif whole:
                        self.feats[count] = int(field)  # small ints are not heap objects
                    else:
                        v = float(field)
                        if v != v or v == _INF or v == _NINF:  # compares allocate nothing
                            return "value %d is not finite" % (count + 1)
                        self.feats[count] = v
                except ValueError:
                    return "value %d is not a number" % (count + 1)
            count += 1
            if i >= end:
                break
            i += 1  # skip the comma
        if count != n_in:
            return "expected %d values, got %d" % (n_in, count)
        return None

    # ---- requests ------------------------------------------------------------------------------

    def handle(self, n):
        line = self.line
        start = 0
        while start < n and (line[start] == _SPACE or line[start] == _TAB):
            start += 1
        while n > start and (line[n - 1] == _SPACE or line[n - 1] == _TAB):
            n -= 1
        if start == n:
            # nothing, not an error: the host ends any partial line (a person's half-typed request, a
            # killed program's) with a bare line end before its first request, and Enter alone in a
            # serial terminal just gives a fresh line, like a shell prompt
            return
        c = line[start]
        if c == 113 and n - start > 2 and line[start + 1] == _SPACE:  # "q C1,C2,..."
            self.predict(start + 2, n, True)
            return
        if c == 120 and n - start > 2 and line[start + 1] == _SPACE:  # "x V1,V2,...": echo the codes
            self.predict(start + 2, n, False, True)
            return
        if c == 109 and n - start > 6 and bytes(self.line_mv[start:start + 6]) == b"model ":
            self.send_model(start + 6, n)
            return
        if n - start == 4:
            word = bytes(self.line_mv[start:n])
            if word == b"info":
                self.info()
                return
            if word == b"help":
                self.help()
                return
        self.predict(start, n, False)

    def predict(self, start, end, codes, echo=False):
        net = self.net
        if net is None:
            self.error(self.problem)
            return
        problem = self.parse(start, end, codes)
        if problem:
            self.error(problem)
            return
        ticks_us = time.ticks_us
        t0 = ticks_us()
        xq = self.xq if codes else net.quantize_input(self.feats)
        out = net.forward_q(xq)
        best = 0
        k = 1
        n_out = len(out)
        while k < n_out:
            if out[k] > out[best]:
                best = k
            k += 1
        us = time.ticks_diff(ticks_us(), t0)
        r = self.reply
        if echo:  # the board's own input codes, then its raw outputs: how the host tells a float
            p = _put(r, 0, b'{"x": [')  # rounding difference in input scaling from a network bug
            k = 0
            while k < len(xq):
                if k:
                    p = _put(r, p, b", ")
                p = _put_int(r, p, xq[k])
                k += 1
            p = _put(r, p, b'], "q": [')
        elif codes:
            p = _put(r, 0, b'{"q": [')
        elif net.task == "anomaly":
            p = _put(r, 0, b'{')
            p = self.put_score(r, p, xq, out)
            p = _put(r, p, b', "scores": [')
        elif self.regress:
            p = _put(r, 0, b'{"value": ')
            # one float (allocates; regression only), to 7 significant digits: the float32 the value
            # came from has no more, and 155.1 reads better than 155.0999999999999
            p = _put(r, p, ("%.7g" % self.value(out)).encode())
            p = _put(r, p, b', "scores": [')
        else:
            p = _put(r, 0, b'{"class": ')
            p = _put_int(r, p, best)
            p = _put(r, p, b', "label": ')
            p = _put(r, p, self.labels[best])
            p = _put(r, p, b', "scores": [')
        k = 0
        while k < n_out:
            if k:
                p = _put(r, p, b", ")
            p = _put_int(r, p, out[k])
            k += 1
        p = _put(r, p, b']')
        if (echo or codes) and net.task == "anomaly":
            p = _put(r, p, b', ')
            p = self.put_score(r, p, xq, out)
        p = _put(r, p, b', "us": ')
        p = _put_int(r, p, us)
        r[p] = 125  # }
        r[p + 1] = _LF
        _stdout.write(r, p + 2)
        if self.fleet is not None:  # queued (nothing allocated); sent between requests
            if net.task == "anomaly":
                self.fleet.note(0, net.score_out(xq, out))
            else:
                self.fleet.note(0, out[0] if self.regress else best)

    def put_score(self, r, p, xq, out):
        # '"score": S, "anomaly": true|false' of an anomaly model (the board's integer score)
        s = self.net.score_out(xq, out)
        p = _put(r, p, b'"score": ')
        p = _put_int(r, p, s)
        return _put(r, p, b', "anomaly": true' if s > self.net.threshold else b', "anomaly": false')

    def value(self, out):
        if self.out_scale is not None:
            return self.out_scale[0] * (out[0] - self.out_zero_point[0])
        return self.net.forward(self.feats)[0]

    # ---- the loop ------------------------------------------------------------------------------

    def serve(self):
        self.banner()
        line = self.line
        one = self.one
        read = _stdin.readinto
        cap = self.max_line
        n = 0
        overlong = False
        after_cr = False
        fleet = self.fleet
        wait = None
        if fleet is not None:  # joined a fleet: read stdin only when it has a byte, the agent runs between
            import select

            poller = select.poll()
            poller.register(_stdin, select.POLLIN)
            wait = poller.poll
        while True:
            if wait is not None and not wait(0):
                fleet.step()
                wait(_AGENT_IDLE_MS)
                continue
            if not read(one):
                return  # stdin closed (unix port under a supervisor); a board never gets here
            c = one[0]
            if c == _CR or c == _LF:
                if c == _LF and after_cr:  # CR LF ends one line, not two
                    after_cr = False
                    continue
                after_cr = c == _CR
                if overlong:
                    self.error("line too long (max %d bytes): rest of it discarded" % cap)
                else:
                    try:
                        self.handle(n)
                    except Exception as exc:  # never die on a request; KeyboardInterrupt still stops us
                        self.error("internal error: %s" % exc)
                n = 0
                overlong = False
                continue
            after_cr = False
            if n < cap:
                line[n] = c
                n += 1
            else:
                overlong = True


def _number_ok(b, n):
    # The one grammar of a value on the wire (the host's edgenn.device.client.NUMBER; tests hold the
    # two equal with one table of cases): [+-] then digits with an optional '.' and more digits, or
    # '.' and digits; then optionally e or E, [+-], digits; trailing spaces or tabs only.
    i = 0
    if n and (b[0] == 43 or b[0] == 45):
        i = 1
    d = 0
    while i < n and 48 <= b[i] <= 57:
        i += 1
        d += 1
    if i < n and b[i] == 46:
        i += 1
        while i < n and 48 <= b[i] <= 57:
            i += 1
            d += 1
    if d == 0:
        return False
    if i < n and (b[i] == 101 or b[i] == 69):
        i += 1
        if i < n and (b[i] == 43 or b[i] == 45):
            i += 1
        d = i
        while i < n and 48 <= b[i] <= 57:
            i += 1
        if i == d:
            return False
    while i < n and (b[i] == _SPACE or b[i] == _TAB):
        i += 1
    return i == n


def _put(buf, p, data):
    e = p + len(data)
    buf[p:e] = data
    return e


def _put_int(buf, p, v):
    if v < 0:
        buf[p] = 45  # -
        p += 1
        v = -v
    digits = 1
    q = v
    while q >= 10:
        q //= 10
        digits += 1
    end = p + digits
    while digits:
        digits -= 1
        buf[p + digits] = 48 + v % 10
        v //= 10
    return end


def _exists(name):
    import os

    try:
        os.stat(name)
        return True
    except OSError:
        return False


def main():
    joined = _exists("fleet.json")  # written by `edgenn fleet join`; without it the agent is never imported
    if joined and _exists("fleet.verify"):  # a model update to check before a model takes the heap
        import edgenn_fleet

        edgenn_fleet.verify_at_boot()
        del sys.modules["edgenn_fleet"]  # its code leaves the heap until the model is loaded
        del edgenn_fleet
    gc.collect()  # the look-ups' garbage goes before the model's large blocks are taken
    server = Server()
    if joined:
        try:
            import edgenn_fleet

            server.fleet = edgenn_fleet.start(server)
        except Exception as exc:  # a broken fleet install must not stop the serial server
            server.warning = "fleet agent not started: %s" % exc
    server.serve()
