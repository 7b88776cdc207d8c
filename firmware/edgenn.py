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
import io
import os
import struct

from micropython import const

try:
    from binascii import crc32 as _crc32
except ImportError:  # a build without binascii.crc32: bitwise CRC-32 (slow, load time only)
    _crc32 = None

try:
    import edgenn_viper as _viper
except Exception:  # SyntaxError on builds without the native emitter, ValueError for a foreign .mpy
    _viper = None

_asm_import_error = None
try:  # machine code for this board's arch (edgenn_asm_<arch>.py), installed by deploy where it may run
    import edgenn_asm as _asm
except ImportError:  # not installed
    _asm = None
except Exception as e:  # installed, but this firmware cannot load it (foreign .mpy, out of memory, ...)
    _asm = None
    _asm_import_error = e
_asm_verdict = None  # "ok" once the asm kernel passed its self-test, else why it does not serve

__version__ = "0.1.0"
FORMAT_VERSION = const(1)
_FRONTEND_VERSION = const(2)  # a .enn with a sensor front end (raw window -> features)
_SECTIONS_VERSION = const(3)  # sections after the layers named by flags: front end, anomaly score
_FLAG_ANOMALY = const(2)
_FLAG_FRONTEND = const(4)
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

    def floats(self, n, what, positive=False):
        # Every value checked as the format requires (docs/model-format.md): finite, and > 0 for the
        # scales. A CRC-valid file with a NaN, infinite, zero or negative scale would otherwise fail (or
        # answer nonsense) only at the first inference. Checked on the float32 bits, read back into
        # the scratch buffer: a float object per value would be heap on every port.
        start = self.pos
        a = array.array("f", bytes(4 * n))  # 'f' is IEEE single on every port
        self.into(a, what, 4 * n)
        f = self.f
        b = self.scratch
        f.seek(start)
        k = 0
        while k < n:
            f.readinto(b)
            j = 0
            while j < 256 and k < n:
                e = ((b[j + 3] & 0x7F) << 1) | (b[j + 2] >> 7)  # the exponent; 255: NaN or infinity
                if e == 255:
                    raise _malformed("%s[%d] is %r: must be finite" % (what, k, a[k]))
                if positive and (b[j + 3] & 0x80 or (e == 0 and not (b[j + 2] & 0x7F or b[j + 1] or b[j]))):
                    raise _malformed("%s[%d] is %r: must be > 0" % (what, k, a[k]))
                j += 4
                k += 1
        f.seek(self.pos)
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
    if version < FORMAT_VERSION or version > _SECTIONS_VERSION:
        raise ValueError("format version %d not supported (reader knows 1, 2 and 3)" % version)
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
        if _asm_import_error is not None:
            return "refused: cannot import it: %r" % (_asm_import_error,)
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


# ------------------------------------------------------------------------------ input codes
# u = clamp(floor(x * in_scale + in_offset + 0.5), 0, 255) exactly as the golden model computes it in
# float64, but in small ints from the bits of x (docs/model-format.md, "Input codes in integers").
# With in_scale = A / 2**S and in_offset + 0.5 = B / 2**S (the quantizer's dyadic scaling) and
# x = (-1)**neg * m * 2**e, V = x * in_scale + in_offset + 0.5 = (B + (-1)**neg * m * A * 2**e) / 2**S.
# edgenn_viper.codes (or _codes_portable) settles almost every value from floor(V * 2**f); the few
# within 2**(1-f) below a code boundary go to _exact_code, which also reproduces float64's rounding of
# x * a + c and of + 0.5 (it can lift V from just below an integer k to k).


