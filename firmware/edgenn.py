# edgenn device runtime: load a .enn model and run its integer forward pass under stock MicroPython.
#
#   import edgenn
#   net = edgenn.load("model.enn")        # ValueError with a clear message if the file is bad
#   net.predict([5.1, 3.5, 1.4, 0.2])     # class index (classify) / first output's value (regress)
#   out = net.forward_q(xq)               # int8 outputs in a preallocated array('b'): no allocation
#
# Format and arithmetic: docs/model-format.md (the host's golden model computes the same bytes).
# Two kernels give identical bytes: viper (edgenn_viper.py, when the build has the native emitter)
# and the portable bytecode kernel below (e.g. the WebAssembly port). All buffers are allocated by
# load(); forward_q allocates nothing (checked under micropython.heap_lock() in the tests).
#
# RAM layout per layer: one bytearray `blob` holding the layer body exactly as the file stores it
# (weights, bias, mult, shift, lut) except that the weights are offset by 128 (w ^ 0x80, unsigned,
# so viper's unsigned ptr8 loads need no sign extension); the kernels subtract 128 * sum(u) once per
# layer. The file is read twice by streaming (CRC, then parse); the weights go straight into their
# blob with readinto: there is never a second copy of the model in RAM.
import array
import os

from micropython import const

try:
    from binascii import crc32 as _crc32
except ImportError:  # a build without binascii.crc32: bitwise CRC-32 (slow, load time only)
    _crc32 = None

try:
    import edgenn_viper as _viper
except Exception:  # SyntaxError on builds without the native emitter, ValueError for a foreign .mpy
    _viper = None

try:  # machine code for this board's arch (edgenn_asm_<arch>.py), installed by deploy where it may run
    import edgenn_asm as _asm
except Exception:  # not installed, or a .mpy this firmware cannot load
    _asm = None
_asm_verdict = None  # "ok" once the asm kernel passed its self-test, else why it does not serve

__version__ = "0.1.0"
FORMAT_VERSION = const(1)
_FRONTEND_VERSION = const(2)  # a .enn with a sensor front end (raw window -> features)
_HEADER = const(20)
_OFF = const(0x20000000)  # 2**29: out_zero is stored offset so the header array stays non-negative
_ACC_LIMIT = const(0x20000000)  # the overflow proof: |bias| + sum|W| * 255 < 2**29
_MAX_LAYERS = const(16)
_MAX_WIDTH = const(4096)
_CHUNK = const(512)
_ACTIVATIONS = ("identity", "relu", "sigmoid", "tanh")
_INF = float("inf")
_NINF = -_INF
KERNELS = ("viper", "portable") if _viper else ("portable",)


def _crc32_bitwise(data, crc):
    crc ^= 0xFFFFFFFF
    for i in range(len(data)):
        crc ^= data[i]
        for _ in range(8):
            crc = (crc >> 1) ^ (0xEDB88320 if crc & 1 else 0)
    return crc ^ 0xFFFFFFFF


def _crc(data, crc):
    if _crc32 is None:
        return _crc32_bitwise(data, crc)
    return _crc32(data, crc)


def _malformed(detail):
    return ValueError("malformed: " + detail)


# ------------------------------------------------------------------------------ portable kernel


def _layer_portable(blob, u, out, h):
    # Same arithmetic, same blob layout and same results as edgenn_viper.layer, in bytecode.
    # Every intermediate stays below 2**30 (small ints on a 32-bit MCU: no allocation).
    n_in = h[0]
    n_out = h[1]
    act = h[2]
    oz = h[3] - _OFF
    su = 0
    for j in range(n_in):
        su += u[j]
    corr = su << 7
    pb = n_out * n_in
    pm = pb + (n_out << 2)
    ps = pm + (n_out << 1)
    pl = ps + n_out
    n8 = n_in & 0xFFF8
    k = 0
    for c in range(n_out):
        # unrolled by 8 with the weight index in its own local: ~1.7x fewer bytecodes per MAC
        acc = 0
        for j in range(0, n8, 8):
            acc += (blob[k] * u[j] + blob[k + 1] * u[j + 1] + blob[k + 2] * u[j + 2]
                    + blob[k + 3] * u[j + 3] + blob[k + 4] * u[j + 4] + blob[k + 5] * u[j + 5]
                    + blob[k + 6] * u[j + 6] + blob[k + 7] * u[j + 7])
            k += 8
        for j in range(n8, n_in):
            acc += blob[k] * u[j]
            k += 1
        o = pb + (c << 2)
        acc += (blob[o] | (blob[o + 1] << 8) | (blob[o + 2] << 16) | (((blob[o + 3] ^ 0x80) - 0x80) << 24)) - corr
        o = pm + (c << 1)
        mult = blob[o] | (blob[o + 1] << 8)
        t = blob[ps + c]
        if t == 15:
            y = (acc >> 15) * mult + ((((acc & 0x7FFF) * mult) + 0x4000) >> 15)
        else:
            y = ((acc >> 15) * mult + (((acc & 0x7FFF) * mult) >> 15) + (1 << (t - 16))) >> (t - 15)
        v = y + oz
        if act == 1:
            out[c] = 0 if v < 0 else (255 if v > 255 else v)
        else:
            v = -128 if v < -128 else (127 if v > 127 else v)
            if act == 0:
                out[c] = v  # out is array('b') for the last (identity) layer
            else:
                out[c] = blob[pl + v + 128]


