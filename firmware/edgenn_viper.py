# edgenn viper kernels: the fast path of the integer forward pass (see edgenn.py for the layout).
#
# A separate module because builds without the native emitters (WebAssembly, some ports) raise
# SyntaxError on @micropython.viper at compile time: edgenn imports this inside try/except and falls
# back to its portable bytecode kernel, which computes the same bytes.
#
# Layer blob (bytearray), exactly the layer body of the .enn file after load-time preparation:
#   [n_out * n_in weights, stored offset by 128 (w ^ 0x80, so 0..255: ptr8 loads are unsigned)]
#   [n_out x i32 bias LE] [n_out x u16 mult LE] [n_out x u8 shift] [256-byte lut, sigmoid/tanh only]
# Layer header h (array('i')): n_in, n_out, activation code, out_zero + _OFF (all non-negative, so a
# ptr32 load is the same whether the build sign- or zero-extends it).
#
# Arithmetic rules (32-bit viper ints on an ESP32 wrap silently): sum_d (w+128)*u < 255*255*4096 < 2**28,
# the true accumulator is below 2**29 (the overflow proof, checked at load), and requantization uses the
# nested 31-bit form of docs/model-format.md, so nothing here reaches 2**31.
import micropython

_OFF = const(0x20000000)  # 2**29: keeps header values non-negative
_HALF_OFF = const(0x10000000)


@micropython.viper
def layer(w: ptr8, x: ptr8, out: ptr8, h: ptr32):
    # w (the blob, then the running weight pointer) and x (the running input pointer) are the first
    # two locals: the viper emitter keeps those in registers (on xtensawin only those), the others
    # live in stack slots. One expression of 16 products keeps the partial sum in registers:
    # 11.1 xtensa instructions per multiply-accumulate (a naive indexed loop is 54).
    n_in = int(h[0])
    n_out = int(h[1])
    act = int(h[2])
    oz = int(h[3]) - _OFF
    ub = uint(x)
    end16 = ub + uint(n_in & 0xFFF0)
    end4 = ub + uint(n_in & 0xFFFC)
    end1 = ub + uint(n_in)
    # sum(u) once per layer: sum (w+128)*u - 128*sum(u) = sum w*u
    su = 0
    while uint(x) < end16:
        su += (x[0] + x[1] + x[2] + x[3] + x[4] + x[5] + x[6] + x[7]
               + x[8] + x[9] + x[10] + x[11] + x[12] + x[13] + x[14] + x[15])
        x = ptr8(uint(x) + 16)
    while uint(x) < end1:
        su += x[0]
        x = ptr8(uint(x) + 1)
    corr = su << 7
    pb = int(w) + n_out * n_in  # bias, then mult, then shift, then lut
    pm = pb + (n_out << 2)
    ps = pm + (n_out << 1)
    pl = ps + n_out
    c = 0
    while c < n_out:
        acc = 0
        x = ptr8(ub)
        while uint(x) < end16:
            acc += (w[0] * x[0] + w[1] * x[1] + w[2] * x[2] + w[3] * x[3]
                   + w[4] * x[4] + w[5] * x[5] + w[6] * x[6] + w[7] * x[7]
                   + w[8] * x[8] + w[9] * x[9] + w[10] * x[10] + w[11] * x[11]
                   + w[12] * x[12] + w[13] * x[13] + w[14] * x[14] + w[15] * x[15])
            w = ptr8(uint(w) + 16)
            x = ptr8(uint(x) + 16)
        while uint(x) < end4:
            acc += w[0] * x[0] + w[1] * x[1] + w[2] * x[2] + w[3] * x[3]
            w = ptr8(uint(w) + 4)
            x = ptr8(uint(x) + 4)
        while uint(x) < end1:
            acc += w[0] * x[0]
            w = ptr8(uint(w) + 1)
            x = ptr8(uint(x) + 1)
        b = ptr8(pb + (c << 2))
        acc += b[0] | (b[1] << 8) | (b[2] << 16) | (((b[3] ^ 0x80) - 0x80) << 24)
        acc -= corr
        m = ptr8(pm + (c << 1))
        mult = m[0] | (m[1] << 8)
        t = ptr8(ps)[c]
        if t == 15:
            y = (acc >> 15) * mult + ((((acc & 0x7FFF) * mult) + 0x4000) >> 15)
        else:
            y = ((acc >> 15) * mult + (((acc & 0x7FFF) * mult) >> 15) + (1 << (t - 16))) >> (t - 15)
        v = y + oz
        if act == 1:  # relu: clamp to 0..255
            if v < 0:
                v = 0
            elif v > 255:
                v = 255
            out[c] = v
        else:
            if v < -128:
                v = -128
            elif v > 127:
                v = 127
            if act == 0:  # identity (last layer): int8, stored as its two's complement byte
                out[c] = v & 0xFF
            else:  # sigmoid / tanh: table lookup
                out[c] = ptr8(pl)[v + 128]
        c += 1


