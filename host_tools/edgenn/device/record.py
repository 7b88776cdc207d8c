"""Recording what a board's own program prints -- one sample per line -- into labelled CSV rows.

The board prints samples as numbers separated by commas, spaces or tabs, the same count on every line,
optionally after a header line `# x,y,z` that names the axes. Everything else it prints (boot messages,
its own text, a traceback) is skipped and counted. Two parts:

- `Recorder`: pure. Feed it lines (`feed`), get CSV rows back: one per sample (`t_ms`, axes, `label`),
  or with `window=W` one per W consecutive samples, axis-major (`x0..x{W-1}, y0.., z0..`, `label`),
  every `stride` samples. A line that looks like a damaged sample (a number cut in half, the wrong count
  of numbers, undecodable bytes) means bytes were lost on the line: the window being filled is discarded
  and counted, never stitched across the gap.
- `record()`: the serial loop over `BoardClient` (the one module that owns the port), writing rows through
  `CsvSink`, which replaces the output file atomically when the recording ends, so a crash leaves either
  the old file or the complete new one, never half a row.
"""

from __future__ import annotations

import csv
import re
import sys
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from io import StringIO
from pathlib import Path
from typing import TextIO

import serial

from edgenn.device.client import BoardClient
from edgenn.errors import UserError
from edgenn.outputs import AtomicFile, output_file

NUMBER = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?\Z")
SEPARATORS = re.compile(r"[\s,]+")
# A line that starts like a number but is no valid sample is damage, not text: lost bytes glue the
# halves of two lines together ("12,3" + "4,56" -> "12,34,56") or cut a number ("1.2" + "5" -> "1.25").
STARTS_LIKE_A_NUMBER = re.compile(r"[+-]?\.?\d|[+-]?(nan|inf)\b", re.IGNORECASE)
# A sample with nan or inf in it is a sample that was taken but cannot be stored: a gap, like damage.
NOT_FINITE = re.compile(r"[+-]?(nan|inf|infinity)\Z", re.IGNORECASE)
AXIS_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
# Lines after which the samples no longer continue the ones before (the program restarted or died):
# a window is never stitched across them.
RESTART_MARKERS = ("soft reboot", "Traceback (most recent call last)", "rst:0x", "[vboard: ")
RESERVED_COLUMNS = ("t_ms", "label")


@dataclass
class RecordStats:
    samples: int = 0  # valid sample lines
    rows: int = 0  # CSV rows produced (= windows with --window)
    skipped: int = 0  # text lines (not samples)
    damaged: int = 0  # lines that looked like samples but were not valid ones
    discarded_windows: int = 0  # windows being filled when damage (or a restart) broke the run


@dataclass
class Layout:
    """The columns of a recording: axis names, and W samples per row (None: one row per sample)."""

    axes: list[str]
    window: int | None

    @property
    def columns(self) -> list[str]:
        if self.window is None:
            return ["t_ms", *self.axes, "label"]
        return [f"{axis}{i}" for axis in self.axes for i in range(self.window)] + ["label"]

    @staticmethod
    def default_axes(n: int, window: int | None) -> list[str]:
        # a0_0, a0_1, ...: the underscore keeps axis 1 sample 10 (a1_10) apart from axis 11 sample 0
        return [f"a{i}_" if window is not None else f"a{i}" for i in range(n)]

    @classmethod
    def from_columns(cls, columns: list[str], window: int | None, where: str) -> Layout:
        """The layout of an existing CSV's header, for --append; UserError when it is no recording of
        this kind (the message names what differs)."""
        if not columns or columns[-1] != "label":
            raise UserError(f"{where}: its last column is not `label`, so it is no `edgenn record` file")
        if window is None:
            if columns[0] != "t_ms" or len(columns) < 3:
                raise UserError(
                    f"{where}: {_file_window(columns)}, not one row per sample (t_ms, axes, label): "
                    f"{_SAME_OR_OTHER}"
                )
            return cls(columns[1:-1], None)
        if columns[0] == "t_ms":
            raise UserError(
                f"{where}: holds one row per sample (t_ms, axes, label), not windows of {window}: "
                f"{_SAME_OR_OTHER} (no --window)"
            )
        n_values = len(columns) - 1
        axes = []
        for start in range(0, n_values, window):
            block = columns[start : start + window]
            prefix = block[0][:-1] if block[0].endswith("0") else ""
            if block != [f"{prefix}{i}" for i in range(window)]:
                raise UserError(f"{where}: {_file_window(columns)}, not --window {window}: {_SAME_OR_OTHER}")
            axes.append(prefix)
        return cls(axes, window)


