"""Type stubs for the edgenn device runtime (firmware/edgenn.py, MicroPython)."""

from array import array
from typing import Sequence

__version__: str
FORMAT_VERSION: int
KERNELS: tuple[str, ...]  # ("viper", "portable") where the build has the native emitter, else ("portable",)

def load(path: str, kernel: str | None = None) -> Net:
    """Load a .enn model. kernel: None (asm if installed and self-tested, else viper if available),
    "asm", "viper" or "portable".
    Raises ValueError ("file is empty", "not an edgenn model (bad magic)", "truncated header",
    "format version N not supported (reader knows 1 and 2)", "truncated: ...", "trailing bytes: ...",
    "CRC mismatch: file is corrupted", "malformed: ...") and OSError if the file cannot be opened."""

class Net:
    name: str
    task: str  # "classify" | "regress" | "anomaly"
    kernel: str  # "asm" | "viper" | "portable"
    n_inputs: int
    n_outputs: int
    n_layers: int
    in_scale: array  # array('f'), n_inputs
    in_offset: array  # array('f'), n_inputs
    out_scale: array  # array('f'), n_outputs
    out_zero_point: array  # array('f'), n_outputs
    xq: bytearray  # the preallocated input-code buffer (what quantize_input returns)
    # Sensor front end (format version 2): the model takes a raw window and computes its features.
    axes: int  # 0 without a front end
    window: int  # samples per axis, 0 without a front end
    n_raw: int  # values predict/forward/quantize_input take: axes * window, else n_inputs
    feats: array  # array('i'), n_inputs: the front end's features (what features() returns)
    # Anomaly models (format version 3): an autoencoder; the integer score S > threshold is anomalous.
    threshold: int | None  # None for other models
    @property
    def frontend(self) -> str | None:
        """"stats" or "spectral" when the model computes its features from a raw window, else None."""
    def features(self, window: Sequence[int]) -> array:
        """A raw window (axes x window readings, axis-major) -> the integer features (the preallocated
        array('i')), bit-exact with the host's golden model. Readings saturate to int16; floats are
        rounded to the nearest integer (halves up). Integer readings allocate nothing.
        ValueError: no front end, wrong count, NaN or infinity."""
    out: array  # the preallocated int8 output buffer, array('b') (what forward_q returns)
    @property
    def labels(self) -> list[str]:
        """Class names (classify) or target names (regress); decoded on each access."""
    def label(self, k: int) -> str: ...
    def quantize_input(self, features: Sequence[float] | array, typecode: str | None = None) -> bytearray:
        """clamp(floor(x * in_scale + in_offset + 0.5), 0, 255) into the preallocated buffer, exactly
        golden's float64 codes, computed from the values' bits in small ints. typecode: None for a
        list/tuple (packed as float64), or the typecode of an array.array: "f", "d", "h", "i" (read
        in place, nothing allocated). With a front end, `features` is the raw window (n_raw
        readings): features() first. ValueError: wrong number of features, NaN or infinity, an
        unsupported typecode."""
    def forward_q(self, xq: bytes | bytearray | memoryview) -> array:
        """Integer network on n_inputs codes -> the preallocated array('b') of int8 outputs.
        Allocates nothing. ValueError: wrong number of codes."""
    def forward(self, features: Sequence[float] | array, typecode: str | None = None) -> array:
        """Raw features -> int8 logits (classify, array('b')) or dequantized values (regress, array('f');
        anomaly: the reconstruction in standardized units).
        The returned buffer is reused by the next call."""
    def predict(self, features: Sequence[float] | array, typecode: str | None = None) -> int | float | bool:
        """Raw features -> class index (classify, ties to the lowest), the first output's value
        (regress) or True when anomalous, score > threshold (anomaly). typecode as for quantize_input:
        predict(buf, "f") allocates nothing."""
    def score(self, features: Sequence[float] | array, typecode: str | None = None) -> int:
        """Anomaly models: raw features (a raw window with a front end) -> the integer anomaly score
        sum_d c_d (u_d - r_d)**2 + e_d (u_d - m_d)**2 (docs/model-format.md), below 2**30, bit-exact
        with the host's golden model. Allocates nothing for an array (typecode) or integer readings."""
    def score_q(self, xq: bytes | bytearray | memoryview) -> int:
        """Anomaly models: the score of n_inputs input codes (forward_q, then the score)."""
    def score_out(self, xq: bytes | bytearray | memoryview, out: array) -> int:
        """Anomaly models: the score of input codes whose forward_q output is already in `out`."""
    def layer_output(self, i: int) -> bytearray | array:
        """Layer i's output bytes from the last forward_q (hidden: bytearray, last: array('b'))."""

class Window:
    """Windows from a sensor loop over a preallocated ring buffer (the model needs a front end; the
    object is an edgenn_fe.Window, the module the model's front end imported).

        w = edgenn.Window(net, stride=16)
        k = w.push((ax, ay, az))    # None, or the class of the latest `net.window` samples
    """

    net: Net
    axes: int
    window: int
    stride: int
    def __init__(self, net: Net, stride: int = 0) -> None:
        """stride: samples between predictions (0: net.window, back-to-back windows).
        ValueError: the model has no front end, stride < 0."""
    def push(self, sample: Sequence[int]) -> int | float | None:
        """One sample (axes readings). Every `stride` samples, once a whole window is in: the front end
        and the network on the latest window -> class index (classify), the first output's value
        (regress) or the integer anomaly score (anomaly: anomalous when > net.threshold); else None.
        Integer readings allocate nothing (classify, anomaly)."""
    def reset(self) -> None:
        """Forget the samples so far."""