@micropython.viper
def prepare(blob: ptr8, h: ptr32) -> int:
    """Offset the weights by 128 in place and check every neuron's parameters.
    Returns -1 if all is well, else 4 * neuron + problem (1: mult, 2: shift, 3: overflow proof)."""
    n_in = int(h[0])
    n_out = int(h[1])
    pb = n_out * n_in
    pm = pb + (n_out << 2)
    ps = pm + (n_out << 1)
    k = 0
    c = 0
    while c < n_out:
        s = 0
        end = k + n_in
        while k < end:
            w = blob[k] ^ 0x80
            blob[k] = w
            if w < 128:
                s += 128 - w
            else:
                s += w - 128
            k += 1
        o = pb + (c << 2)
        bias = blob[o] | (blob[o + 1] << 8) | (blob[o + 2] << 16) | (((blob[o + 3] ^ 0x80) - 0x80) << 24)
        if bias < 0:
            if bias <= -0x20000000:  # tested before negating: -2**31 would wrap on 32 bits
                return (c << 2) + 3
            bias = 0 - bias
        mult = blob[pm + (c << 1)] | (blob[pm + (c << 1) + 1] << 8)
        t = blob[ps + c]
        if mult < 1 or mult > 32767:
            return (c << 2) + 1
        if t < 15 or t > 29:
            return (c << 2) + 2
        # two steps so that the sum cannot wrap on 32 bits (s * 255 < 2**27)
        if bias >= 0x20000000 or bias + s * 255 >= 0x20000000:
            return (c << 2) + 3
        c += 1
    return -1



# ------------------------------------------------------------------------------ input codes
# Input codes from the raw bits of the features (docs/model-format.md, "Input codes in integers"):
# no float object, nothing allocated, every intermediate below 2**30. src holds n values of one
# kind: 0 float32, 1 float64 (two words each), 2 int16, 3 int32. q holds 2 ints per feature
# (edgenn._input_params): A | f << 20 | S << 25 and B + 2**29 (non-negative: a ptr32 load may
# zero-extend on a 64-bit build).
# The value is (-1)**neg * mx * 2**e (mx < 2**24); with P = mx * A and sh = S - f - e,
# W = B >> (S - f) + (-1)**neg * P / 2**sh rounded down is floor(V * 2**f) or one less, for
# V = x * in_scale + in_offset + 0.5 (B << (f - S) when f > S), so W settles the code unless it is
# within 2 of a multiple of 2**f. Those values (about 2**(1-f) of them), features without this path (f == 0), float64 values
# that are not float32 values and ints beyond 2**24 are returned to the caller, which finishes them
# with the exact bytecode path (edgenn._exact_code).
# h (array('i')): kind, start, n, and for decode the index. Returns -1 when every code from `start`
# on is written, else 4 * d + 1 (feature d needs the exact path) or 4 * d (feature d is NaN or inf).


