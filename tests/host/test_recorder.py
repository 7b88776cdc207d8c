"""The recorder's line parser and windower (edgenn.device.record.Recorder) and its atomic CSV sink."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from edgenn.cli import main
from edgenn.device.record import CsvSink, Layout, Recorder, format_summary, read_header
from edgenn.errors import UserError


def samples(start: int, stop: int, axes: int = 3) -> list[str]:
    """Counter-based samples: sample i has values i*10 + axis, so every value names its place."""
    return [",".join(str(i * 10 + a) for a in range(axes)) for i in range(start, stop)]


def values(rows: list[list[str]]) -> list[list[int]]:
    return [[int(v) for v in row[:-1]] for row in rows]


def window_row(first: int, w: int, axes: int = 3) -> list[int]:
    return [(first + k) * 10 + a for a in range(axes) for k in range(w)]


def test_one_row_per_sample_with_time_and_label_and_any_separator() -> None:
    rec = Recorder("idle")
    assert rec.feed("1,2,3", t_ms=5) == [["5", "1", "2", "3", "idle"]]
    assert rec.feed("  4 5\t6 ", t_ms=7) == [["7", "4", "5", "6", "idle"]]
    assert rec.feed("-1.5, +2e3 ,.25,", t_ms=9) == [["9", "-1.5", "+2e3", ".25", "idle"]]
    assert rec.columns == ["t_ms", "a0", "a1", "a2", "label"]
    assert (rec.stats.samples, rec.stats.rows, rec.stats.skipped, rec.stats.damaged) == (3, 3, 0, 0)


def test_text_lines_are_skipped_and_counted_blank_lines_ignored() -> None:
    rec = Recorder("x")
    lines = [
        "MPY: soft reboot",
        "",
        "hello from main.py",
        '{"ready": true}',
        "1 2",
        ">>> ",
        "Temp: 25",
        "3 4",
    ]
    rows = rec.feed_all(lines)
    assert values(rows) == [[0, 1, 2], [0, 3, 4]]  # t_ms 0 from feed_all
    assert rec.stats.skipped == 5 and rec.stats.damaged == 0


def test_header_names_the_axes_and_windows_are_axis_major() -> None:
    rec = Recorder("wave", window=4)
    rows = rec.feed_all(["# x,y,z", *samples(0, 8)])
    assert rec.columns == [f"{a}{i}" for a in "xyz" for i in range(4)] + ["label"]
    assert values(rows) == [window_row(0, 4), window_row(4, 4)]
    assert all(row[-1] == "wave" for row in rows)


def test_default_window_names_keep_axis_and_index_apart() -> None:
    rec = Recorder("a", window=12)
    rec.feed_all(samples(0, 12, axes=2))
    assert rec.columns[:2] == ["a0_0", "a0_1"] and rec.columns[12:14] == ["a1_0", "a1_1"]
    assert len(set(rec.columns)) == len(rec.columns)


@pytest.mark.parametrize("window,stride", [(4, 4), (4, 1), (4, 2), (5, 3), (3, 5)])
def test_stride_windows_cover_every_sample_in_order(window: int, stride: int) -> None:
    rec = Recorder("s", window=window, stride=stride)
    n = 40
    rows = rec.feed_all(samples(0, n))
    firsts = list(range(0, n - window + 1, stride))
    assert values(rows) == [window_row(f, window) for f in firsts]
    assert rec.stats.samples == n and rec.stats.rows == len(firsts)


def test_text_between_samples_does_not_break_a_window() -> None:
    rec = Recorder("w", window=4)
    lines = []
    for line in samples(0, 8):
        lines += [line, "debug: tick", "  "]
    rows = rec.feed_all(["# x,y,z", *lines])
    assert values(rows) == [window_row(0, 4), window_row(4, 4)]
    assert rec.stats.skipped == 8 and rec.stats.discarded_windows == 0


@pytest.mark.parametrize(
    "damaged",
    [
        "20,21",  # a value lost
        "20,21,22,30,31,32",  # a line end lost: two samples glued
        "20,2-1,22",  # a number cut and glued
        "20,21.2.1,22",
        "20,21,22hello",  # a sample glued to text
        "2\ufffd,21,22",  # undecodable bytes
        "20,\x0021,22",
        "20,nan,22",  # a sample that cannot be stored is a gap too
        "-inf 21 22",
    ],
)
def test_a_damaged_line_discards_the_window_being_filled(damaged: str) -> None:
    rec = Recorder("w", window=4)
    lines = samples(0, 2) + [damaged] + samples(3, 12)
    rows = rec.feed_all(lines)
    # samples 0,1 were in a window broken by the damage: it is gone, never stitched to 3..
    assert values(rows) == [window_row(3, 4), window_row(7, 4)]
    assert rec.stats.damaged == 1 and rec.stats.discarded_windows == 1
    assert rec.stats.samples == 11


def test_damage_with_overlapping_windows_counts_every_window_in_progress() -> None:
    rec = Recorder("w", window=4, stride=2)
    rows = rec.feed_all(samples(0, 5) + ["1,2"] + samples(6, 10))
    # run 1: windows begin at 0 (emitted at 4), 2 and 4 (in progress) -> 2 discarded
    assert values(rows) == [window_row(0, 4), window_row(6, 4)]
    assert rec.stats.discarded_windows == 2


@pytest.mark.parametrize("window,stride", [(1, 1), (4, 1), (4, 3), (5, 2), (3, 7), (32, 32), (32, 8)])
def test_windows_in_progress_at_any_point_of_a_run(window: int, stride: int) -> None:
    for run in range(0, 80):
        rec = Recorder("w", window=window, stride=stride)
        rec.feed_all(samples(0, run))
        begun_not_done = [b for b in range(0, run, stride) if b + window > run]
        assert rec._in_progress() == len(begun_not_done), run
        rec.feed("1,2")
        assert rec.stats.discarded_windows == len(begun_not_done)


def test_progress_line_on_a_terminal() -> None:
    from io import StringIO

    from edgenn.device.record import ProgressLine, RecordStats

    out = StringIO()
    progress = ProgressLine(windows=True, stream=out)
    progress(RecordStats(samples=200, rows=6, skipped=3, damaged=1, discarded_windows=1), 2.0)
    progress(RecordStats(samples=201), 2.1)  # too soon: not redrawn
    progress.done()
    text = out.getvalue()
    assert text.startswith("\r") and text.endswith("\n") and text.count("\r") == 1
    assert "200 samples  100 samples/s  6 windows (1 discarded)  3 skipped  1 damaged" in text


def test_one_row_per_sample_drops_only_the_damaged_line() -> None:
    rec = Recorder("x")
    rows = rec.feed_all(["1,2", "3,4,5", "6,7"])
    assert values(rows) == [[0, 1, 2], [0, 6, 7]] and rec.stats.damaged == 1


@pytest.mark.parametrize(
    "restart", ["Traceback (most recent call last):", "MPY: soft reboot", "rst:0x1 (POWERON)"]
)
def test_a_restart_breaks_the_window(restart: str) -> None:
    rec = Recorder("w", window=4)
    rows = rec.feed_all(["# x,y,z", *samples(0, 6), restart, "# x,y,z", *samples(100, 104)])
    assert values(rows) == [window_row(0, 4), window_row(100, 4)]
    assert rec.stats.discarded_windows == 1  # samples 4, 5
    assert rec.columns[0] == "x0"


def test_a_header_printed_again_does_not_break_the_window() -> None:
    rec = Recorder("w", window=4)
    lines = ["# x,y,z"]
    for i in range(12):
        lines += samples(i, i + 1) + (["# x,y,z"] if i % 3 == 1 else [])
    assert values(rec.feed_all(lines)) == [window_row(0, 4), window_row(4, 4), window_row(8, 4)]
    assert rec.stats.skipped == 0 and rec.stats.discarded_windows == 0


def test_comments_are_not_headers() -> None:
    rec = Recorder("x")
    rec.feed_all(["# recording started at 12:00", "# x y", "1,2,3"])  # `# x y`: 2 names, 3 values
    assert rec.columns == ["t_ms", "a0", "a1", "a2", "label"]
    assert rec.stats.skipped == 1


@pytest.mark.parametrize(
    "kwargs,message",
    [
        ({"window": 0}, "--window"),
        ({"stride": 2}, "--stride needs --window"),
        ({"window": 4, "stride": 0}, "--stride"),
        ({"label": "a\nb"}, "--label"),
    ],
)
def test_bad_settings_are_user_errors(kwargs: dict, message: str) -> None:
    with pytest.raises(UserError, match=message):
        Recorder(**{"label": "x", **kwargs})


def test_append_layout_from_an_existing_header() -> None:
    cols = Recorder("w", window=3)
    cols.feed_all(["# ax,ay", *samples(0, 3, axes=2)])
    layout = Layout.from_columns(cols.columns, 3, "f.csv")
    assert layout.axes == ["ax", "ay"] and layout.columns == cols.columns

    # the board prints no header this time: the file's names are used
    rec = Recorder("w", window=3, fixed=layout)
    rows = rec.feed_all(samples(0, 3, axes=2))
    assert rec.columns == cols.columns and values(rows) == [window_row(0, 3, axes=2)]

    with pytest.raises(UserError, match="the board names its axes x,y, the file has ax,ay"):
        Recorder("w", window=3, fixed=layout).feed("# x,y")
    # a file recorded without a header (a0_0..) takes the samples of a board that names its axes
    unnamed = Layout(Layout.default_axes(2, 3), 3)
    rec = Recorder("w", window=3, fixed=unnamed)
    rec.feed_all(["# x,y", *samples(0, 3, axes=2)])
    assert rec.columns == unnamed.columns
    with pytest.raises(UserError, match="prints 3 value"):
        Recorder("w", window=3, fixed=layout).feed("1,2,3")
    for other in (2, 4, 6):
        with pytest.raises(UserError, match=r"windows of 3 samples \(ax0..ax2, ...\), not --window"):
            Layout.from_columns(cols.columns, other, "f.csv")
    with pytest.raises(UserError, match="not windows of 4"):
        Layout.from_columns(["t_ms", "a0", "label"], 4, "f.csv")
    with pytest.raises(UserError, match="windows of 3 samples .* not one row per sample"):
        Layout.from_columns(cols.columns, None, "f.csv")
    with pytest.raises(UserError, match="no `edgenn record` file"):
        Layout.from_columns(["a", "b"], None, "f.csv")


def test_sink_writes_whole_rows_atomically(tmp_path: Path) -> None:
    out = tmp_path / "data.csv"
    out.write_text("old contents\n")
    sink = CsvSink(out, ["t_ms", "a0", "label"], append=False)
    sink.write([["0", "1", "x"], ["5", "2", "x"]])
    assert out.read_text() == "old contents\n"  # untouched until commit
    sink._file.write(b"10,3")  # half a row, as a Ctrl-C inside a write would leave it
    sink.commit()
    assert out.read_text() == "t_ms,a0,label\n0,1,x\n5,2,x\n"
    assert [p.name for p in tmp_path.iterdir()] == ["data.csv"]

    sink = CsvSink(out, ["t_ms", "a0", "label"], append=True)
    sink.write([["0", "7", "y"]])
    sink.commit()
    assert sink.rows_before == 2
    assert list(csv.reader(out.open()))[-1] == ["0", "7", "y"]

    sink = CsvSink(out, ["t_ms", "a0", "label"], append=True)
    sink.write([["0", "8", "z"]])
    sink.abandon()  # an error mid-recording: the file stays as it was
    assert out.read_text().count("\n") == 4 and [p.name for p in tmp_path.iterdir()] == ["data.csv"]


def test_read_header_refuses_a_half_row(tmp_path: Path) -> None:
    out = tmp_path / "d.csv"
    assert read_header(out) is None
    out.write_text("t_ms,a0,label\n0,1,x\n0,2")
    with pytest.raises(UserError, match="incomplete"):
        read_header(out)


def test_summary_names_what_was_recorded() -> None:
    from edgenn.device.record import RecordResult

    result = RecordResult(
        file="g.csv", label="wave", columns=97, axes=["x", "y", "z"], window=32, stride=32, samples=640,
        rows=20, skipped=3, damaged=1, discarded_windows=1, seconds=6.4, samples_per_s=100.0,
        appended=True, rows_in_file=40, stopped="samples",
    )  # fmt: skip
    text = format_summary(result)
    assert "640 samples (x,y,z)" in text and "20 window(s) of 32 labelled 'wave'" in text
    assert "appended to g.csv (40 rows now)" in text and "1 window(s) discarded" in text


def test_cli_errors_are_one_line(tmp_path: Path, capsys, monkeypatch) -> None:
    monkeypatch.delenv("EDGENN_PORT", raising=False)
    assert main(["record", "--label", "x", "--seconds", "1", "-o", str(tmp_path / "o.csv")]) == 2
    assert "pass --port PORT" in capsys.readouterr().err
    code = main(["record", "--port", str(tmp_path / "nope"), "--label", "x", "--samples", "5", "-o", "o.csv"])
    assert code == 2 and "cannot open serial port" in capsys.readouterr().err