def _prepare_portable(blob, h):
    # Same as edgenn_viper.prepare: offset the weights, check mult/shift/overflow proof per neuron.
    n_in = h[0]
    n_out = h[1]
    pb = n_out * n_in
    pm = pb + (n_out << 2)
    ps = pm + (n_out << 1)
    k = 0
    for c in range(n_out):
        s = 0
        for _ in range(n_in):
            w = blob[k] ^ 0x80
            blob[k] = w
            s += 128 - w if w < 128 else w - 128
            k += 1
        o = pb + (c << 2)
        top = blob[o + 3]
        mult = blob[pm + (c << 1)] | (blob[pm + (c << 1) + 1] << 8)
        t = blob[ps + c]
        if mult < 1 or mult > 32767:
            return (c << 2) + 1
        if t < 15 or t > 29:
            return (c << 2) + 2
        if 0x20 <= top < 0xE0:  # |bias| >= 2**29 (checked on the top byte: no long ints)
            return (c << 2) + 3
        bias = blob[o] | (blob[o + 1] << 8) | (blob[o + 2] << 16) | (((top ^ 0x80) - 0x80) << 24)
        if bias < 0:
            bias = -bias
        if bias + s * 255 >= _ACC_LIMIT:
            return (c << 2) + 3
    return -1


# ------------------------------------------------------------------------------ sensor front end
# The portable twin of edgenn_viper.fe_load / fe_series (docs/model-format.md, "The sensor front
# end"): the same bytes. Here the scratch areas of ws hold plain signed values (array('i') stores
# them exactly); the shared tables (bit reversal and band edges plain, twiddles + _OFF) are written
# once by load(). Every intermediate stays below 2**30: small ints on a 32-bit board, no allocation.

_H_SIZE = const(20)  # fields of the front end's header array h (the names are in edgenn_viper.py)


def _fe_load_portable(win, ws, h):
    a = h[17]
    n = h[0]
    w = h[1]
    o = h[7] + a * h[6]
    ps = h[8]
    pg = h[9]
    for t in range(w):
        x = win[o + t] - 32768
        ws[ps + t] = x
        if n > 1:
            if x < 0:
                x = -x
            if a == 0:
                ws[pg + t] = x
            else:
                ws[pg + t] += x


def _isqrt(n):
    r = 0
    bit = 1 << 28
    while bit > n:
        bit >>= 2
    while bit:
        if n >= r + bit:
            n -= r + bit
            r = (r >> 1) + bit
        else:
            r >>= 1
        bit >>= 2
    return r