@micropython.viper
def codes(src: ptr32, q: ptr32, xq: ptr8, h: ptr32) -> int:
    # h: kind, start, n (one buffer: the ESP32 machine-code tests pass pointers only)
    kind = h[0]
    d = h[1]
    n = h[2]
    half = ptr16(src)
    while d < n:
        p = d << 1
        a = q[p]
        f = (a >> 20) & 0x1F
        t = ((a >> 25) & 0x1F) - f  # S - f, negative when f > S
        a &= 0xFFFFF
        if f == 0:
            return (d << 2) | 1
        if kind == 0:
            # The common case in one pass: a normal float32 with sh = S - f - e >= 16. Few statements,
            # long expressions: the viper emitter keeps an expression's partial results in registers
            # but every local in a stack slot. Same arithmetic as below (hp = floor(P / 2**16)).
            w = src[d]
            ex = (w >> 23) & 0xFF
            if ex == 0 and (w & 0x7FFFFF) == 0:  # +-0: V = B / 2**S
                v = (q[p + 1] - _OFF) >> (t + f)
                xq[d] = 0 if v < 0 else (255 if v > 255 else v)
                d += 1
                continue
            sh = t + 150 - ex
            if ex != 0 and ex != 0xFF and sh >= 16:
                mx = (w & 0x7FFFFF) | 0x800000
                hp = ((((((mx & 0xFF) * a) >> 8) + ((mx >> 8) & 0xFF) * a) >> 8) + (mx >> 16) * a)
                k = sh - 16
                if k > 30:
                    k = 30  # hp < 2**29
                v = q[p + 1] - _OFF
                if t >= 0:
                    v = v >> t
                else:
                    v = v << (0 - t)
                if (w >> 31) & 1:  # negative: floor of -P / 2**sh, one less if any bit of P is below
                    v -= hp >> k
                    if (hp & ((1 << k) - 1)) or (((mx & 0xFF) * (a & 0xFFFF)
                                                  + ((((mx >> 8) & 0xFF) * (a & 0xFF)) << 8)) & 0xFFFF):
                        v -= 1
                else:
                    v += hp >> k
                if v < 0:
                    xq[d] = 0
                elif v >= (255 << f):
                    xq[d] = 255
                else:
                    m = (1 << f) - 1
                    if (v & m) >= m - 1:
                        return (d << 2) | 1
                    xq[d] = v >> f
                d += 1
                continue
        # the value as (-1)**neg * mx * 2**e with mx < 2**24
        if kind == 0:
            w = src[d]
            ex = (w >> 23) & 0xFF
            if ex == 0xFF:
                return d << 2
            neg = (w >> 31) & 1
            mx = w & 0x7FFFFF
            e = -149
            if ex:
                mx |= 0x800000
                e = ex - 150
        elif kind == 1:
            lo = src[d << 1]
            hi = src[(d << 1) + 1]
            ex = (hi >> 20) & 0x7FF
            if ex == 0x7FF:
                return d << 2
            if lo & 0x1FFFFFFF:  # more mantissa bits than a float32 has
                return (d << 2) | 1
            neg = (hi >> 31) & 1
            mx = ((hi & 0xFFFFF) << 3) | ((lo >> 29) & 7)
            e = 0
            if ex:
                mx |= 0x800000
                e = ex - 1046
            elif mx:  # a float64 subnormal
                return (d << 2) | 1
        else:
            if kind == 2:
                v = half[d] & 0xFFFF
                v -= (v & 0x8000) << 1
            else:
                hs = half[(d << 1) + 1] & 0xFFFF
                hs -= (hs & 0x8000) << 1
                v = (hs << 16) | (half[d << 1] & 0xFFFF)
                if v >= 0x1000000 or v <= -0x1000000:
                    return (d << 2) | 1
            neg = 0
            if v < 0:
                neg = 1
                v = 0 - v
            mx = v
            e = 0
        b = q[p + 1] - _OFF
        if mx == 0:  # V = B / 2**S
            z = b >> (t + f)
            xq[d] = 0 if z < 0 else (255 if z > 255 else z)
            d += 1
            continue
        # P = mx * A = hp * 2**16 + lo16, from three 8 x 20-bit products (each below 2**28)
        t0 = (mx & 0xFF) * a
        lo16 = t0 & 0xFF
        t1 = (t0 >> 8) + ((mx >> 8) & 0xFF) * a
        lo16 |= (t1 & 0xFF) << 8
        hp = (t1 >> 8) + (mx >> 16) * a
        sh = t - e
        big = 0  # P / 2**sh >= 2**29: V * 2**f is beyond the code range by more than |B| / 2**t
        rest = 0
        qv = 0
        if sh >= 16:
            k = sh - 16
            if k > 30:
                k = 30  # hp < 2**29
            qv = hp >> k
            rest = (hp - (qv << k)) | lo16
        elif sh >= 0:
            if hp >= (1 << (13 + sh)):
                big = 1
            else:
                qv = (hp << (16 - sh)) | (lo16 >> sh)
                rest = lo16 & ((1 << sh) - 1)
        elif sh >= -13:
            if hp >= (1 << (13 + sh)):
                big = 1
            else:
                qv = ((hp << 16) | lo16) << (0 - sh)
        elif sh > -29 and hp == 0 and lo16 < (1 << (29 + sh)):
            qv = lo16 << (0 - sh)
        else:
            big = 1
        if big:
            xq[d] = 0 if neg else 255
            d += 1
            continue
        if t >= 0:
            w = b >> t
        else:
            w = b << (0 - t)
        if neg:
            w -= qv
            if rest:
                w -= 1  # floor of a negative value
        else:
            w += qv
        # V * 2**f lies in [w, w + 2)
        if w < 0:
            xq[d] = 0
        elif w >= (255 << f):
            xq[d] = 255
        else:
            m = (1 << f) - 1
            if (w & m) >= m - 1:  # within 2**(1-f) below a code boundary: the exact path decides
                return (d << 2) | 1
            xq[d] = w >> f
        d += 1
    return -1