def _input_params(f, n):
    # 2 ints per feature for the code paths: A | f << 20 | S << 25 and B + 2**29 (both
    # non-negative, below 2**30). f (the fast path's fraction bits, at most 18) is the most with
    # (|B| / 2**S + 256) * 2**f <= 2**27; f = 0 (|B| / 2**S >= 2**24) turns the fast path off
    # (always _exact_code); 0, 0 marks a feature whose scaling is not dyadic (golden's float formula).
    sa = bytearray(4)
    so = bytearray(4)
    me = array.array("i", bytes(16))
    q = array.array("i", range(2 * n))  # sized from len(range): no temporary copy
    for d in range(n):
        q[2 * d] = 0
        q[2 * d + 1] = 0
        if not _fixed_point(f, n, d, sa, so, me):
            continue
        s = me[0] >> 20
        b = me[1]
        fb = 27 - _bitlen(((b if b >= 0 else -b) >> s) + 257)
        if fb < 2:
            fb = 0
        q[2 * d] = me[0] & 0xFFFFF | fb << 20 | s << 25
        q[2 * d + 1] = b + _OFF
    return q


def _bitlen(v):
    n = 0
    while v:
        v >>= 1
        n += 1
    return n


def _ones(w):
    # 2**w - 1 for w <= 30 without forming 2**30 (not a small int on a 32-bit board)
    if w <= 0:
        return 0
    return (((1 << (w - 1)) - 1) << 1) | 1


def _window(ph, pl, pos, w):
    # floor(P / 2**pos) mod 2**w for P = ph * 2**24 + pl (ph < 2**29, pl < 2**24), any pos, w <= 30;
    # every intermediate below 2**w
    if pos >= 24:
        if pos >= 53:
            return 0
        return (ph >> (pos - 24)) & _ones(w)
    if pos >= 0:
        v = pl >> pos
        room = w - (24 - pos)  # bits taken from ph
        if room > 0:
            v |= (ph & _ones(room)) << (24 - pos)
        return v & _ones(w)
    k = -pos
    if k >= w:
        return 0
    room = w - k  # low bits of P kept
    if room <= 24:
        return (pl & _ones(room)) << k
    return ((ph & _ones(room - 24)) << (24 + k)) | (pl << k)


def _below(ph, pl, pos):
    # True if P has a set bit below 2**pos
    if pos <= 0:
        return False
    if pos <= 24:
        return (pl & _ones(pos)) != 0
    return pl != 0 or (ph & _ones(pos - 24 if pos < 53 else 29)) != 0


def _exact_code(neg, mh, ml, e, a, b, s):
    # golden's code clamp(floor(fl(fl(x * a + c) + 0.5)), 0, 255) in float64 (fl: round to nearest
    # even, 53 bits) for x = (-1)**neg * (mh * 2**16 + ml) * 2**e (mh, ml < 2**16), a = A / 2**s,
    # c + 0.5 = b / 2**s. x * a is exact in float64; the two roundings lift V = x * a + c + 0.5 to the
    # integer k above it exactly when k - V <= 2**(floor(log2(k - 0.5)) - 53) (k >= 2), or
    # k - V < 3 * 2**-55 (k = 1). Small ints only: P = |x| * A as ph * 2**24 + pl.
    p0 = (ml & 0xFF) * a
    p1 = (ml >> 8) * a
    p2 = (mh & 0xFF) * a
    t = p0 + ((p1 & 0xFFFF) << 8) + ((p2 & 0xFF) << 16)
    pl = t & 0xFFFFFF
    ph = (t >> 24) + (p1 >> 16) + (p2 >> 8) + (mh >> 8) * a
    bh = b >> s
    if ph == 0 and pl == 0:
        v = bh
    else:
        r = s - e  # |x * a| = P / 2**r
        top = _bitlen(ph) + 24 if ph else _bitlen(pl)  # 2**(top-1) <= P < 2**top
        if top - r > 29:  # |x * a| >= 2**29 > |c| + 256
            return 0 if neg else 255
        xi = _window(ph, pl, r, 30)  # integer part of |x * a|
        xf = _window(ph, pl, r - 30, 30)  # its next 30 fraction bits; below them: P mod 2**u
        u = r - 30
        bl = (b & _ones(s)) << (30 - s)  # B's fraction bits at 2**-30
        if neg:
            sticky = _below(ph, pl, u)
            dd = bl - xf - (1 if sticky else 0)
            borrow = 0
            if dd < 0:
                dd = dd + 0x3FFFFFFF + 1
                borrow = 1
            v = bh - xi - borrow
            near = sticky and dd == 0x3FFFFFFF  # V within 2**-30 below v + 1
        else:
            if xf > 0x3FFFFFFF - bl:
                fr = xf - (0x3FFFFFFF - bl) - 1
                v = bh + xi + 1
            else:
                fr = xf + bl
                v = bh + xi
            near = fr == 0x3FFFFFFF
        k = v + 1
        if near and 1 <= k <= 255:
            # R = (P mod 2**u) / 2**u: k - V = (1 - R) / 2**30 (positive x) or R / 2**30 (negative x)
            if k == 1:
                hi = _window(ph, pl, u - 25, 25)  # floor(R * 2**25)
                if neg:
                    bump = hi < 3
                else:
                    bump = hi > 0x1FFFFFD or (hi == 0x1FFFFFD and _below(ph, pl, u - 25))
            else:
                m = 24 - _bitlen(k - 1)  # k - V <= 2**-(30 + m)
                hi = _window(ph, pl, u - m, m)  # floor(R * 2**m)
                if neg:
                    bump = hi == 0 or (hi == 1 and not _below(ph, pl, u - m))
                else:
                    bump = hi == _ones(m)
            if bump:
                v = k
    return 0 if v < 0 else (255 if v > 255 else v)


