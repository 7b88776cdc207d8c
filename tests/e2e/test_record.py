"""`edgenn record` against the virtual board running a program that prints a counter-based pattern.

Sample i is `i,1000+i,-i` after a `# x,y,z` header; junk text lines come between samples, and the
program damages two samples in every 50 (one loses a value, one has a number glued to the next), as
lost bytes on a UART would. Every check is against that pattern: which samples reached the CSV, in
which order, in which windows.
"""

from __future__ import annotations

import csv
import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from vboard_helpers import edgenn

BOARD_PROGRAM = """\
import time
print("sensor demo starting")
print("# x,y,z")
i = 0
while True:
    if i % 7 == 3:
        print("tick", i)
    if i % 11 == 5:
        print('{"debug": %d}' % i)
    if i % 50 == 12:
        print("%d,%d" % (i, 1000 + i))  # a value lost
    elif i % 50 == 37:
        print("%d,%d%d" % (i, 1000 + i, -i))  # a separator lost: two numbers glued
    else:
        print("%d,%d,%d" % (i, 1000 + i, -i))
    i += 1
    time.sleep_ms(2)
"""


def damaged(i: int) -> bool:
    return i % 50 in (12, 37)


def expected_windows(first: int, n_samples: int, window: int, stride: int) -> tuple[list[int], int]:
    """The windows a faithful recorder makes of the board's samples first, first+1, ... (n_samples valid
    ones): a window begins every `stride` samples of a run; a damaged sample ends the run, and the
    windows begun in it but not complete are discarded. -> (first sample of each window, discarded)"""
    starts: list[int] = []
    run = got = discarded = 0
    i = first
    while got < n_samples:
        if damaged(i):
            discarded += sum(1 for begin in range(0, run, stride) if begin + window > run)
            run = 0
        else:
            got += 1
            run += 1
            if run >= window and (run - window) % stride == 0:
                starts.append(i - window + 1)
        i += 1
    return starts, discarded


@pytest.fixture
def sensor_board(vboard):
    (vboard.flash_dir / "main.py").write_text(BOARD_PROGRAM)
    return vboard


def record(port: str, *args: str) -> tuple[subprocess.CompletedProcess, dict]:
    result = edgenn("record", "--port", port, "--json", *args, timeout=60)
    assert result.returncode == 0, result.stderr
    return result, json.loads(result.stdout)


def read_csv(path: Path) -> tuple[list[str], list[list[str]]]:
    rows = list(csv.reader(path.open(newline="")))
    return rows[0], rows[1:]


def test_rows_hold_exactly_the_samples_printed(sensor_board, tmp_path: Path) -> None:
    out = tmp_path / "rows.csv"
    _, summary = record(sensor_board.port, "--label", "idle", "--samples", "300", "--reset", "-o", str(out))
    header, rows = read_csv(out)
    assert header == ["t_ms", "x", "y", "z", "label"]
    # from the program's start (--reset): every valid sample, in order, none lost or duplicated
    printed = [i for i in range(1000) if not damaged(i)][:300]
    assert [int(r[1]) for r in rows] == printed
    assert all(int(r[2]) == 1000 + int(r[1]) and int(r[3]) == -int(r[1]) for r in rows)
    assert all(r[4] == "idle" for r in rows)
    t_ms = [int(r[0]) for r in rows]
    assert t_ms == sorted(t_ms) and t_ms[-1] > 0
    last = printed[-1]
    assert summary["samples"] == summary["rows"] == 300
    assert summary["damaged"] == sum(damaged(i) for i in range(last))
    junk = sum(i % 7 == 3 for i in range(last + 1)) + sum(i % 11 == 5 for i in range(last + 1))
    assert summary["skipped"] >= junk + 1  # plus the start-up line (and the board's reboot message)
    assert summary["axes"] == ["x", "y", "z"] and summary["file"] == str(out)

    # without --reset the board keeps counting: the recording joins the stream mid-way, consecutively
    more = tmp_path / "more.csv"
    record(sensor_board.port, "--label", "idle", "--samples", "100", "-o", str(more))
    xs = [int(r[1]) for r in read_csv(more)[1]]
    assert xs[0] > last and xs == [i for i in range(xs[0], xs[-1] + 1) if not damaged(i)]