@micropython.viper
def decode(src: ptr32, h: ptr32, out: ptr32) -> int:
    """Value h[3] of src (kind h[0]) as x = (-1)**out[0] * (out[1] * 2**16 + out[2]) * 2**out[3]
    (out[1], out[2] below 2**16). Returns 1, or 0 for NaN/inf, 2 for a float64 that is not a float32."""
    kind = h[0]
    d = h[3]
    half = ptr16(src)
    e = 0
    if kind == 0:
        w = src[d]
        ex = (w >> 23) & 0xFF
        if ex == 0xFF:
            return 0
        neg = (w >> 31) & 1
        mx = w & 0x7FFFFF
        e = -149
        if ex:
            mx |= 0x800000
            e = ex - 150
        mh = mx >> 16
        ml = mx & 0xFFFF
    elif kind == 1:
        lo = src[d << 1]
        hi = src[(d << 1) + 1]
        ex = (hi >> 20) & 0x7FF
        if ex == 0x7FF:
            return 0
        mx = ((hi & 0xFFFFF) << 3) | ((lo >> 29) & 7)
        if (lo & 0x1FFFFFFF) or (ex == 0 and mx):
            return 2
        neg = (hi >> 31) & 1
        if ex:
            mx |= 0x800000
            e = ex - 1046
        mh = mx >> 16
        ml = mx & 0xFFFF
    elif kind == 2:
        ml = half[d] & 0xFFFF
        neg = (ml >> 15) & 1
        if neg:
            ml = 0x10000 - ml
        mh = 0
    else:
        ml = half[d << 1] & 0xFFFF
        mh = half[(d << 1) + 1] & 0xFFFF
        neg = (mh >> 15) & 1
        if neg:  # |x| = 2**32 - x limb by limb (|x| = 2**31 fits no signed 32-bit word)
            borrow = 1
            if ml == 0:
                borrow = 0
            ml = (0x10000 - ml) & 0xFFFF
            mh = (0x10000 - mh - borrow) & 0xFFFF
    out[0] = neg
    out[1] = mh
    out[2] = ml
    out[3] = e
    return 1


@micropython.viper
def argmax(out: ptr8, n: int) -> int:
    """Index of the largest int8 in out[0:n] (two's complement bytes); ties go to the lowest index."""
    best = 0
    top = (out[0] ^ 0x80) & 0xFF  # int8 + 128: unsigned order is signed order
    k = 1
    while k < n:
        v = (out[k] ^ 0x80) & 0xFF
        if v > top:
            top = v
            best = k
        k += 1
    return best