def _decode_portable(raw, h, out):
    # edgenn_viper.decode on the bytes of the features (little-endian)
    kind = h[0]
    d = h[3]
    e = 0
    if kind == 0:
        o = d << 2
        ex = ((raw[o + 3] & 0x7F) << 1) | (raw[o + 2] >> 7)
        if ex == 0xFF:
            return 0
        neg = raw[o + 3] >> 7
        mh = raw[o + 2] & 0x7F
        ml = raw[o] | (raw[o + 1] << 8)
        e = -149
        if ex:
            mh |= 0x80
            e = ex - 150
    elif kind == 1:
        o = d << 3
        ex = ((raw[o + 7] & 0x7F) << 4) | (raw[o + 6] >> 4)
        if ex == 0x7FF:
            return 0
        mh = ((raw[o + 6] & 0xF) << 3) | (raw[o + 5] >> 5)
        ml = ((raw[o + 5] & 0x1F) << 11) | (raw[o + 4] << 3) | (raw[o + 3] >> 5)
        if raw[o] or raw[o + 1] or raw[o + 2] or raw[o + 3] & 0x1F or (ex == 0 and (mh or ml)):
            return 2
        neg = raw[o + 7] >> 7
        if ex:
            mh |= 0x80
            e = ex - 1046
    elif kind == 2:
        o = d << 1
        ml = raw[o] | (raw[o + 1] << 8)
        neg = ml >> 15
        if neg:
            ml = 0x10000 - ml
        mh = 0
    else:
        o = d << 2
        ml = raw[o] | (raw[o + 1] << 8)
        mh = raw[o + 2] | (raw[o + 3] << 8)
        neg = mh >> 15
        if neg:
            borrow = 0 if ml == 0 else 1
            ml = (0x10000 - ml) & 0xFFFF
            mh = (0x10000 - mh - borrow) & 0xFFFF
    out[0] = neg
    out[1] = mh
    out[2] = ml
    out[3] = e
    return 1


