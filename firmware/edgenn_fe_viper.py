# edgenn sensor front end, viper kernels: fe_load, fe_series, fe_fft, fe_bands (docs/model-format.md,
# "The sensor front end"). A module of its own, imported by edgenn_fe only when a loaded model has a
# front end: a model without one keeps this code out of the heap. Builds without the native emitter
# raise SyntaxError here; edgenn_fe then runs its portable twin, which computes the same bytes.
import micropython

_OFF = const(0x20000000)  # 2**29: stored values stay non-negative (see below)
_HALF_OFF = const(0x10000000)


# The same bytes as the portable twin in edgenn_fe.py. ws (array('i')) holds the scratch series, the
# magnitude, the FFT area (2P words: element i is re, im at words 2i, 2i + 1 here, interleaved, so
# both butterfly operands are constant offsets from the two register locals) (all stored + _OFF so
# that a ptr32 load is right whether the build zero- or sign-extends it), the bit-reversal table and
# band edges (plain), and the Q14 twiddles (+ _OFF). The window (array('H')) holds reading + 32768.
# h (array('i')) holds the sizes and offsets below. Every value stays inside 32 bits: |reading| <=
# 2**15, sums < 2**28, FFT products < 2**28, the sum of two stored values < 2**30 + 2**15.

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
_H_IM = const(11)  # (the portable twin's imaginary area; the viper kernels interleave)
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
    while uint(ws) < end:  # the sample lives in feats (a register local, unused until below)
        feats = ptr32(int(ws[0]) - _OFF)
        s += int(feats)
        if int(feats) < lo:
            lo = int(feats)
        if int(feats) > hi:
            hi = int(feats)
        if int(feats) > prv:
            mac += int(feats) - prv
        else:
            mac += prv - int(feats)
        prv = int(feats)
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
    else:  # (v in feats, the free register local)
        while uint(ws) < end:
            feats = ptr32(((int(ws[0]) - mo) << ls) >> rs)
            q += int(feats) * int(feats)
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