# ------------------------------------------------------------------------------ sensor front end
#
# The integer front end of docs/model-format.md ("The sensor front end"), the same bytes as the
# portable twin in edgenn.py. ws (array('i')) holds the scratch series, the magnitude, the FFT's real
# and imaginary parts (all stored + _OFF so that a ptr32 load is right whether the build zero- or
# sign-extends it), the bit-reversal table and band edges (plain), and the Q14 twiddles (+ _OFF).
# The window (array('H')) holds reading + 32768. h (array('i')) holds the sizes and offsets below.
# Every value stays far inside 32 bits: |reading| <= 2**15, sums < 2**28, FFT products < 2**27.

_H_AXES = const(0)
_H_WINDOW = const(1)
_H_KIND = const(2)
_H_FFT = const(3)
_H_BANDS = const(4)
_H_BITS = const(5)
_H_STRIDE = const(6)
_H_BASE = const(7)
_H_SERIES = const(8)
_H_MAG = const(9)
_H_RE = const(10)
_H_IM = const(11)
_H_REV = const(12)
_H_EDGE = const(13)
_H_COS = const(14)
_H_SIN = const(15)
_H_NSTATS = const(16)
_H_WSHIFT = const(18)  # log2(window) + 1 when the window is a power of two, else 0
_H_SERIES_INDEX = const(17)  # which series fe_load / fe_series work on (an array field, not an
# argument: pointer-only signatures, so the machine-code harness can run them as they are)


@micropython.viper
def fe_load(win: ptr16, ws: ptr32, h: ptr32):
    """Axis a = h[17] of the window into the series area; its |readings| added to the magnitude.
    win and ws run along the samples (the two locals the xtensa viper emitter keeps in registers)."""
    a = int(h[_H_SERIES_INDEX])
    n = int(h[_H_AXES])
    w = int(h[_H_WINDOW])
    win = ptr16(uint(win) + uint((int(h[_H_BASE]) + a * int(h[_H_STRIDE])) << 1))
    ws = ptr32(uint(ws) + uint(int(h[_H_SERIES]) << 2))
    g = int(h[_H_MAG]) - int(h[_H_SERIES])  # the magnitude sample, in words from the series sample
    end = uint(ws) + uint(w << 2)
    if n == 1:
        while uint(ws) < end:
            ws[0] = int(win[0]) - 32768 + _OFF
            win = ptr16(uint(win) + 2)
            ws = ptr32(uint(ws) + 4)
    elif a == 0:
        while uint(ws) < end:
            x = int(win[0]) - 32768
            ws[0] = x + _OFF
            if x < 0:
                x = 0 - x
            ws[g] = x + _OFF
            win = ptr16(uint(win) + 2)
            ws = ptr32(uint(ws) + 4)
    else:
        while uint(ws) < end:
            x = int(win[0]) - 32768
            ws[0] = x + _OFF
            if x < 0:
                x = 0 - x
            ws[g] = int(ws[g]) + x
            win = ptr16(uint(win) + 2)
            ws = ptr32(uint(ws) + 4)