def _codes_portable(raw, q, xq, h):
    # edgenn_viper.codes in bytecode (same arithmetic, same results, same return value)
    me = _ME
    kind = h[0]
    for d in range(h[1], h[2]):
        h[3] = d
        a = q[2 * d]
        f = (a >> 20) & 0x1F
        t = (a >> 25) - f  # S - f
        a &= 0xFFFFF
        if f == 0:
            return (d << 2) | 1
        st = _decode_portable(raw, h, me)
        if st == 0:
            return d << 2
        mh = me[1]
        if st == 2 or mh >= 0x100:  # a float64 that is no float32, an int beyond 2**24
            return (d << 2) | 1
        neg = me[0]
        ml = me[2]
        b = q[2 * d + 1] - _OFF
        if mh == 0 and ml == 0:
            z = b >> (t + f)
            xq[d] = 0 if z < 0 else (255 if z > 255 else z)
            continue
        t0 = (ml & 0xFF) * a
        lo16 = t0 & 0xFF
        t1 = (t0 >> 8) + (ml >> 8) * a
        lo16 |= (t1 & 0xFF) << 8
        hp = (t1 >> 8) + mh * a
        sh = t - me[3]
        rest = 0
        if sh >= 16:
            k = sh - 16
            if k > 30:
                k = 30
            qv = hp >> k
            rest = (hp - (qv << k)) | lo16
        elif sh >= -13 and hp < (1 << (13 + sh)):
            if sh >= 0:
                qv = (hp << (16 - sh)) | (lo16 >> sh)
                rest = lo16 & ((1 << sh) - 1)
            else:
                qv = ((hp << 16) | lo16) << -sh
        elif -29 < sh < -13 and hp == 0 and lo16 < (1 << (29 + sh)):
            qv = lo16 << -sh
        else:
            xq[d] = 0 if neg else 255
            continue
        w = b >> t if t >= 0 else b << -t
        if neg:
            w -= qv
            if rest:
                w -= 1
        else:
            w += qv
        if w < 0:
            xq[d] = 0
        elif w >= (255 << f):
            xq[d] = 255
        else:
            m = (1 << f) - 1
            if (w & m) >= m - 1:
                return (d << 2) | 1
            xq[d] = w >> f
    return -1


def _score_portable(u, r, w, n):
    # edgenn_viper.score in bytecode: w is the array('H') of (c, e, m) per input; r the int8 output
    # (r[d] + 128 is the reconstruction code). Counting n down keeps the frame small (no extra local).
    s = 0
    while n:
        n -= 1
        t = u[n] - r[n] - 128
        s += w[3 * n] * t * t
        t = u[n] - w[3 * n + 2]
        s += w[3 * n + 1] * t * t
    return s


def _argmax_portable(q, n):
    best = 0
    for k in range(1, n):
        if q[k] > q[best]:
            best = k
    return best


_ME = array.array("i", bytes(16))  # the decoded value (_codes_portable, Net._code)
_KINDS = {"f": 0, "d": 1, "h": 2, "i": 3}
_ITEM = (4, 8, 2, 4)


