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
