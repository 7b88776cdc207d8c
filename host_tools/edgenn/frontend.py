"""The sensor front end: a window of raw readings (N axes x W samples, axis-major) -> features.

Two forms of the same features, one owner:
- `features_float`: float64 arithmetic, what the float network is trained and evaluated on;
- `features_int`: the integer specification (docs/model-format.md, "The sensor front end"), what the
  board computes from its raw window values and what the golden model runs, bit-exact. Every
  intermediate is checked against 2**30 (the ESP32's small-int limit).
Both are in the sensor's own units (an integer feature is the float one up to rounding), so the
network's input scaling, fitted on float features, applies to integer features too.

Per series (each axis, then the magnitude |x_0| + ... + |x_{N-1}| per sample when N > 1), after mean
removal: mean, std, min, max, mean absolute change. `spectral` adds, per axis, the amplitude of
`n_bands` frequency bands of a fixed-point radix-2 FFT of the mean-removed axis (zero-padded to
`fft_size`, a power of two; two axes share one complex FFT): the sum over the band's bins k of
max + min/2 of (|Re X_k / P|, |Im X_k / P|), an approximate |X_k / P| without a square root.

Raw values: integers in the int16 range. Larger values saturate at -32768 / 32767; non-integers are
rounded to the nearest integer (halves up: floor(x + 0.5)); NaN and infinity are errors.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

KINDS = ("raw", "stats", "spectral")
KIND_CODES = {"stats": 1, "spectral": 2}
STATS = ("mean", "std", "min", "max", "mac")  # mac: mean absolute change between samples
RAW_MIN, RAW_MAX = -32768, 32767
MAX_AXES = 8
MIN_WINDOW, MAX_WINDOW = 4, 1024
MAX_VALUES = 4096  # axes * window
MAX_FFT = 1024
TWIDDLE_ONE = 1 << 14  # twiddles are Q14: round(16384 * cos), round(16384 * sin)
DEFAULT_BANDS = 8
SMALL_INT_LIMIT = 2**30


@dataclass(frozen=True)
class FrontEnd:
    kind: str  # "stats" | "spectral"
    axes: int
    window: int
    columns: tuple[str, ...]  # raw column names, axis-major (axes * window)
    fft_size: int = 0  # spectral only: a power of two >= window
    band_edges: tuple[int, ...] = ()  # spectral only: n_bands + 1 bin indices, 1 .. fft_size/2 + 1

    @property
    def n_values(self) -> int:
        return self.axes * self.window

    @property
    def n_bands(self) -> int:
        return max(len(self.band_edges) - 1, 0)

    @property
    def n_series(self) -> int:
        return self.axes + (1 if self.axes > 1 else 0)

    @property
    def n_features(self) -> int:
        return len(STATS) * self.n_series + self.axes * self.n_bands

    @property
    def norm_bits(self) -> int:
        return norm_bits(self.window)

    def axis_names(self) -> list[str]:
        """'x', 'y', 'z' from columns x0..x31,y0..,z0..; a0, a1, ... when the names say nothing."""
        names = []
        for a in range(self.axes):
            stem = re.sub(r"[_\-.]?\d+$", "", self.columns[a * self.window]).strip()
            names.append(stem)
        if any(not n for n in names) or len(set(names)) != len(names):
            names = [f"a{a}" for a in range(self.axes)]
        return names

    def feature_names(self) -> list[str]:
        axes = self.axis_names()
        series = axes + (["mag"] if self.axes > 1 else [])
        names = [f"{s}.{stat}" for s in series for stat in STATS]
        names += [f"{a}.band{b}" for a in axes for b in range(self.n_bands)]
        return names

    def to_dict(self) -> dict:
        return {
            "kind": self.kind,
            "axes": self.axes,
            "window": self.window,
            "columns": list(self.columns),
            "fft_size": self.fft_size,
            "band_edges": list(self.band_edges),
        }

    @classmethod
    def from_dict(cls, d: dict) -> FrontEnd:
        fe = cls(
            d["kind"],
            int(d["axes"]),
            int(d["window"]),
            tuple(d["columns"]),
            int(d.get("fft_size", 0)),
            tuple(int(e) for e in d.get("band_edges", ())),
        )
        check(fe)
        return fe


def norm_bits(window: int) -> int:
    """Bits a mean-removed series is normalized to before squaring: W * (2**bits)**2 <= 2**29."""
    return min(12, (29 - (window - 1).bit_length()) // 2)


def default_band_edges(fft_size: int, n_bands: int) -> tuple[int, ...]:
    """n_bands equal-width bands over the bins 1 .. fft_size/2 (DC is left out: the mean is removed)."""
    half = fft_size // 2
    return tuple(1 + (b * half) // n_bands for b in range(n_bands + 1))


def twiddles(fft_size: int) -> tuple[np.ndarray, np.ndarray]:
    """Q14 cos and sin of 2*pi*k/P for k < P/2 (int64), rounded half away from zero."""
    k = np.arange(fft_size // 2)
    angle = 2.0 * np.pi * k / fft_size
    return (
        np.round(TWIDDLE_ONE * np.cos(angle)).astype(np.int64),
        np.round(TWIDDLE_ONE * np.sin(angle)).astype(np.int64),
    )


def make(kind: str, axes: int, columns: list[str], n_bands: int = DEFAULT_BANDS) -> FrontEnd | None:
    """The front end for `--features KIND --axes N` over DATA's feature columns (None for raw)."""
    if kind == "raw":
        return None
    if kind not in KIND_CODES:
        raise ValueError(f"unknown front end {kind!r} (choose from {', '.join(KINDS)})")
    if axes < 1 or len(columns) % axes:
        raise ValueError(f"{len(columns)} value columns do not split into {axes} axes of equal length")
    window = len(columns) // axes
    fft_size = 0
    edges: tuple[int, ...] = ()
    if kind == "spectral":
        fft_size = 1 << (window - 1).bit_length()
        n_bands = min(n_bands, fft_size // 2)
        edges = default_band_edges(fft_size, n_bands)
    fe = FrontEnd(kind, axes, window, tuple(columns), fft_size, edges)
    check(fe)
    return fe


def check(fe: FrontEnd) -> None:
    """Every limit of the format; ValueError saying which."""
    if fe.kind not in KIND_CODES:
        raise ValueError(f"front end kind {fe.kind!r} is not stats or spectral")
    if not 1 <= fe.axes <= MAX_AXES:
        raise ValueError(f"{fe.axes} axes (the front end takes 1..{MAX_AXES})")
    if not MIN_WINDOW <= fe.window <= MAX_WINDOW:
        raise ValueError(f"window of {fe.window} samples (the front end takes {MIN_WINDOW}..{MAX_WINDOW})")
    if fe.n_values > MAX_VALUES:
        raise ValueError(f"{fe.axes} axes x {fe.window} samples is more than {MAX_VALUES} values")
    if len(fe.columns) != fe.n_values:
        raise ValueError(f"{len(fe.columns)} column names for {fe.n_values} values")
    if fe.kind == "stats":
        if fe.fft_size or fe.band_edges:
            raise ValueError("a stats front end has no FFT size or bands")
        return
    p = fe.fft_size
    if p < fe.window or p > MAX_FFT or p & (p - 1):
        raise ValueError(f"FFT size {p} must be a power of two >= the window ({fe.window}), <= {MAX_FFT}")
    e = fe.band_edges
    if len(e) < 2 or e[0] < 1 or e[-1] > p // 2 + 1 or any(b <= a for a, b in zip(e, e[1:])):
        raise ValueError(f"band edges {list(e)} must increase within 1..{p // 2 + 1}")
    if len(e) - 1 > 255:
        raise ValueError("at most 255 bands")


# ------------------------------------------------------------------------------------- raw values


def raw_values(X: np.ndarray) -> np.ndarray:
    """Raw window values -> int64: rounded (floor(x + 0.5)) and saturated to the int16 range."""
    x = np.asarray(X, dtype=np.float64)
    if not np.all(np.isfinite(x)):
        row, col = (int(i) for i in np.argwhere(~np.isfinite(x))[0])
        raise ValueError(f"value {col} of row {row} is {x[row, col]}: NaN and infinity are not readings")
    return np.clip(np.floor(x + 0.5), RAW_MIN, RAW_MAX).astype(np.int64)


def _blocks(fe: FrontEnd, X: np.ndarray) -> np.ndarray:
    x = np.asarray(X)
    if x.ndim == 1:
        x = x.reshape(1, -1)
    if x.ndim != 2 or x.shape[1] != fe.n_values:
        raise ValueError(f"expected windows of {fe.n_values} values ({fe.axes} x {fe.window}), got {x.shape}")
    return raw_values(x).reshape(len(x), fe.axes, fe.window)


# ------------------------------------------------------------------------------------- float form


def features_float(fe: FrontEnd, X: np.ndarray) -> np.ndarray:
    """Raw windows (n, axes*window) -> float64 features (n, n_features)."""
    v = _blocks(fe, X).astype(np.float64)
    series = [v[:, a] for a in range(fe.axes)]
    if fe.axes > 1:
        series.append(np.abs(v).sum(axis=1))
    cols = []
    for s in series:
        mean = s.mean(axis=1)
        d = s - mean[:, None]
        cols += [mean, np.sqrt((d * d).mean(axis=1)), d.min(axis=1), d.max(axis=1)]
        cols.append(np.abs(np.diff(s, axis=1)).sum(axis=1) / s.shape[1])  # per sample of the window
    for a in range(fe.axes if fe.kind == "spectral" else 0):
        d = v[:, a] - v[:, a].mean(axis=1, keepdims=True)
        spectrum = np.fft.fft(d, n=fe.fft_size, axis=1) / fe.fft_size
        mag = magnitude(np.abs(spectrum.real), np.abs(spectrum.imag), 0.5)
        for lo, hi in zip(fe.band_edges, fe.band_edges[1:]):
            cols.append(mag[:, lo:hi].sum(axis=1))
    return np.stack(cols, axis=1)


# ------------------------------------------------------------------------------------- integer form


class _Limit:
    """Tracks the largest |intermediate| and raises if one reaches 2**30 (a long int on the board)."""

    def __call__(self, values: np.ndarray, what: str) -> np.ndarray:
        if values.size and int(np.abs(values).max()) >= SMALL_INT_LIMIT:
            raise AssertionError(f"front end: {what} reaches {int(np.abs(values).max())} (limit 2**30)")
        return values


def isqrt(n: np.ndarray) -> np.ndarray:
    """floor(sqrt(n)) exactly, elementwise, for 0 <= n < 2**52."""
    n = np.asarray(n, dtype=np.int64)
    r = np.floor(np.sqrt(n.astype(np.float64))).astype(np.int64)
    r = np.where(r * r > n, r - 1, r)
    return np.where((r + 1) * (r + 1) <= n, r + 1, r)


def magnitude(a: np.ndarray, b: np.ndarray, half) -> np.ndarray:
    """|X| of a bin from its non-negative components a, b: max + min / 2 (alpha-max-beta-min: between
    |X| and 1.118 |X|; no square root). `half` halves the min: 0.5, or a floor shift."""
    big, small = np.maximum(a, b), np.minimum(a, b)
    return big + (small * half if isinstance(half, float) else small >> 1)


def _unscale(r: np.ndarray, sft: np.ndarray) -> np.ndarray:
    """r * 2**sft: a left shift, or a right shift rounding halves up."""
    up = r << np.maximum(sft, 0)
    k = np.maximum(-sft, 0)
    down = (r + np.where(k > 0, np.int64(1) << np.maximum(k - 1, 0), 0)) >> k
    return np.where(sft >= 0, up, down)


def _series_int(s: np.ndarray, bits: int, lim: _Limit) -> tuple[list[np.ndarray], np.ndarray, np.ndarray]:
    """The five statistics of integer series s (n, W); also the normalized series v and its shift."""
    w = s.shape[1]
    total = lim(s.sum(axis=1), "sum")
    mean = total // w
    d = s - mean[:, None]
    lo, hi = d.min(axis=1), d.max(axis=1)
    mac = lim(np.abs(np.diff(s, axis=1)).sum(axis=1), "sum of |change|") // w
    amax = np.maximum(hi, -lo)
    length = np.array([int(a).bit_length() for a in amax], dtype=np.int64)
    sft = length - bits
    v = np.where(sft[:, None] >= 0, d >> np.maximum(sft, 0)[:, None], d << np.maximum(-sft, 0)[:, None])
    q = lim((v * v).sum(axis=1), "sum of squares")
    std = _unscale(isqrt(q // w), sft)
    return [mean, std, lo, hi, mac], v, sft


def _fft_pair(fe: FrontEnd, va: np.ndarray, vb: np.ndarray, lim: _Limit) -> tuple[np.ndarray, np.ndarray]:
    """The FFT of the complex series va + i*vb (n, W) (two axes in one FFT): radix-2 decimation in
    time, bit-reversed input, each stage halving (so |Z| never grows), Q14 twiddles, floor shifts."""
    p = fe.fft_size
    n = len(va)
    rev = np.array(bit_reverse(p))
    re = np.zeros((n, p), dtype=np.int64)
    im = np.zeros((n, p), dtype=np.int64)
    re[:, rev[: fe.window]] = va
    im[:, rev[: fe.window]] = vb
    cos, sin = twiddles(p)
    h = 1
    while h < p:
        a = np.array([i for i in range(p) if not i & h])
        b = a + h
        k = (a & (h - 1)) * (p // (2 * h))
        c, s = cos[k], sin[k]
        tr = lim(c * re[:, b] + s * im[:, b], "FFT product sum") >> 14
        ti = lim(c * im[:, b] - s * re[:, b], "FFT product sum") >> 14
        ar, ai = re[:, a], im[:, a]
        re[:, a], re[:, b] = (ar + tr) >> 1, (ar - tr) >> 1
        im[:, a], im[:, b] = (ai + ti) >> 1, (ai - ti) >> 1
        h *= 2
    return re, im


def _bands(fe: FrontEnd, re: np.ndarray, im: np.ndarray, sft: np.ndarray, lim: _Limit) -> list[np.ndarray]:
    """Band amplitudes of one axis from the bins' doubled components (re, im) = 2 X_j: the sum over the
    band of magnitude(|re|, |im|), unscaled by sft - 1 (the doubling)."""
    mag = magnitude(np.abs(re), np.abs(im), 1)
    bands = []
    for lo, hi in zip(fe.band_edges, fe.band_edges[1:]):
        total = lim(mag[:, lo - 1 : hi - 1].sum(axis=1), "band sum")
        bands.append(_unscale(total, sft - 1))
    return bands


def _spectral_pair(fe: FrontEnd, a: tuple, b: tuple | None, lim: _Limit) -> list[list[np.ndarray]]:
    """The bands of two axes (normalized series and shift) from one FFT of a + i*b (b None: 0): with
    Z_j the FFT, 2 A_j = Z_j + conj(Z_{P-j}) and 2i B_j = Z_j - conj(Z_{P-j}), j = 1 .. P/2."""
    va, sa = a
    zr, zi = _fft_pair(fe, va, np.zeros_like(va) if b is None else b[0], lim)
    j = np.arange(1, fe.fft_size // 2 + 1)
    fr, fi, br, bi = zr[:, j], zi[:, j], zr[:, fe.fft_size - j], zi[:, fe.fft_size - j]
    out = [_bands(fe, lim(fr + br, "bin sum"), fi - bi, sa, lim)]
    if b is not None:
        out.append(_bands(fe, lim(fi + bi, "bin sum"), fr - br, b[1], lim))
    return out


def features_int(fe: FrontEnd, X: np.ndarray) -> np.ndarray:
    """Raw windows (n, axes*window) -> int64 features (n, n_features): the board's integers."""
    v = _blocks(fe, X)
    lim = _Limit()
    bits = fe.norm_bits
    cols: list[np.ndarray] = []
    normalized = []
    for a in range(fe.axes):
        stats, vn, sft = _series_int(v[:, a], bits, lim)
        cols += stats
        normalized.append((vn, sft))
    if fe.axes > 1:
        cols += _series_int(np.abs(v).sum(axis=1), bits, lim)[0]
    if fe.kind == "spectral":
        for a in range(0, fe.axes, 2):
            partner = normalized[a + 1] if a + 1 < fe.axes else None
            for bands in _spectral_pair(fe, normalized[a], partner, lim):
                cols += bands
    out = np.stack(cols, axis=1) if cols else np.zeros((len(v), 0), np.int64)
    return lim(out, "feature")


def bit_reverse(fft_size: int) -> list[int]:
    levels = fft_size.bit_length() - 1
    return [int(format(t, f"0{levels}b")[::-1], 2) if levels else 0 for t in range(fft_size)]


def describe(fe: FrontEnd | None) -> str:
    if fe is None:
        return "raw"
    text = f"{fe.kind} {fe.axes}x{fe.window} -> {fe.n_features} features"
    if fe.kind == "spectral":
        text += f" (FFT {fe.fft_size}, {fe.n_bands} bands)"
    return text