_SAME_OR_OTHER = "record with the file's settings, or choose another -o"


def _file_window(columns: list[str]) -> str:
    """What an existing file's columns hold, in words, for a refusal."""
    first = columns[0]
    prefix = first[:-1] if first.endswith("0") else None
    length = 0
    while prefix is not None and length < len(columns) and columns[length] == f"{prefix}{length}":
        length += 1
    if length and (len(columns) - 1) % length == 0:
        return f"its rows are windows of {length} samples ({prefix}0..{prefix}{length - 1}, ...)"
    return f"its columns ({_short_list(columns)}) are no windows of this length"


class Recorder:
    """Lines in, CSV rows out. Pure: no I/O, no clock (the caller passes t_ms).

    `fixed`: the layout rows must have (an existing file's, for --append): the board's samples must have
    as many axes, and a header it prints must name the same axes."""

    def __init__(
        self, label: str, window: int | None = None, stride: int | None = None, fixed: Layout | None = None
    ):
        if window is not None and window < 1:
            raise UserError(f"--window {window}: a window holds at least 1 sample")
        if stride is not None and window is None:
            raise UserError("--stride needs --window: it is the step between window starts")
        if stride is not None and stride < 1:
            raise UserError(f"--stride {stride}: windows start at least 1 sample apart")
        if "\n" in label or "\r" in label or not label.strip():
            raise UserError("--label: give a non-empty, one-line label such as `wave`")
        self.label = label
        self.window = window
        self.stride = stride if stride is not None else window
        self.fixed = fixed
        self.layout: Layout | None = None  # known at the first sample
        self.header: list[str] | None = None  # the axis names the board's `# ...` line gave, if any
        self.stats = RecordStats()
        self._buffer: deque[list[str]] = deque(maxlen=window or 1)
        self._run = 0  # samples since the run began (damage or a restart begins a new one)

    @property
    def columns(self) -> list[str] | None:
        return self.layout.columns if self.layout else None

    def feed(self, line: str, t_ms: int = 0) -> list[list[str]]:
        """One line the board printed (without its end) -> the rows it completes (zero or one)."""
        text = line.strip()
        if not text:
            return []  # blank lines (e.g. the empty half of a CR LF split) carry nothing
        if text.startswith("#"):
            self._on_header(text)
            return []
        if "\ufffd" in text or any(ord(c) < 32 and c != "\t" for c in text):
            self._damage()  # bytes that are no text: line noise, so bytes were lost or garbled
            return []
        tokens = SEPARATORS.split(text.strip(", \t"))
        if all(NUMBER.match(t) or NOT_FINITE.match(t) for t in tokens):
            if any(NOT_FINITE.match(t) for t in tokens):
                self._damage()
                return []
            if self.layout is None:
                self._fix_layout(len(tokens))
            if len(tokens) != len(self.layout.axes):
                self._damage()
                return []
            return self._on_sample(tokens, t_ms)
        if STARTS_LIKE_A_NUMBER.match(text):
            self._damage()
            return []
        self.stats.skipped += 1
        if any(marker in text for marker in RESTART_MARKERS):
            self._break_run()
        return []

    def feed_all(self, lines: Iterable[str]) -> list[list[str]]:
        """Every row the lines complete (t_ms 0): for tests and for replaying a saved log."""
        rows = []
        for line in lines:
            rows += self.feed(line)
        return rows

    # ---- internals -----------------------------------------------------------------------------

    def _on_header(self, text: str) -> None:
        names = [n for n in SEPARATORS.split(text[1:].strip(", \t")) if n]
        valid = (
            names
            and all(AXIS_NAME.match(n) for n in names)
            and len(set(names)) == len(names)
            and not set(names) & set(RESERVED_COLUMNS)
        )
        if not valid or (self.layout is not None and len(names) != len(self.layout.axes)):
            self.stats.skipped += 1  # a comment, not a header naming these axes
            return
        if self.layout is not None:
            return  # printed again, or late: the columns in use keep their names
        fixed = self.fixed
        if (
            fixed is not None
            and fixed.axes != names
            and fixed.axes != Layout.default_axes(len(fixed.axes), fixed.window)
        ):
            raise UserError(
                f"the board names its axes {','.join(names)}, the file has "
                f"{','.join(a.rstrip('_') for a in fixed.axes)}: append to a file recorded from the same "
                "program, or choose another -o"
            )
        self.header = names

    def _fix_layout(self, n: int) -> None:
        if self.fixed is not None:
            if n != len(self.fixed.axes):
                raise UserError(
                    f"the board prints {n} value(s) per sample, the file has {len(self.fixed.axes)} "
                    f"axes ({','.join(self.fixed.axes)}): append to a file recorded from the same "
                    "program, or choose another -o"
                )
            self.layout = self.fixed
            return
        if self.header is not None and len(self.header) != n:
            self.header = None  # named some other number of axes: not these samples' header
        axes = self.header or Layout.default_axes(n, self.window)
        self.layout = Layout(list(axes), self.window)

    def _on_sample(self, tokens: list[str], t_ms: int) -> list[list[str]]:
        self.stats.samples += 1
        if self.window is None:
            self.stats.rows += 1
            return [[str(t_ms), *tokens, self.label]]
        self._buffer.append(tokens)
        self._run += 1
        if self._run < self.window or (self._run - self.window) % self.stride:
            return []
        self.stats.rows += 1
        row = [sample[axis] for axis in range(len(tokens)) for sample in self._buffer]
        return [[*row, self.label]]

    def _in_progress(self) -> int:
        """Windows begun in this run and not complete yet (a window begins every `stride` samples)."""
        if self.window is None or self._run == 0:
            return 0
        # begins j*stride with run - window < j*stride <= run - 1
        first = max(0, (self._run - self.window) // self.stride + 1)
        last = (self._run - 1) // self.stride
        return max(0, last - first + 1)

    def _break_run(self) -> None:
        self.stats.discarded_windows += self._in_progress()
        self._buffer.clear()
        self._run = 0

    def _damage(self) -> None:
        self.stats.damaged += 1
        self._break_run()


def _short_list(items: list[str], limit: int = 4) -> str:
    return ",".join(items) if len(items) <= limit else ",".join(items[:limit]) + f",... ({len(items)})"


# ---- the output file ---------------------------------------------------------------------------


def read_header(path: Path) -> list[str] | None:
    """The header row of an existing CSV for --append; None when the file does not exist or is empty.
    Refuses a file whose last row is incomplete (it would glue the first new row onto it)."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise UserError(f"cannot read {path} to append to it: {exc.strerror}") from None
    if not data.strip():
        return None
    if not data.endswith(b"\n"):
        raise UserError(f"{path}: its last row is incomplete (no line end): fix or remove it first")
    first = data.split(b"\n", 1)[0].decode("utf-8", "replace")
    return next(csv.reader([first]))


class CsvSink:
    """Rows into OUT atomically: they go to a temporary file beside OUT (a copy of OUT for --append),
    which replaces OUT in one `os.replace` at `commit()`. Until then OUT is untouched, so a crash leaves
    the old OUT; and only whole rows are committed, even if Ctrl-C lands in the middle of a write."""

    def __init__(self, path: Path, columns: list[str], append: bool):
        self.path = path
        self.columns = columns
        existing = append and read_header(path) is not None
        try:
            mode = path.stat().st_mode & 0o7777 if existing else None  # --append keeps OUT's mode
        except OSError:
            mode = None
        self._out = AtomicFile(path, mode)
        self.tmp = self._out.tmp
        self._file = self._out.file
        self.rows_before = 0
        self._size = 0  # bytes of whole rows written: what commit() keeps
        if existing:
            old = path.read_bytes()
            self.rows_before = old.count(b"\n") - 1  # minus the header
            self._write(old)
        else:
            self._write(_csv_text([columns]))
        self.rows = 0

    def write(self, rows: list[list[str]]) -> None:
        self._write(_csv_text(rows))
        self.rows += len(rows)

    def _write(self, data: bytes) -> None:
        self._out.write(data)
        self._size += len(data)

    def commit(self) -> None:
        self._file.flush()
        self._file.truncate(self._size)
        self._out.commit()

    def abandon(self) -> None:
        self._out.abandon()


def _csv_text(rows: list[list[str]]) -> bytes:
    out = StringIO()
    csv.writer(out, lineterminator="\n").writerows(rows)
    return out.getvalue().encode("utf-8")


# ---- the serial loop ---------------------------------------------------------------------------


@dataclass
class RecordResult:
    file: str
    label: str
    columns: int
    axes: list[str]
    window: int | None
    stride: int | None
    samples: int
    rows: int
    skipped: int
    damaged: int
    discarded_windows: int
    seconds: float
    samples_per_s: float
    appended: bool
    rows_in_file: int
    stopped: str  # why it ended: "samples", "seconds", "interrupted", "port closed" (or "stalled")

    @property
    def interrupted(self) -> bool:
        return self.stopped == "interrupted"

    def as_dict(self) -> dict:
        return asdict(self)


def record(
    board: BoardClient,
    output: Path,
    label: str,
    *,
    seconds: float | None = None,
    samples: int | None = None,
    window: int | None = None,
    stride: int | None = None,
    reset: bool = False,
    append: bool = False,
    stall_timeout: float = 5.0,
    progress: Callable[[RecordStats, float], None] | None = None,
) -> RecordResult:
    """Record from a board until `samples` samples or `seconds` seconds have been read (or Ctrl-C, or
    no sample for `stall_timeout` seconds, or the port closes), writing rows to `output` atomically.

    The settings are checked before the port is opened (`board.serial` opens it). Ctrl-C keeps what
    was recorded (`stopped == "interrupted"`); the caller decides the exit status. A board that stops
    printing samples, or a port that goes away, keeps what was recorded and raises UserError saying so."""
    if seconds is None and samples is None:
        raise UserError("how long? pass --seconds S or --samples N")
    if seconds is not None and seconds <= 0:
        raise UserError(f"--seconds {seconds}: record for a positive number of seconds")
    if samples is not None and samples < 1:
        raise UserError(f"--samples {samples}: record at least 1 sample")
    output = output_file(output, ".csv")  # never over a model
    fixed = None
    if append:
        existing = read_header(output)
        if existing is not None:
            fixed = Layout.from_columns(existing, window, f"--append {output}")
    recorder = Recorder(label, window, stride, fixed)

    try:
        board.serial.reset_input_buffer()  # what a real port buffered before we came is stale
    except (serial.SerialException, OSError):
        pass
    if reset:
        board.send_soft_reset(echo=False)  # what the old program printed up to the reset is thrown away
    sink: CsvSink | None = None
    start = time.monotonic()
    deadline = float("inf") if seconds is None else start + seconds
    last_sample = start
    first_sample = None  # arrival times of the first and last samples give the board's rate
    last_text = ""  # the last line that was no sample, for error messages
    stopped = ""
    partial_first = not reset  # the port opened mid-line: the first line is the tail of some line
    try:
        while True:
            # one line at a time: the stall deadline moves with every sample
            line = next(board.lines(until=min(deadline, last_sample + stall_timeout)), None)
            now = time.monotonic()
            if line is None:
                if now >= deadline:
                    stopped = "seconds"
                elif now >= last_sample + stall_timeout:
                    stopped = "stalled"
                else:
                    stopped = "port closed"
                break
            if partial_first:
                partial_first = False
                continue
            before = recorder.stats.samples
            rows = recorder.feed(line, round((now - start) * 1000))
            if recorder.stats.samples != before:
                last_sample = now
                first_sample = now if first_sample is None else first_sample
            elif line.strip():
                last_text = line.strip()
            if rows:
                if sink is None:
                    assert recorder.columns is not None
                    sink = CsvSink(output, recorder.columns, append)
                sink.write(rows)
            if progress is not None:
                progress(recorder.stats, now - start)
            if samples is not None and recorder.stats.samples >= samples:
                stopped = "samples"
                break
            if now >= deadline:
                stopped = "seconds"
                break
    except KeyboardInterrupt:
        stopped = "interrupted"
    except BaseException:
        if sink is not None:
            sink.abandon()
        raise
    elapsed = max(time.monotonic() - start, 1e-9)
    stats = recorder.stats
    last = f" (last thing it printed: {last_text[:60]!r})" if last_text else ""

    if sink is None:
        if stopped == "interrupted":
            raise KeyboardInterrupt
        raise UserError(_nothing_recorded(board.port, recorder, stopped, elapsed, last))
    sink.commit()
    assert recorder.layout is not None
    result = RecordResult(
        file=str(output),
        label=label,
        columns=len(sink.columns),
        axes=[a.rstrip("_") for a in recorder.layout.axes] if window else list(recorder.layout.axes),
        window=window,
        stride=recorder.stride if window else None,
        samples=stats.samples,
        rows=stats.rows,
        skipped=stats.skipped,
        damaged=stats.damaged,
        discarded_windows=stats.discarded_windows,
        seconds=round(elapsed, 3),
        samples_per_s=round(_rate(stats.samples, first_sample, last_sample, elapsed), 1),
        appended=sink.rows_before > 0,
        rows_in_file=sink.rows_before + sink.rows,
        stopped=stopped,
    )
    if stopped == "stalled":
        raise UserError(
            f"the board stopped printing samples (none for {stall_timeout:g} s, --timeout){last}; "
            f"kept the {stats.rows} row(s) recorded before in {output}"
        )
    if stopped == "port closed":
        raise UserError(
            f"the port {board.port} went away (board unplugged or reset, or `edgenn vboard` stopped) "
            f"after {stats.samples} samples; kept the {stats.rows} row(s) recorded in {output}"
        )
    return result


def _rate(samples: int, first: float | None, last: float, elapsed: float) -> float:
    """Samples per second as the board prints them: from the first sample to the last (a reset's boot
    time is not the board's rate), over the whole recording when there are too few to tell."""
    if first is not None and samples > 10 and last - first > 0.1:
        return (samples - 1) / (last - first)
    return samples / elapsed


def _nothing_recorded(port: str, recorder: Recorder, stopped: str, elapsed: float, last: str) -> str:
    stats = recorder.stats
    if stats.samples and recorder.window:
        broken = f" ({stats.damaged} damaged line(s) broke the run)" if stats.damaged else ""
        what = f"{stats.samples} sample(s) but no complete window of {recorder.window}{broken}; record longer"
    elif stats.skipped or stats.damaged:
        what = (
            f"no samples in {elapsed:.1f} s: {stats.skipped} text line(s), {stats.damaged} line(s) that "
            f"were no valid sample{last}. The board's program must print one sample per line: numbers "
            "separated by commas, spaces or tabs"
        )
    else:
        what = (
            f"the board printed nothing in {elapsed:.1f} s. Is its program running? (`edgenn monitor "
            f"--port {port} --reset` shows what it prints; --reset restarts it)"
        )
    if stopped == "port closed":
        what += f"; the port {port} closed"
    return f"nothing recorded from {port}, the file is unchanged: {what}"


def format_summary(result: RecordResult) -> str:
    what = f"{result.rows} window(s) of {result.window}" if result.window else f"{result.rows} row(s)"
    where = (
        f"appended to {result.file} ({result.rows_in_file} rows now)"
        if result.appended
        else f"-> {result.file}"
    )
    axes = ",".join(result.axes)
    parts = [
        f"recorded {result.samples} samples ({axes}) in {result.seconds:.1f} s "
        f"({result.samples_per_s:g} samples/s): {what} labelled {result.label!r} {where}",
        f"{result.skipped} text line(s) skipped, {result.damaged} damaged line(s)"
        + (f", {result.discarded_windows} window(s) discarded" if result.window else ""),
    ]
    return "; ".join(parts)


class ProgressLine:
    """A one-line progress display on a terminal (stderr), refreshed a few times a second."""

    def __init__(self, windows: bool, stream: TextIO | None = None, every: float = 0.25):
        self.windows = windows
        self.stream = stream if stream is not None else sys.stderr
        self.every = every
        self._last = -1.0
        self.shown = False

    def __call__(self, stats: RecordStats, elapsed: float) -> None:
        if elapsed - self._last < self.every:
            return
        self._last = elapsed
        rate = stats.samples / elapsed if elapsed > 0 else 0.0
        made = (
            f"{stats.rows} windows ({stats.discarded_windows} discarded)"
            if self.windows
            else f"{stats.rows} rows"
        )
        self.stream.write(
            f"\r{elapsed:6.1f} s  {stats.samples} samples  {rate:.0f} samples/s  {made}  "
            f"{stats.skipped} skipped  {stats.damaged} damaged "
        )
        self.stream.flush()
        self.shown = True

    def done(self) -> None:
        if self.shown:
            self.stream.write("\n")
            self.stream.flush()