def _fe_series_portable(ws, feats, h):
    k = h[17]
    n = h[0]
    w = h[1]
    src = h[8] if k < n else h[9]
    y = ws[src]
    s = lo = hi = prv = y
    mac = 0
    for t in range(src + 1, src + w):
        y = ws[t]
        s += y
        if y < lo:
            lo = y
        if y > hi:
            hi = y
        mac += y - prv if y >= prv else prv - y
        prv = y
    m = s // w  # floor division
    mac //= w
    lo -= m
    hi -= m
    amax = hi if hi > -lo else -lo
    sft = -h[5]
    while amax:
        amax >>= 1
        sft += 1
    fft = h[2] == 2 and k < n
    p = h[3]
    # axes 2j and 2j + 1 share one complex FFT: this axis goes into its real (k even) or imaginary
    # (k odd) area, the imaginary part 0 for a last axis without a partner
    pre = h[10]
    pz = pre + p * (k & 1)
    prev = h[12]
    nb = h[4]
    if fft:
        for t in range(pz, pz + p):
            ws[t] = 0
        if k == n - 1 and not k & 1:
            for t in range(pre + p, pre + 2 * p):
                ws[t] = 0
    q = 0
    for t in range(w):
        d = ws[src + t] - m
        v = d >> sft if sft >= 0 else d << -sft
        q += v * v
        if fft:
            ws[pz + ws[prev + t]] = v
    r = _isqrt(q // w)
    f = k * 5
    feats[f] = m
    feats[f + 1] = r << sft if sft >= 0 else (r + (1 << (-sft - 1))) >> -sft
    feats[f + 2] = lo
    feats[f + 3] = hi
    feats[f + 4] = mac
    if not fft:
        return
    fb = h[16] + (k - (k & 1)) * nb  # the pair's first band feature
    feats[fb + (k & 1) * nb] = sft  # kept for the bands (overwritten by them)
    if not k & 1 and k < n - 1:
        return  # the pair's FFT after its second axis
    pc = h[14]
    psn = h[15]
    half = 1
    step = p >> 1
    while half < p:
        st = pre
        while st < pre + p:  # (a range() with a variable step would allocate)
            kk = 0
            for j in range(st, st + half):
                # the imaginary area follows the real one: im[i] is ws[re + i + p]
                c = ws[pc + kk] - _OFF
                sn = ws[psn + kk] - _OFF
                jb = j + half
                br = ws[jb]
                bi = ws[jb + p]
                tr = (c * br + sn * bi) >> 14
                ti = (c * bi - sn * br) >> 14
                ar = ws[j]
                ai = ws[j + p]
                ws[j] = (ar + tr) >> 1
                ws[jb] = (ar - tr) >> 1
                ws[j + p] = (ai + ti) >> 1
                ws[jb + p] = (ai - ti) >> 1
                kk += step
            st += half << 1
        half <<= 1
        step >>= 1
    # per bin j: 2 A_j = Z_j + conj(Z_{P-j}), 2i B_j = Z_j - conj(Z_{P-j}); a band sums max + min // 2
    # of its bins' |components|, unscaled by the axis's shift - 1 (the components are doubled)
    pe = h[13]
    pim = pre + p
    for a in range(1 + (k & 1)):
        sft = feats[fb + a * nb] - 1
        for b in range(nb):
            e = 0
            for i in range(ws[pe + b], ws[pe + b + 1]):
                if a:
                    u = ws[pim + i] + ws[pim + p - i]
                    v = ws[pre + i] - ws[pre + p - i]
                else:
                    u = ws[pre + i] + ws[pre + p - i]
                    v = ws[pim + i] - ws[pim + p - i]
                if u < 0:
                    u = -u
                if v < 0:
                    v = -v
                e += u + (v >> 1) if u > v else v + (u >> 1)
            feats[fb + a * nb + b] = e << sft if sft >= 0 else (e + (1 << (-sft - 1))) >> -sft


def _reading(x):
    # A raw reading as the front end takes it: an int saturated to int16; a float rounded to the
    # nearest integer (halves up) first (floats are heap objects: integer readings allocate nothing).
    if type(x) is not int:
        if x != x or x == _INF or x == _NINF:
            raise ValueError("reading %r: NaN and infinity are not readings" % (x,))
        if x >= 32767:
            return 32767
        if x <= -32768:
            return -32768
        v = x + 0.5
        i = int(v)
        return i - 1 if i > v else i
    if x > 32767:
        return 32767
    if x < -32768:
        return -32768
    return x


# ------------------------------------------------------------------------------ loading


class _Source:
    """The body of an open .enn file, read in order; keeps no copy (readinto the caller's buffers)."""

    def __init__(self, f, end):
        self.f = f
        self.pos = _HEADER
        self.end = end  # where the CRC starts
        self.scratch = bytearray(256)
        self.mv = memoryview(self.scratch)
        self.one = bytearray(1)

    def into(self, buf, what, n=-1):
        if n < 0:
            n = len(buf)  # bytes: every buffer here has 1-byte items except the float arrays
        if n > self.end - self.pos:
            raise _malformed("%s runs past the end of the model (at byte %d)" % (what, self.pos))
        if n and self.f.readinto(buf) != n:
            raise ValueError("truncated: the file changed while loading")
        self.pos += n

    def take(self, n, what):
        mv = self.mv[:n]
        self.into(mv, what)
        return mv

    def u8(self, what):
        self.into(self.one, what)
        return self.one[0]

    def skip_str(self, what):
        # seek instead of read: no buffer, no memoryview slice (loading must stay close to file size)
        n = self.u8(what)
        if n > self.end - self.pos:
            raise _malformed("%s runs past the end of the model (at byte %d)" % (what, self.pos))
        self.f.seek(n, 1)
        self.pos += n

    def floats(self, n, what):
        a = array.array("f", bytes(4 * n))  # 'f' is IEEE single on every port
        self.into(a, what, 4 * n)
        return a


def _read_header(f, size):
    hdr = bytearray(_HEADER)
    n = f.readinto(hdr)
    if size == 0 or not n:
        raise ValueError("file is empty")
    magic = b"EDNN"
    for i in range(min(n, 4)):
        if hdr[i] != magic[i]:
            raise ValueError("not an edgenn model (bad magic)")
    if n < _HEADER:
        raise ValueError("truncated header")
    version = hdr[4] | (hdr[5] << 8)
    if version != FORMAT_VERSION and version != _FRONTEND_VERSION:
        raise ValueError("format version %d not supported (reader knows 1 and 2)" % version)
    length = hdr[12] | (hdr[13] << 8) | (hdr[14] << 16) | (hdr[15] << 24)
    if size < length:
        raise ValueError("truncated: header says %d bytes, file has %d" % (length, size))
    if size > length:
        raise ValueError("trailing bytes: header says %d bytes, file has %d" % (length, size))
    return hdr, length


def _check_crc(f, length):
    if length < _HEADER + 4:
        raise _malformed("file length %d is shorter than header plus CRC" % length)
    f.seek(0)
    buf = bytearray(_CHUNK)
    mv = memoryview(buf)
    crc = 0
    left = length - 4
    while left >= _CHUNK:
        f.readinto(buf)
        crc = _crc(buf, crc)
        left -= _CHUNK
    if left:
        f.readinto(mv[:left])
        crc = _crc(mv[:left], crc)
    f.readinto(mv[:4])
    stored = buf[0] | (buf[1] << 8) | (buf[2] << 16) | (buf[3] << 24)
    if crc & 0xFFFFFFFF != stored:
        raise ValueError("CRC mismatch: file is corrupted")


def _count(value, lo, hi, what):
    if not lo <= value <= hi:
        raise _malformed("%s is %d (must be %d..%d)" % (what, value, lo, hi))


def asm_status():
    """"ok" when the asm kernel serves (installed, native code here, equal to viper on the self-test
    vectors); otherwise why it does not. The self-test runs once, at the first load."""
    global _asm_verdict
    if _asm_verdict is None:
        # A file beside the module marks a self-test in progress: if machine code crashes the board,
        # the next boot finds the mark for this same module file and refuses it instead of crashing
        # again (a boot loop). A redeployed module (other size or time) is tested afresh.
        mark = ident = None
        if _asm is not None:
            try:
                st = os.stat(_asm.__file__)
                mark = _asm.__file__ + ".testing"
                ident = "%d %d" % (st[6], st[8])
                with open(mark) as f:
                    if f.read() == ident:
                        _asm_verdict = "refused: its self-test did not finish last time (crash or reset)"
                        return _asm_verdict
            except Exception:  # no mark (the usual case), or no file system to keep one
                pass
            try:
                with open(mark, "w") as f:
                    f.write(ident)
            except Exception:
                mark = None
        try:
            _asm_verdict = _asm_self_test()
        except Exception as e:
            _asm_verdict = "refused: %r" % (e,)
        if mark is not None:
            try:
                os.remove(mark)
            except Exception:
                pass
    return _asm_verdict


def _asm_self_test():
    # Runs the asm kernel beside viper on fixed layers of every activation and compares every byte.
    if _asm is None:
        return "not installed"
    if _viper is None:
        return "no viper kernel to check it against"
    if type(_asm.layer) is not type(_viper.layer):  # e.g. asm-kind code on a firmware without asm
        return "refused: not native code on this firmware"
    for blob, head, x in _self_test_cases():
        want = bytearray(head[1])
        got = bytearray(head[1])
        _viper.layer(blob, x, want, head)
        _asm.layer(blob, x, got, head)
        if got != want:
            return "refused: differs from viper (activation %d, %d inputs)" % (head[2], head[0])
    return "ok"


def _self_test_cases():
    # (prepared blob, h, input) for the asm self-test: every activation, widths that use the 16-wide
    # loop (once, twice) and the tail; shifts 15..18 with multipliers that keep most outputs inside the
    # clamps, so that a rounding error of one shows in about a third of the bytes; all-255 and all-0
    # inputs drive the clamps. The input buffer is refilled for each case.
    s = 1
    for n_in, n_out in ((21, 4), (40, 3)):
        for act in range(4):
            pb = n_out * n_in
            blob = bytearray(pb + 7 * n_out + (256 if act >= 2 else 0))
            for i in range(len(blob)):
                s = (s * 75 + 74) % 65537
                blob[i] = s & 0xFF
            for c in range(n_out):
                t = 15 + (c + act) % 4
                b = (s + 977 * c) % 4001 - 2000
                for k in range(4):
                    blob[pb + 4 * c + k] = (b >> (8 * k)) & 0xFF
                m = (75 << (t - 15)) + (s + c) % 64
                blob[pb + 4 * n_out + 2 * c] = m & 0xFF
                blob[pb + 4 * n_out + 2 * c + 1] = m >> 8
                blob[pb + 6 * n_out + c] = t
            head = array.array("i", (n_in, n_out, act, (act * 37) % 60 - 30 + _OFF))
            if _viper.prepare(blob, head) >= 0:
                raise ValueError("bad self-test layer")
            x = bytearray(n_in)
            for v in range(8):
                for j in range(n_in):
                    s = (s * 75 + 74) % 65537
                    x[j] = 255 if v == 0 else 0 if v == 1 else s & 0xFF
                yield blob, head, x


def load(path, kernel=None):
    """Load a .enn model. kernel: None (asm if installed and self-tested, else viper if this build
    has it), "asm", "viper" or "portable"."""
    if kernel is None:
        kernel = "asm" if asm_status() == "ok" else KERNELS[0]
    elif kernel == "asm":
        if asm_status() != "ok":
            raise ValueError("kernel 'asm' not available here: " + asm_status())
    elif kernel not in KERNELS:
        raise ValueError("kernel %r not available here (have %s)" % (kernel, ", ".join(KERNELS)))
    size = os.stat(path)[6]
    with open(path, "rb") as f:
        hdr, length = _read_header(f, size)
        _check_crc(f, length)
        f.seek(_HEADER)
        return Net(f, hdr, length, kernel)


def _fixed_point(f, n, d, sa, so, me):
    # Feature d's scaling as small ints: True and me[0] = A | S << 20, me[1] = B when in_scale is
    # A / 2**S and in_offset + 0.5 is B / 2**S with A < 2**20, |B| < 2**29, 1 <= S <= 30.
    f.seek(_HEADER + 4 * d)
    f.readinto(sa)
    f.seek(_HEADER + 4 * (n + d))
    f.readinto(so)
    if not (_split_f32(sa, me, 0) and _split_f32(so, me, 2)) or me[0] <= 0:
        return False
    s = 1
    if -me[1] > s:
        s = -me[1]
    if -me[3] > s:  # c * 2**s must be an integer for c + 0.5 to be B / 2**s
        s = -me[3]
    up_a = me[1] + s  # a * 2**s = mantissa << up_a
    up_n = me[3] + s + 1  # c * 2**(s+1) = 2B - 2**s, even
    if s > 30 or up_a > 20 or up_n > 29:
        return False
    a = me[0] << up_a
    b = ((me[2] << up_n) >> 1) + (1 << (s - 1))
    if a >= 0x100000 or not -0x20000000 < b < 0x20000000:
        return False
    me[0] = a | (s << 20)
    me[1] = b
    return True


def _split_f32(raw, me, k):
    # The little-endian float32 in raw (4 bytes) as me[k] * 2**me[k+1] with an odd (or zero) integer
    # me[k]; False for inf and NaN. Small-int arithmetic only.
    ex = ((raw[3] & 0x7F) << 1) | (raw[2] >> 7)
    if ex == 255:
        return False
    m = ((raw[2] & 0x7F) << 16) | (raw[1] << 8) | raw[0]
    if ex:
        m |= 0x800000
        e = ex - 150
    else:
        e = -149
    if m == 0:
        e = 0
    else:
        while not m & 1:
            m >>= 1
            e += 1
    me[k] = -m if raw[3] & 0x80 else m
    me[k + 1] = e
    return True


class Net:
    """A loaded model. Attributes: name, task ("classify"|"regress"), n_inputs, n_outputs, labels,
    kernel, in_scale/in_offset/out_scale/out_zero_point (array('f')), n_layers."""

    def __init__(self, f, hdr, length, kernel):
        flags = hdr[6] | (hdr[7] << 8)
        if flags & 0xFFFE:
            raise _malformed("unknown flag bits 0x%04x" % (flags & 0xFFFE))
        if hdr[18] or hdr[19]:
            raise _malformed("reserved header field is not 0")
        n_layers = hdr[8] | (hdr[9] << 8)
        n_inputs = hdr[10] | (hdr[11] << 8)
        n_outputs = hdr[16] | (hdr[17] << 8)
        _count(n_layers, 1, _MAX_LAYERS, "n_layers")
        _count(n_inputs, 1, _MAX_WIDTH, "n_inputs")
        _count(n_outputs, 1, _MAX_WIDTH, "n_outputs")
        self.task = "regress" if flags & 1 else "classify"
        self.kernel = kernel
        self.n_inputs = n_inputs
        self.n_outputs = n_outputs
        self.n_layers = n_layers
        src = _Source(f, length - 4)
        self.in_scale = src.floats(n_inputs, "in_scale")
        self.in_offset = src.floats(n_inputs, "in_offset")
        n = src.u8("model name")
        try:
            self.name = str(src.take(n, "model name"), "utf-8")
        except UnicodeError:
            raise _malformed("model name is not valid UTF-8")
        for j in range(n_inputs):
            src.skip_str("feature name")
        # Labels stay as their length-prefixed bytes (one small object, however many outputs);
        # .labels and .label(k) decode them on demand.
        start = src.pos
        for k in range(n_outputs):
            src.skip_str("label")
        self._labels = bytearray(src.pos - start)
        f.seek(start)
        src.pos = start
        src.into(self._labels, "labels")
        self._label_at = array.array("H", bytes(2 * n_outputs))
        p = 0
        for k in range(n_outputs):
            self._label_at[k] = p
            p += 1 + self._labels[p]
        self.out_scale = src.floats(n_outputs, "out_scale")
        self.out_zero_point = src.floats(n_outputs, "out_zero_point")

        prepare = _prepare_portable if kernel == "portable" else _viper.prepare
        self._layer = _asm.layer if kernel == "asm" else _viper.layer if kernel == "viper" else _layer_portable
        self._blobs = []
        self._heads = []
        self._outs = []
        n_prev = n_inputs
        for i in range(n_layers):
            lh = src.take(10, "layer header")
            n_in = lh[0] | (lh[1] << 8)
            n_out = lh[2] | (lh[3] << 8)
            act = lh[4]
            oz = lh[6] | (lh[7] << 8) | (lh[8] << 16) | (((lh[9] ^ 0x80) - 0x80) << 24)
            where = "layer %d" % i
            _count(n_in, 1, _MAX_WIDTH, where + " n_in")
            _count(n_out, 1, _MAX_WIDTH, where + " n_out")
            if n_in != n_prev:
                raise _malformed("%s: n_in %d differs from the previous layer's n_out %d" % (where, n_in, n_prev))
            if act > 3:
                raise _malformed("%s: unknown activation code %d" % (where, act))
            if lh[5]:
                raise _malformed(where + ": reserved byte is not 0")
            last = i == n_layers - 1
            if last != (act == 0):
                raise _malformed("%s: %s (only the last layer is identity, and it must be)" % (where, _ACTIVATIONS[act]))
            if not -32768 <= oz <= 32767:
                raise _malformed("%s: out_zero %d outside -32768..32767" % (where, oz))
            blob = bytearray(n_out * n_in + 7 * n_out + (256 if act >= 2 else 0))
            src.into(blob, where)
            head = array.array("i", (n_in, n_out, act, oz + _OFF))
            bad = prepare(blob, head)
            if bad >= 0:
                what = ("mult outside 1..32767", "shift outside 15..29",
                        "fails the overflow proof (|bias| + sum|W|*255 >= 2**29)")[(bad & 3) - 1]
                raise _malformed("%s neuron %d: %s" % (where, bad >> 2, what))
            self._blobs.append(blob)
            self._heads.append(head)
            self._outs.append(array.array("b", bytes(n_out)) if last else bytearray(n_out))
            n_prev = n_out
        if n_prev != n_outputs:
            raise _malformed("n_outputs %d differs from the last layer's n_out %d" % (n_outputs, n_prev))
        self._fe = None  # the sensor front end's name ("stats" | "spectral"), None without one
        self.axes = 0
        self.window = 0
        self.n_raw = n_inputs  # how many values predict/forward/quantize_input take
        if (hdr[4] | (hdr[5] << 8)) == _FRONTEND_VERSION:
            self._load_frontend(src, n_inputs, kernel)
        if src.pos != src.end:
            raise _malformed("%d unexpected bytes after the last layer" % (src.end - src.pos))
        self.out = self._outs[-1]
        self.xq = bytearray(n_inputs)
        self._fixed_point_inputs(f, n_inputs)
        self._real = array.array("f", bytes(4 * n_outputs))
        if self._fe is not None:
            # per feature, the largest |x| of the small-int path; beyond it the code saturates
            # (the host's reader checks that every front end feature's scaling reaches both clamps)
            lim = array.array("i", bytes(4 * n_inputs))
            fix = self._fix
            for d in range(n_inputs):
                if fix is not None and fix[2 * d]:
                    b = fix[2 * d + 1]
                    lim[d] = (0x3FFFFFFF - (b if b >= 0 else -b)) // (fix[2 * d] & 0xFFFFF)
            self._lim = lim

    def _load_frontend(self, src, n_inputs, kernel):
        # The front end section after the layers (docs/model-format.md): sizes, band edges, Q14
        # twiddles, column names (skipped). Allocates the window, features and scratch arrays once.
        b = src.take(8, "front end header")
        kind = b[0]
        axes = b[1]
        w = b[2] | (b[3] << 8)
        p = b[4] | (b[5] << 8)
        nb = b[6]
        if kind != 1 and kind != 2:
            raise _malformed("unknown front end kind %d" % kind)
        if b[7]:
            raise _malformed("front end reserved byte is not 0")
        if kind == 2 and (nb < 1 or p < 2 or p > 1024 or p & (p - 1)):
            raise _malformed("front end FFT size %d / %d bands" % (p, nb))
        if kind == 1 and (p or nb):
            raise _malformed("front end: a stats front end has no FFT size or bands")
        if not (1 <= axes <= 8 and 4 <= w <= 1024 and axes * w <= 4096 and (kind == 1 or p >= w)):
            raise _malformed("front end: %d axes x %d samples, FFT %d" % (axes, w, p))
        n_series = axes + (1 if axes > 1 else 0)
        n_feat = 5 * n_series + (axes * nb if kind == 2 else 0)
        if n_feat != n_inputs:
            raise _malformed("front end makes %d features, the network takes %d" % (n_feat, n_inputs))
        # ws: series[w] magnitude[w] re[p] im[p] (im right after re; the viper kernels interleave
        # the same 2p words) rev[p] edges[nb+1] cos[p/2] sin[p/2]
        pre = 2 * w
        prev = pre + 2 * p
        pedge = prev + p
        pcos = pedge + nb + 1
        psin = pcos + p // 2
        ws = array.array("i", bytes(4 * (psin + p // 2)))
        if kind == 2:
            one = bytearray(2)
            for i in range(nb + 1):
                src.into(one, "band edges")
                ws[pedge + i] = one[0] | (one[1] << 8)
                if ws[pedge + i] < 1 or ws[pedge + i] > p // 2 + 1 or (i and ws[pedge + i] <= ws[pedge + i - 1]):
                    raise _malformed("front end: band edges must increase within 1..%d" % (p // 2 + 1))
            for i in range(p):  # cos, then sin: i16, kept + _OFF
                src.into(one, "twiddles")
                v = one[0] | (one[1] << 8)
                ws[pcos + i] = (v - 65536 if v >= 32768 else v) + _OFF
            levels = 0
            while (1 << levels) < p:
                levels += 1
            for t in range(p):
                r = 0
                x = t
                for _ in range(levels):
                    r = (r << 1) | (x & 1)
                    x >>= 1
                ws[prev + t] = r
        for j in range(axes * w):
            src.skip_str("column name")
        bits_w = 0
        while (1 << bits_w) < w:
            bits_w += 1
        bits = (29 - bits_w) // 2
        if bits > 12:
            bits = 12
        # h: axes, window, kind, fft, bands, bits, window stride, window base, then the ws offsets
        self._h = array.array("i", (axes, w, kind, p, nb, bits, w, 0, 0, w, pre, pre + p, prev, pedge,
                                    pcos, psin, 5 * n_series, 0,
                                    (bits_w + 1) if (1 << bits_w) == w else 0, 0))
        self._ws = ws
        self._win = array.array("H", bytes(2 * axes * w))
        self.feats = array.array("i", bytes(4 * n_inputs))
        self._fe_load = _viper.fe_load if kernel == "viper" else _fe_load_portable
        self._fe_series = _viper.fe_series if kernel == "viper" else _fe_series_portable
        # viper: the FFT and the bands are separate functions (the portable series does it all)
        self._fe_fft = _viper.fe_fft if kernel == "viper" and kind == 2 else None
        self._fe_bands = _viper.fe_bands if kernel == "viper" else None
        self._fe = "stats" if kind == 1 else "spectral"
        self.axes = axes
        self.window = w
        self.n_raw = axes * w

    @property
    def frontend(self):
        """"stats" or "spectral" (the model computes its features from a raw window), or None."""
        return self._fe

    def _run_frontend(self, win, h):
        load = self._fe_load
        series = self._fe_series
        ws = self._ws
        feats = self.feats
        fft = self._fe_fft
        for a in range(self.axes):
            h[17] = a  # the series to work on
            load(win, ws, h)
            series(ws, feats, h)
            if fft is not None and (a & 1 or a == self.axes - 1):  # one FFT per pair of axes
                fft(ws, ws, h)
                self._fe_bands(ws, feats, h)
        if self.axes > 1:
            h[17] = self.axes  # the magnitude
            series(ws, feats, h)
        return feats

    def features(self, window):
        """A raw window (axes x window readings, axis-major: all of axis 0, then axis 1, ...) ->
        the front end's integer features in a preallocated array('i'). Integer readings allocate
        nothing; floats are rounded to the nearest integer, everything saturates to int16."""
        if self._fe is None:
            raise ValueError("this model has no front end: its inputs are already features")
        n = self.n_raw
        if len(window) != n:
            raise ValueError("expected %d readings (%d axes x %d samples), got %d"
                             % (n, self.axes, self.window, len(window)))
        win = self._win
        for i in range(n):
            win[i] = _reading(window[i]) + 32768
        return self._run_frontend(win, self._h)

    def _codes(self, feats):
        # Integer features -> input codes: (x * A + B) >> S on the small-int path, saturated beyond it.
        fix = self._fix
        lim = self._lim
        xq = self.xq
        sc = self.in_scale
        of = self.in_offset
        for d in range(self.n_inputs):
            x = feats[d]
            a = fix[2 * d] if fix is not None else 0
            if a:
                m = lim[d]
                if x > m:
                    xq[d] = 255
                elif x < -m:
                    xq[d] = 0
                else:
                    v = (x * (a & 0xFFFFF) + fix[2 * d + 1]) >> (a >> 20)
                    xq[d] = 0 if v < 0 else (255 if v > 255 else v)
            else:  # not fixed point (the host never writes such a file): the float formula
                v = x * sc[d] + of[d] + 0.5
                xq[d] = 0 if v <= 0.0 else (255 if v >= 255.0 else int(v))
        return xq

    def _fixed_point_inputs(self, f, n):
        # The quantizer makes each feature's scaling dyadic where it can: in_scale = A / 2**S and
        # in_offset + 0.5 = B / 2**S. For an integer feature the float formula then equals
        # (x * A + B) >> S exactly, in small ints with no float objects (an ESP32's floats are heap
        # objects). _fix holds A | S << 20 and B per feature (A | S << 20 == 0: floats only), or is
        # None when no feature qualifies. A, B and S come from the float32 bit patterns, read again
        # from the file 4 bytes at a time, with small-int arithmetic: no float garbage, no copies.
        sa = bytearray(4)  # the scale's bytes, then the offset's
        so = bytearray(4)
        me = array.array("i", bytes(16))  # mantissa and exponent of the scale, then of the offset
        count = 0
        for d in range(n):
            if _fixed_point(f, n, d, sa, so, me):
                count += 1
        if not count:
            self._fix = None
            return
        fix = array.array("i", bytes(8 * n))
        for d in range(n):
            if _fixed_point(f, n, d, sa, so, me):
                fix[2 * d] = me[0]
                fix[2 * d + 1] = me[1]
        self._fix = fix

    # -------------------------------------------------------------------------- names

    def label(self, k):
        p = self._label_at[k]
        return str(memoryview(self._labels)[p + 1:p + 1 + self._labels[p]], "utf-8")

    @property
    def labels(self):
        return [self.label(k) for k in range(self.n_outputs)]

    def __repr__(self):
        return "<edgenn.Net %r %s %d-%s kernel=%s>" % (
            self.name, self.task, self.n_inputs,
            "-".join(str(h[1]) for h in self._heads), self.kernel)

    # -------------------------------------------------------------------------- inference

    def forward_q(self, xq):
        """Input codes (bytes-like, n_inputs values 0..255) -> the int8 output buffer (array('b'),
        overwritten by the next call). Allocates nothing."""
        if len(xq) != self.n_inputs:
            raise ValueError("expected %d input codes, got %d" % (self.n_inputs, len(xq)))
        if self.kernel == "asm" and type(xq) is not bytearray:
            # the asm kernel reads a bytearray's data pointer itself (a memoryview's is elsewhere)
            buf = self.xq
            for j in range(self.n_inputs):
                buf[j] = xq[j]
            xq = buf
        layer = self._layer
        blobs = self._blobs
        heads = self._heads
        outs = self._outs
        u = xq
        for i in range(self.n_layers):
            out = outs[i]
            layer(blobs[i], u, out, heads[i])
            u = out
        return u

    def layer_output(self, i):
        """Layer i's output buffer from the last forward_q (hidden: bytearray, last: array('b'))."""
        return self._outs[i]

    def quantize_input(self, features):
        """Raw features (any indexable of n_inputs numbers) -> the preallocated input-code bytearray:
        clamp(floor(x * in_scale + in_offset + 0.5), 0, 255). NaN/inf -> ValueError. Integer features
        (raw sensor readings) of a model whose scaling is dyadic take an exact small-int path and
        allocate nothing; float features allocate the float objects of the scaling (heap objects)."""
        if self._fe is not None:  # a raw window: the front end makes the features
            return self._codes(self.features(features))
        n = self.n_inputs
        if len(features) != n:
            raise ValueError("expected %d features, got %d" % (n, len(features)))
        sc = self.in_scale
        of = self.in_offset
        xq = self.xq
        fix = self._fix
        for d in range(n):
            x = features[d]
            if fix is not None and type(x) is int and fix[2 * d]:
                a = fix[2 * d]
                s = a >> 20
                a &= 0xFFFFF
                b = fix[2 * d + 1]
                # |x * A| + |B| < 2**30: every value below is a small int on a 32-bit board
                lim = (0x3FFFFFFF - (b if b >= 0 else -b)) // a
                if -lim <= x <= lim:
                    v = (x * a + b) >> s
                    xq[d] = 0 if v < 0 else (255 if v > 255 else v)
                    continue
            # comparisons allocate nothing (x - x would: one float object per feature on an ESP32)
            if x != x or x == _INF or x == _NINF:
                raise ValueError("feature %d is %r: NaN and infinity cannot be quantized" % (d, x))
            v = x * sc[d] + of[d] + 0.5
            if v <= 0.0:
                xq[d] = 0
            elif v >= 255.0:
                xq[d] = 255
            else:
                xq[d] = int(v)  # v > 0: truncation is floor
        return xq

    def forward(self, features):
        """Raw features -> output scores: the int8 logits (classify, array('b')) or the dequantized
        values out_scale * (q - out_zero_point) (regress, a preallocated array('f'))."""
        q = self.forward_q(self.quantize_input(features))
        if self.task == "classify":
            return q
        real = self._real
        for k in range(self.n_outputs):
            real[k] = self.out_scale[k] * (q[k] - self.out_zero_point[k])
        return real

    def predict(self, features):
        """Raw features -> class index (classify; ties go to the lowest index) or the first output's
        real value (regress)."""
        q = self.forward_q(self.quantize_input(features))
        if self.task == "classify":
            best = 0
            for k in range(1, self.n_outputs):
                if q[k] > q[best]:
                    best = k
            return best
        return self.out_scale[0] * (q[0] - self.out_zero_point[0])


class Window:
    """Windows from a sensor loop: push one sample (axes readings) at a time; every `stride` samples,
    once a whole window is in, the model's front end and network run on the latest `window` samples.

        w = edgenn.Window(net, stride=16)
        while True:
            k = w.push((ax, ay, az))       # None, or the class index of the latest window
            if k is not None:
                print(net.label(k))

    The ring buffer is preallocated: push() allocates nothing for integer readings. Each sample is
    written twice (at i and i + window, per axis), so the latest window is always contiguous."""

    def __init__(self, net, stride=0):
        if net.frontend is None:
            raise ValueError("Window needs a model with a front end (edgenn train --features stats|spectral)")
        w = net.window
        if stride == 0:
            stride = w
        if stride < 1:
            raise ValueError("stride must be at least 1 sample")
        self.net = net
        self.axes = net.axes
        self.window = w
        self.stride = stride
        self.buf = array.array("H", bytes(4 * net.axes * w))
        self._h = array.array("i", net._h)
        self._h[6] = 2 * w  # axis stride in the doubled ring
        self.pos = 0  # where the next sample goes (0..window-1)
        self.filled = 0  # samples in the ring, up to window
        self.since = 0  # samples since the last prediction

    def push(self, sample):
        """One sample (an indexable of `axes` readings) -> the class index when a window is due, else
        None (for regression models: the first output's value)."""
        w = self.window
        p = self.pos
        buf = self.buf
        o = p
        for a in range(self.axes):
            x = _reading(sample[a]) + 32768
            buf[o] = x
            buf[o + w] = x
            o += w << 1
        p += 1
        if p == w:
            p = 0
        self.pos = p
        if self.filled < w:
            self.filled += 1
        self.since += 1
        if self.filled < w or self.since < self.stride:
            return None
        self.since = 0
        net = self.net
        h = self._h
        h[7] = p  # the oldest sample of the latest window
        q = net.forward_q(net._codes(net._run_frontend(buf, h)))
        if net.task != "classify":
            return net.out_scale[0] * (q[0] - net.out_zero_point[0])
        best = 0
        for k in range(1, net.n_outputs):
            if q[k] > q[best]:
                best = k
        return best

    def reset(self):
        """Forget the samples so far (the next prediction comes after a whole new window)."""
        self.pos = 0
        self.filled = 0
        self.since = 0