class Net:
    """A loaded model. Attributes: name, task ("classify"|"regress"), n_inputs, n_outputs, labels,
    kernel, in_scale/in_offset/out_scale/out_zero_point (array('f')), n_layers."""

    def __init__(self, f, hdr, length, kernel):
        flags = hdr[6] | (hdr[7] << 8)
        version = hdr[4] | (hdr[5] << 8)
        known = 7 if version == _SECTIONS_VERSION else 1
        if flags & ~known:
            raise _malformed("unknown flag bits 0x%04x" % (flags & ~known))
        if flags & 1 and flags & _FLAG_ANOMALY:
            raise _malformed("flags say both regress and anomaly")
        if hdr[18] or hdr[19]:
            raise _malformed("reserved header field is not 0")
        n_layers = hdr[8] | (hdr[9] << 8)
        n_inputs = hdr[10] | (hdr[11] << 8)
        n_outputs = hdr[16] | (hdr[17] << 8)
        _count(n_layers, 1, _MAX_LAYERS, "n_layers")
        _count(n_inputs, 1, _MAX_WIDTH, "n_inputs")
        _count(n_outputs, 1, _MAX_WIDTH, "n_outputs")
        self.task = "regress" if flags & 1 else ("anomaly" if flags & _FLAG_ANOMALY else "classify")
        self.kernel = kernel
        self.n_inputs = n_inputs
        self.n_outputs = n_outputs
        self.n_layers = n_layers
        src = _Source(f, length - 4)
        self.in_scale = src.floats(n_inputs, "in_scale", True)
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
        self.out_scale = src.floats(n_outputs, "out_scale", True)
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
        if version == _FRONTEND_VERSION or flags & _FLAG_FRONTEND:
            self._load_frontend(src, n_inputs, kernel)
        self.threshold = None  # anomaly models: score(x) > threshold means anomalous
        self._sw = None
        if flags & _FLAG_ANOMALY:
            self._load_anomaly(src, n_inputs, n_outputs, kernel)
        if src.pos != src.end:
            raise _malformed("%d unexpected bytes after the last layer" % (src.end - src.pos))
        self.out = self._outs[-1]
        self.xq = bytearray(n_inputs)
        self._q = _input_params(f, n_inputs)
        native = kernel != "portable"  # viper, or asm (which needs viper)
        self._incodes = _viper.codes if native else _codes_portable
        self._decode = _viper.decode if native else _decode_portable
        self._argmax = _viper.argmax if native else _argmax_portable
        self._classify = self.task == "classify"
        self._qh = array.array("i", (0, 0, n_inputs, 0))  # kind, start, n, index (edgenn_viper.codes)
        # a list's values go into _f64 (made by the first list call: not part of the load peak)
        # with one struct.pack_into ("<Nd"); the portable kernel reads raw bits from _raw (a copy
        # made through _copy, an io.BytesIO: no allocation)
        self._f64 = None
        self._fmt = "<%dd" % n_inputs
        self._raw = bytearray(8 * n_inputs) if kernel == "portable" else None
        self._copy = io.BytesIO(8 * n_inputs) if kernel == "portable" else None
        self._real = array.array("f", bytes(4 * n_outputs))

    def _load_anomaly(self, src, n_inputs, n_outputs, kernel):
        # The anomaly section (docs/model-format.md): the threshold (int32), then per input the u16
        # triple c, e, m, read straight into the array the score kernel takes.
        if n_outputs != n_inputs:
            raise _malformed("anomaly model: %d outputs reconstruct %d inputs" % (n_outputs, n_inputs))
        t = src.take(4, "anomaly threshold")
        if t[3] >= 0x40:  # negative or >= 2**30 (checked on the top byte: no long ints)
            raise _malformed("anomaly threshold outside 0..2**30-1")
        self.threshold = t[0] | (t[1] << 8) | (t[2] << 16) | (t[3] << 24)
        sw = array.array("H", bytes(6 * n_inputs))
        src.into(sw, "anomaly score weights", 6 * n_inputs)
        total = 0
        for d in range(n_inputs):
            if sw[3 * d + 2] > 255:
                raise _malformed("anomaly score center %d outside 0..255" % sw[3 * d + 2])
            total += sw[3 * d] + sw[3 * d + 1]
        if total > 16512:  # 65025 * sum(c + e) < 2**30: the score stays a small int
            raise _malformed("anomaly score fails the overflow proof: 65025 * sum(c + e) >= 2**30")
        self._sw = sw
        self._score = _score_portable if kernel == "portable" else _viper.score
        self.predict = self._anomalous  # anomaly models answer predict with the flag

    def _load_frontend(self, src, n_inputs, kernel):
        # The front end's code is a module of its own (edgenn_fe, and its viper kernels in
        # edgenn_fe_viper), imported only here: a model without a front end keeps it out of the heap.
        try:
            import edgenn_fe
        except ImportError:
            raise ValueError("this model computes its features from a sensor window: copy edgenn_fe.py "
                             "(and edgenn_fe_viper.py) to the board too (edgenn deploy installs them)")
        edgenn_fe.setup(self, src, n_inputs, kernel, _malformed)
        self._fem = edgenn_fe

    @property
    def frontend(self):
        """"stats" or "spectral" (the model computes its features from a raw window), or None."""
        return self._fe

    def _run_frontend(self, win, h):
        return self._fem.run(self, win, h)

    def features(self, window):
        """A raw window (axes x window readings, axis-major: all of axis 0, then axis 1, ...) ->
        the front end's integer features in a preallocated array('i'). Integer readings allocate
        nothing; floats are rounded to the nearest integer, everything saturates to int16."""
        if self._fe is None:
            raise ValueError("this model has no front end: its inputs are already features")
        return self._fem.features(self, window)

    def _codes(self, feats):
        # The front end's integer features (array('i')) -> input codes: the exact integer path of
        # an array('i') (edgenn_viper.codes), saturating far outside the code range.
        return self._scale(feats, 3, feats, "i")

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

    def quantize_input(self, features, typecode=None):
        """Raw features -> the preallocated input-code bytearray: clamp(floor(x * in_scale +
        in_offset + 0.5), 0, 255), exactly the golden model's float64 result for the value the board
        holds. NaN/inf -> ValueError. typecode: None for a list/tuple (or any sequence of numbers), or
        the typecode of an array.array ("f", "d", "h" or "i"): its bits are read in place.
        Integer arithmetic on the values' bits (edgenn_viper.codes); an array allocates nothing, a
        list one transient argument array (freed at once; nothing under heap_lock, where a loop
        stores the values instead)."""
        if self._fe is not None:  # a raw window: the front end makes the features
            return self._codes(self.features(features))
        n = self.n_inputs
        if len(features) != n:
            raise ValueError("expected %d features, got %d" % (n, len(features)))
        if typecode is None:
            kind = 1
            src = self._f64
            if src is None:
                src = self._f64 = bytearray(8 * n)
            try:
                struct.pack_into(self._fmt, src, 0, *features)  # floats (and ints) as float64 bits
            except MemoryError:  # heap locked (an interrupt handler): one value at a time instead
                for d in range(n):
                    struct.pack_into("<d", src, d << 3, features[d])
            except TypeError:
                raise ValueError("features must be numbers")
        else:
            kind = 0 if typecode == "f" else _KINDS.get(typecode, -1)
            if kind < 0:
                raise ValueError("typecode %r not supported (use 'f', 'd', 'h', 'i' or None)" % (typecode,))
            src = features
        if self._raw is None:  # native kernel: the bits in place (the hot path, inlined)
            h = self._qh
            h[0] = kind
            r = self._incodes(src, self._q, self.xq, h)
            if r < 0:
                return self.xq
            return self._finish(src, kind, r, features)
        return self._scale(src, kind, features, typecode)

    def _scale(self, src, kind, features, typecode):
        # src (features, or their float64 copy) -> input codes, from the values' bits
        n = self.n_inputs
        raw = self._raw
        if raw is not None:  # portable kernel: the raw bytes, copied without allocating
            c = self._copy
            c.seek(0)
            if c.write(src) != n * _ITEM[kind]:
                raise ValueError("features are not an array of typecode %r" % (typecode,))
            c.seek(0)
            c.readinto(raw)
            src = raw
        h = self._qh
        h[0] = kind
        r = self._incodes(src, self._q, self.xq, h)
        if r < 0:
            return self.xq
        return self._finish(src, kind, r, features)

    def _finish(self, src, kind, r, features):
        # the values the fast path handed back (about 2 in 2**18, or all of a non-dyadic feature)
        codes = self._incodes
        q = self._q
        xq = self.xq
        h = self._qh
        try:
            while r >= 0:
                d = r >> 2
                if not r & 3:
                    raise ValueError("feature %d is %r: NaN and infinity cannot be quantized" % (d, features[d]))
                xq[d] = self._code(src, d, features)
                h[1] = d + 1
                r = codes(src, q, xq, h)
        finally:
            h[1] = 0  # the next call starts at feature 0
        return xq

    def _code(self, src, d, features):
        # one value the fast path returned: exactly, in small ints (_exact_code) when the feature is
        # dyadic and the value a float32 or an int32; else golden's float formula (float objects)
        q = self._q
        a = q[2 * d] & 0xFFFFF
        st = 0
        if a:  # dyadic: the exact small-int path if the value is a float32 or an int32
            me = _ME
            h = self._qh
            h[3] = d
            st = self._decode(src, h, me)
        if st == 2:  # a float64 that is no float32 (double-precision builds): maybe an int
            x = features[d]
            if type(x) is int and -0xFFFFFFFF <= x <= 0xFFFFFFFF:
                st = 1
                me[0] = 1 if x < 0 else 0
                x = -x if x < 0 else x
                me[1] = x >> 16
                me[2] = x & 0xFFFF
                me[3] = 0
        if st == 1:
            s = q[2 * d] >> 25
            return _exact_code(me[0], me[1], me[2], me[3], a, q[2 * d + 1] - _OFF, s)
        x = features[d]
        # comparisons allocate nothing (x - x would: one float object per feature on an ESP32)
        if x != x or x == _INF or x == _NINF:
            raise ValueError("feature %d is %r: NaN and infinity cannot be quantized" % (d, x))
        v = x * self.in_scale[d] + self.in_offset[d] + 0.5
        if v <= 0.0:
            return 0
        if v >= 255.0:
            return 255
        return int(v)  # v > 0: truncation is floor

    def forward(self, features, typecode=None):
        """Raw features -> output scores: the int8 logits (classify, array('b')) or the dequantized
        values out_scale * (q - out_zero_point) (regress, a preallocated array('f'))."""
        q = self.forward_q(self.quantize_input(features, typecode))
        if self.task == "classify":
            return q
        real = self._real
        for k in range(self.n_outputs):
            real[k] = self.out_scale[k] * (q[k] - self.out_zero_point[k])
        return real

    def predict(self, features, typecode=None):
        """Raw features -> class index (classify; ties go to the lowest index) or the first output's
        real value (regress). typecode: as for quantize_input."""
        if typecode is not None and self._raw is None and self._fe is None:
            # the hot path of a sensor loop (an array, the native kernel), inlined: two method calls
            # and their checks cost as much as a small network's layers
            kind = _KINDS.get(typecode, -1)
            n = self.n_inputs
            if kind < 0 or len(features) != n:
                return self._predict_slow(features, typecode)
            h = self._qh
            h[0] = kind
            xq = self.xq
            r = self._incodes(features, self._q, xq, h)
            if r >= 0:
                self._finish(features, kind, r, features)
            layer = self._layer
            blobs = self._blobs
            heads = self._heads
            outs = self._outs
            u = xq
            for i in range(self.n_layers):
                layer(blobs[i], u, outs[i], heads[i])
                u = outs[i]
            q = u
        else:
            q = self.forward_q(self.quantize_input(features, typecode))
        if self._classify:
            return self._argmax(q, self.n_outputs)
        return self.out_scale[0] * (q[0] - self.out_zero_point[0])

    # -------------------------------------------------------------------------- anomaly score
    # S = sum_d c_d * (u_d - r_d)**2 + e_d * (u_d - m_d)**2 over the input codes u and the
    # reconstruction codes r = q + 128 (docs/model-format.md). Small functions with small frames.

    def score(self, features, typecode=None):
        """Raw features (a raw window with a front end) -> the integer anomaly score. Allocates
        nothing for an array (typecode), like predict."""
        return self.score_q(self.quantize_input(features, typecode))

    def score_q(self, xq):
        """Input codes -> the integer anomaly score (forward_q, then the score of its output)."""
        return self._score(xq, self.forward_q(xq), self._sw, self.n_inputs)

    def score_out(self, xq, out):
        """The score of input codes xq whose forward_q output is already in out."""
        return self._score(xq, out, self._sw, self.n_inputs)

    def _anomalous(self, features, typecode=None):
        # predict of an anomaly model (bound at load): True when the score is over the threshold
        return self.score_q(self.quantize_input(features, typecode)) > self.threshold

    def _predict_slow(self, features, typecode):
        # every check of quantize_input and forward_q, with their error messages
        q = self.forward_q(self.quantize_input(features, typecode))
        if self._classify:
            return self._argmax(q, self.n_outputs)
        return self.out_scale[0] * (q[0] - self.out_zero_point[0])


def Window(net, stride=0):
    """Windows from a sensor loop (edgenn_fe.Window: push one sample at a time; every `stride`
    samples, once a whole window is in, the model's front end and network run on the latest window).

        w = edgenn.Window(net, stride=16)
        while True:
            k = w.push((ax, ay, az))       # None, or the class index of the latest window
            if k is not None:
                print(net.label(k))
    """
    if net.frontend is None:
        raise ValueError("Window needs a model with a front end (edgenn train --features stats|spectral)")
    return net._fem.Window(net, stride)