def test_windows_stride_append_and_damage(sensor_board, tmp_path: Path) -> None:
    (tmp_path / "data").mkdir()
    out = tmp_path / "data" / "windows.csv"
    W = 8
    _, first = record(
        sensor_board.port, "--label", "a", "--samples", "160", "--window", str(W), "--reset", "-o", str(out)
    )
    _, second = record(
        sensor_board.port, "--label", "b", "--samples", "120", "--window", str(W), "--stride", "3",
        "--append", "-o", str(out),
    )  # fmt: skip
    header, rows = read_csv(out)
    assert header == [f"{a}{k}" for a in "xyz" for k in range(W)] + ["label"]
    assert second["appended"] and second["rows_in_file"] == len(rows) == first["rows"] + second["rows"]
    a_rows = [r for r in rows if r[-1] == "a"]
    b_rows = [r for r in rows if r[-1] == "b"]
    assert rows == a_rows + b_rows

    for row in rows:  # every window: W consecutive samples of one run, axis-major
        x = [int(v) for v in row[:W]]
        assert x == list(range(x[0], x[0] + W)) and not any(damaged(i) for i in x)
        assert [int(v) for v in row[W : 2 * W]] == [1000 + i for i in x]
        assert [int(v) for v in row[2 * W : 3 * W]] == [-i for i in x]

    # --reset: the program started at 0, so the windows are exactly these (back to back, a run broken
    # by each damaged sample, the window being filled then discarded)
    starts_a = [int(r[0]) for r in a_rows]
    assert (starts_a, first["discarded_windows"]) == expected_windows(0, 160, W, W)
    last = [i for i in range(1000) if not damaged(i)][159]
    assert first["damaged"] == sum(damaged(i) for i in range(last))

    # without --reset the recording began somewhere in the stream: the windows must be the ones of
    # 120 consecutive samples from some start, every 3 samples of a run
    starts_b = [int(r[0]) for r in b_rows]
    assert starts_b[0] > starts_a[-1]
    candidates = range(max(0, starts_b[0] - 60), starts_b[0] + 1)
    assert any(expected_windows(s, 120, W, 3)[0] == starts_b for s in candidates), starts_b

    # a different layout is refused and the file is left as it was
    before = out.read_bytes()
    refused = edgenn(
        "record", "--port", sensor_board.port, "--label", "c", "--samples", "50", "--window", "4",
        "--append", "-o", str(out),
    )  # fmt: skip
    assert refused.returncode == 2 and "windows of 8 samples (x0..x7, ...), not --window 4" in refused.stderr
    assert "Traceback" not in refused.stderr and out.read_bytes() == before
    assert sorted(p.name for p in out.parent.iterdir()) == ["windows.csv"]  # no temporary file left


def test_ctrl_c_keeps_what_was_recorded(sensor_board, tmp_path: Path) -> None:
    out = tmp_path / "long.csv"
    proc = subprocess.Popen(
        [sys.executable, "-m", "edgenn.cli", "record", "--port", sensor_board.port, "--label", "x",
         "--seconds", "60", "--reset", "-o", str(out)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    time.sleep(3)
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=20)
    assert proc.returncode == 130, stderr
    assert "interrupted; kept the" in stderr and "Traceback" not in stderr
    assert "recorded" in stdout
    xs = [int(r[1]) for r in read_csv(out)[1]]
    assert len(xs) > 50 and xs == [i for i in range(xs[-1] + 1) if not damaged(i)]


def test_a_board_printing_no_samples_is_a_clear_error(vboard, tmp_path: Path) -> None:
    (vboard.flash_dir / "main.py").write_text("while True:\n    print('hello, no numbers here')\n")
    out = tmp_path / "none.csv"
    result = edgenn(
        "record", "--port", vboard.port, "--label", "x", "--seconds", "2", "--reset", "-o", str(out)
    )
    assert result.returncode == 2
    assert "nothing recorded" in result.stderr and "hello, no numbers here" in result.stderr
    assert not out.exists()
