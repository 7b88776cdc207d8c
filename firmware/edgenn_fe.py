# edgenn sensor front end (docs/model-format.md, "The sensor front end"): a raw window of readings ->
# the network's integer features, bit-exact with the host's golden model. Imported by edgenn only
# when a loaded model has a front end (a model without one keeps this code out of the heap); its
# viper kernels are in edgenn_fe_viper, the portable twin (e.g. the WebAssembly port) below.
import array

from micropython import const

try:
    import edgenn_fe_viper as _fev
except Exception:  # SyntaxError on builds without the native emitter, or not installed
    _fev = None

_OFF = const(0x20000000)  # 2**29: the twiddles are stored + _OFF (see edgenn_fe_viper)
_INF = float("inf")
_NINF = -_INF


# The portable twin of edgenn_fe_viper.fe_load / fe_series / fe_fft / fe_bands: the same bytes.
# Here the scratch areas of ws hold plain signed values (array('i') stores them exactly); the shared
# tables (bit reversal and band edges plain, twiddles + _OFF) are written once by setup(). Every
# intermediate stays below 2**30: small ints on a 32-bit board, no allocation.

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


def setup(net, src, n_inputs, kernel, _malformed):
    # (Net._load_frontend) The front end section after the layers (docs/model-format.md): sizes, band edges, Q14
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
    net._h = array.array("i", (axes, w, kind, p, nb, bits, w, 0, 0, w, pre, pre + p, prev, pedge,
                                pcos, psin, 5 * n_series, 0,
                                (bits_w + 1) if (1 << bits_w) == w else 0, 0))
    net._ws = ws
    net._win = array.array("H", bytes(2 * axes * w))
    net.feats = array.array("i", bytes(4 * n_inputs))
    native = _fev is not None and kernel != "portable"  # (whichever kernel runs the layers)
    net._fe_load = _fev.fe_load if native else _fe_load_portable
    net._fe_series = _fev.fe_series if native else _fe_series_portable
    # viper: the FFT and the bands are separate functions (the portable series does it all)
    net._fe_fft = _fev.fe_fft if native and kind == 2 else None
    net._fe_bands = _fev.fe_bands if native else None
    net._fe = "stats" if kind == 1 else "spectral"
    net.axes = axes
    net.window = w
    net.n_raw = axes * w


def run(net, win, h):
    load = net._fe_load
    series = net._fe_series
    ws = net._ws
    feats = net.feats
    fft = net._fe_fft
    for a in range(net.axes):
        h[17] = a  # the series to work on
        load(win, ws, h)
        series(ws, feats, h)
        if fft is not None and (a & 1 or a == net.axes - 1):  # one FFT per pair of axes
            fft(ws, ws, h)
            net._fe_bands(ws, feats, h)
    if net.axes > 1:
        h[17] = net.axes  # the magnitude
        series(ws, feats, h)
    return feats


def features(net, window):
    """A raw window (axes x window readings, axis-major: all of axis 0, then axis 1, ...) ->
    the front end's integer features in a preallocated array('i'). Integer readings allocate
    nothing; floats are rounded to the nearest integer, everything saturates to int16."""
    n = net.n_raw
    if len(window) != n:
        raise ValueError("expected %d readings (%d axes x %d samples), got %d"
                         % (n, net.axes, net.window, len(window)))
    win = net._win
    for i in range(n):
        win[i] = _reading(window[i]) + 32768
    return run(net, win, net._h)


class Window:
    """Windows from a sensor loop (edgenn.Window(net, stride) makes one): push one sample (axes
    readings) at a time; every `stride` samples, once a whole window is in, the model's front end
    and network run on the latest `window` samples.

        w = edgenn.Window(net, stride=16)
        while True:
            k = w.push((ax, ay, az))       # None, or the class index of the latest window
            if k is not None:
                print(net.label(k))

    The ring buffer is preallocated: push() allocates nothing for integer readings. Each sample is
    written twice (at i and i + window, per axis), so the latest window is always contiguous."""

    def __init__(self, net, stride=0):
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
        None (for regression models: the first output's value; anomaly models: the integer score,
        anomalous when > net.threshold)."""
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
        q = net.forward_q(net._codes(run(net, buf, h)))
        if net.task != "classify":
            if net._sw is not None:  # anomaly: the integer score of the window (codes in net.xq)
                return net.score_out(net.xq, q)
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
