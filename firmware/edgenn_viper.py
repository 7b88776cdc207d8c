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


@micropython.viper
def score(u: ptr8, r: ptr8, w: ptr16, n: int) -> int:
    """The anomaly score of input codes u[0:n] and the int8 reconstruction r[0:n] (r + 128 is a code:
    the byte ^ 0x80): sum of c * (u - r)**2 + e * (u - m)**2 with (c, e, m) = w[3d:3d+3]. Below 2**30
    by the file's overflow proof (65025 * sum(c + e) < 2**30)."""
    s = 0
    d = 0
    k = 0
    while d < n:
        x = u[d]
        t = x - (r[d] ^ 0x80)
        s += w[k] * t * t
        t = x - w[k + 2]
        s += w[k + 1] * t * t
        d += 1
        k += 3
    return s


# ------------------------------------------------------------------------------ sensor front end
#