@micropython.viper
def fe_series(ws: ptr32, feats: ptr32, h: ptr32):
    """Series k = h[17] (axis k, or the magnitude when k == N): its 5 statistics into feats[5k..]; for
    an axis of a spectral front end its normalized samples into re (bit-reversed) for fe_fft. ws and
    feats run along the samples and the bit-reversal table (the two register locals); their starts
    are kept in base and fp."""
    base = uint(ws)
    fp = uint(feats)
    k = int(h[_H_SERIES_INDEX])
    n = int(h[_H_AXES])
    w = int(h[_H_WINDOW])
    src = base + uint((int(h[_H_SERIES]) if k < n else int(h[_H_MAG])) << 2)
    end = src + uint(w << 2)
    ws = ptr32(src)
    y = int(ws[0]) - _OFF
    s = y
    lo = y
    hi = y
    mac = 0
    prv = y
    ws = ptr32(src + 4)
    while uint(ws) < end:
        y = int(ws[0]) - _OFF
        s += y
        if y < lo:
            lo = y
        if y > hi:
            hi = y
        if y > prv:
            mac += y - prv
        else:
            mac += prv - y
        prv = y
        ws = ptr32(uint(ws) + 4)
    lw = int(h[_H_WSHIFT]) - 1  # log2(w) for a power of two: floor division is a shift
    if lw >= 0:
        m = s >> lw
        mac = mac >> lw
    else:  # (`//` calls the runtime) floor division with non-negative operands only
        if s >= 0:
            m = s // w
        else:
            m = 0 - ((0 - s + w - 1) // w)
        mac = mac // w
    lo -= m
    hi -= m
    amax = hi
    if 0 - lo > amax:
        amax = 0 - lo
    sft = 0 - int(h[_H_BITS])
    while amax != 0:
        amax >>= 1
        sft += 1
    fft = int(h[_H_KIND]) == 2 and k < n
    p = int(h[_H_FFT])
    # axes 2j and 2j + 1 share one complex FFT: this axis's samples go into the real (k even) or
    # imaginary (k odd) words of the interleaved FFT area
    re = base + uint(int(h[_H_RE]) << 2) + uint((k & 1) << 2)
    rev = base + uint(int(h[_H_REV]) << 2)
    if fft:  # the zero padding (every other position gets a sample below)
        feats = ptr32(rev + uint(w << 2))
        while uint(feats) < rev + uint(p << 2):
            ptr32(re)[int(feats[0]) << 1] = _OFF
            feats = ptr32(uint(feats) + 4)
        if k == n - 1 and (k & 1) == 0:  # the last axis has no partner: imaginary parts 0
            feats = ptr32(re + 4)
            while uint(feats) < re + uint(p << 3):
                feats[0] = _OFF
                feats = ptr32(uint(feats) + 8)
    q = 0
    ws = ptr32(src)
    feats = ptr32(rev)
    mo = m + _OFF
    ls = 0  # v = (d << ls) >> rs: no branch per sample
    rs = sft
    if sft < 0:
        ls = 0 - sft
        rs = 0
    if fft:
        while uint(ws) < end:
            v = ((int(ws[0]) - mo) << ls) >> rs
            q += v * v
            ptr32(re)[int(feats[0]) << 1] = v + _OFF
            ws = ptr32(uint(ws) + 4)
            feats = ptr32(uint(feats) + 4)
    else:
        while uint(ws) < end:
            v = ((int(ws[0]) - mo) << ls) >> rs
            q += v * v
            ws = ptr32(uint(ws) + 4)
    feats = ptr32(fp)
    ws = ptr32(base)
    if lw >= 0:
        n2 = q >> lw
    else:
        n2 = q // w
    # isqrt(n2), inline (a call would cost more than the loop); the root and the bit live in ws and
    # feats, the register locals (as in fe_bands)
    ws = ptr32(0)
    feats = ptr32(1 << 28)
    while uint(feats) > uint(n2):
        feats = ptr32(uint(feats) >> 2)
    while uint(feats):
        if uint(n2) >= uint(ws) + uint(feats):
            n2 -= int(uint(ws) + uint(feats))
            ws = ptr32((uint(ws) >> 1) + uint(feats))
        else:
            ws = ptr32(uint(ws) >> 1)
        feats = ptr32(uint(feats) >> 2)
    r = int(uint(ws))
    feats = ptr32(fp)
    if sft >= 0:
        r = r << sft
    else:
        r = (r + (1 << (0 - sft - 1))) >> (0 - sft)
    f = k * 5
    feats[f] = m
    feats[f + 1] = r
    feats[f + 2] = lo
    feats[f + 3] = hi
    feats[f + 4] = mac
    if fft:  # for fe_bands: in the axis's first band feature, which fe_bands then overwrites
        feats[int(h[_H_NSTATS]) + k * int(h[_H_BANDS])] = sft + 64


@micropython.viper
def fe_fft(x: ptr32, y: ptr32, h: ptr32):
    """The FFT of the series fe_series left in the FFT area: element i is the words 2i and 2i + 1
    (real, imaginary), each + _OFF. Called with ws twice: x and y become the butterfly's two running
    pointers, the two locals the xtensa viper emitter keeps in registers, so that every data access
    is a load or store at a constant offset; from stage 3 on the loops run twiddle by twiddle (each
    twiddle loaded once, its butterflies 2 * half elements apart)."""
    p = int(h[_H_FFT])
    re0 = uint(x) + uint(int(h[_H_RE]) << 2)
    tw = uint(x) + uint(int(h[_H_COS]) << 2)
    end = re0 + uint(p << 3)
    # Stages 1 and 2 have the twiddles 1 and -i (cos/sin 16384 and 0): the general butterfly's
    # products are then exact shifts, so these loops give the same integers with no multiplication.
    # Both operands + _OFF: (A + B) >> 1 is the halved sum + _OFF as it is, (A - B) >> 1 needs _OFF.
    # Stages 1 and 2 together, on each group of 4 elements (words x[0..7]): stage 1 pairs 0, 1 and
    # 2, 3 (w = 1), stage 2 pairs 0, 2 (w = 1) and 1, 3 (w = -i: tr = bi, ti = -br).
    x = ptr32(re0)
    while uint(x) < end:
        ar = int(x[0])
        br = int(x[2])
        a0r = (ar + br) >> 1
        a1r = ((ar - br) >> 1) + _OFF
        ar = int(x[1])
        br = int(x[3])
        a0i = (ar + br) >> 1
        a1i = ((ar - br) >> 1) + _OFF
        ar = int(x[4])
        br = int(x[6])
        a2r = (ar + br) >> 1
        a3r = ((ar - br) >> 1) + _OFF
        ar = int(x[5])
        br = int(x[7])
        a2i = (ar + br) >> 1
        a3i = ((ar - br) >> 1) + _OFF
        x[0] = (a0r + a2r) >> 1
        x[4] = ((a0r - a2r) >> 1) + _OFF
        x[1] = (a0i + a2i) >> 1
        x[5] = ((a0i - a2i) >> 1) + _OFF
        x[2] = (a1r + a3i) >> 1
        x[6] = ((a1r - a3i) >> 1) + _OFF
        x[3] = ((a1i - a3r) >> 1) + _OFF
        x[7] = (a1i + a3r) >> 1
        x = ptr32(uint(x) + 32)
    # Stages 3..: a = x[0..1], b = y[0..1]; with ar, ai kept + _OFF, ((ar + tr) >> 1) + _OFF / 2 is
    # the true ((ar - _OFF + tr) >> 1) + _OFF (_OFF is even).
    hp = p >> 1  # sin[k] is cos[k + p/2]
    half = 4
    stepb = uint(p << 1) >> 2  # twiddle stride in bytes: p / (2 * half) words
    while half < p:
        hb = uint(half << 3)
        gstep = uint(half << 4)
        j = re0
        t = tw
        while j < re0 + hb:
            x = ptr32(j)
            y = ptr32(j + hb)
            if j == re0:  # w = 1 (c, s = 16384, 0): tr, ti = br, bi exactly, as in stage 1
                while uint(x) < end:
                    ar = int(x[0])
                    br = int(y[0])
                    x[0] = (ar + br) >> 1
                    y[0] = ((ar - br) >> 1) + _OFF
                    ar = int(x[1])
                    br = int(y[1])
                    x[1] = (ar + br) >> 1
                    y[1] = ((ar - br) >> 1) + _OFF
                    x = ptr32(uint(x) + gstep)
                    y = ptr32(uint(y) + gstep)
                j += 8
                t += stepb
                continue
            if j == re0 + (hb >> 1):  # w = -i (c, s = 0, 16384): tr, ti = bi, -br exactly
                while uint(x) < end:
                    ar = int(x[0])
                    ai = int(x[1])
                    br = int(y[0])
                    bi = int(y[1])
                    x[0] = (ar + bi) >> 1
                    y[0] = ((ar - bi) >> 1) + _OFF
                    x[1] = ((ai - br) >> 1) + _OFF
                    y[1] = (ai + br) >> 1
                    x = ptr32(uint(x) + gstep)
                    y = ptr32(uint(y) + gstep)
                j += 8
                t += stepb
                continue
            c = int(ptr32(t)[0]) - _OFF
            sn = int(ptr32(t)[hp]) - _OFF
            while uint(x) < end:
                br = int(y[0]) - _OFF
                bi = int(y[1]) - _OFF
                tr = (c * br + sn * bi) >> 14
                ti = (c * bi - sn * br) >> 14
                ar = int(x[0])
                ai = int(x[1])
                x[0] = ((ar + tr) >> 1) + _HALF_OFF
                y[0] = ((ar - tr) >> 1) + _HALF_OFF
                x[1] = ((ai + ti) >> 1) + _HALF_OFF
                y[1] = ((ai - ti) >> 1) + _HALF_OFF
                x = ptr32(uint(x) + gstep)
                y = ptr32(uint(y) + gstep)
            j += 8
            t += stepb
        half <<= 1
        stepb >>= 1


@micropython.viper
def fe_bands(x: ptr32, y: ptr32, h: ptr32):
    """Band amplitudes of the FFT fe_fft left in the FFT area (called with ws and feats after the odd
    axis k = h[17] of a pair, or after the last axis) into feats[n_stats + a * n_bands ..] for the
    pair's axes a: per bin j, 2 A_j = Z_j + conj(Z_{P-j}) and 2i B_j = Z_j - conj(Z_{P-j}); a band is
    the sum of max + min // 2 of its bins' |components|, unscaled. x and y (the register locals) run
    along Z_j and Z_{P-j}."""
    k = int(h[_H_SERIES_INDEX])
    odd = k & 1
    p = int(h[_H_FFT])
    nb = int(h[_H_BANDS])
    pe = uint(x) + uint(int(h[_H_EDGE]) << 2)
    re0 = uint(x) + uint(int(h[_H_RE]) << 2)
    fa = uint(y) + uint((int(h[_H_NSTATS]) + (k - odd) * nb) << 2)  # the first axis's bands
    sfa = int(ptr32(fa)[0]) - 65  # the axes' normalization shifts (fe_series left them there), - 1:
    sfb = int(ptr32(fa)[nb]) - 65  # the components below are doubled
    b = 0
    while b < nb:
        lo = int(ptr32(pe)[b])
        stop = re0 + uint(int(ptr32(pe)[b + 1]) << 3)
        x = ptr32(re0 + uint(lo << 3))
        y = ptr32(re0 + uint((p - lo) << 3))
        ea = 0
        eb = 0
        while uint(x) < stop:
            r = int(x[0]) + int(y[0]) - _OFF - _OFF  # (both stored + _OFF)
            i = int(x[1]) - int(y[1])
            if r < 0:
                r = 0 - r
            if i < 0:
                i = 0 - i
            if r > i:
                ea += r + (i >> 1)
            else:
                ea += i + (r >> 1)
            if odd:
                r = int(x[1]) + int(y[1]) - _OFF - _OFF
                i = int(x[0]) - int(y[0])
                if r < 0:
                    r = 0 - r
                if i < 0:
                    i = 0 - i
                if r > i:
                    eb += r + (i >> 1)
                else:
                    eb += i + (r >> 1)
            x = ptr32(uint(x) + 8)
            y = ptr32(uint(y) - 8)
        ptr32(fa)[b] = ea
        if odd:
            ptr32(fa)[b + nb] = eb
        b += 1
    a = 0
    while a <= odd:
        sft = sfa
        if a:
            sft = sfb
        x = ptr32(fa + uint(a * nb << 2))
        stop = uint(x) + uint(nb << 2)
        while uint(x) < stop:
            r = int(x[0])
            if sft >= 0:
                r = r << sft
            else:
                r = (r + (1 << (0 - sft - 1))) >> (0 - sft)
            x[0] = r
            x = ptr32(uint(x) + 4)
        a += 1
