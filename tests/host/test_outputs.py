"""Issue 19, items 2 and 3: no command writes over one of its inputs, and every output is written
atomically (mkstemp beside it, fsync, os.replace) with the usual mode, never through a planted symlink,
leaving nothing behind when the write fails (disk full / file size limit: one line, exit 2)."""

from __future__ import annotations

import os
import resource
import shutil
import subprocess
import sys

import numpy as np
import pytest

from edgenn import modelfile
from edgenn.cli import main
from edgenn.data import bundled_path
from edgenn.floatmodel import FloatModel
from edgenn.outputs import write_atomic
from edgenn.quantize import quantize

FAST = ["--epochs", "5", "--hidden", "4", "--folds", "0"]


def one_line_error(capsys, argv: list[str], *fragments: str) -> str:
    code = main(argv)
    _, err = capsys.readouterr()
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1, err
    assert lines[0].startswith(f"edgenn {argv[0]}: error: "), err
    for fragment in fragments:
        assert fragment in lines[0], err
    return lines[0]


@pytest.fixture(scope="module")
def iris_files(tmp_path_factory):
    d = tmp_path_factory.mktemp("io")
    data = d / "iris.csv"
    shutil.copy(bundled_path("iris"), data)
    npz = d / "iris.npz"
    assert main(["train", str(data), "--label", "species", "-o", str(npz), "--json", *FAST]) == 0
    enn = d / "iris.enn"
    assert main(["quantize", str(npz), "--data", str(data), "-o", str(enn), "--no-qat", "--json"]) == 0
    return data, npz, enn


def test_commands_refuse_to_write_over_their_input(iris_files, tmp_path, capsys):
    data, npz, enn = iris_files
    capsys.readouterr()
    before = data.read_bytes()
    link = tmp_path / "link.csv"
    link.symlink_to(data)
    for out in (data, link):
        train = ["train", str(data), "--label", "species", "-o", str(out), *FAST]
        one_line_error(capsys, train, "input file")
        one_line_error(capsys, ["quantize", str(npz), "--data", str(data), "-o", str(out)], "input file")
        one_line_error(
            capsys,
            ["tune", str(data), "--label", "species", "--board", "esp32", "-o", str(out)],
            "input file",
        )
    pytest.importorskip("matplotlib")
    one_line_error(capsys, ["report", str(enn), str(data), "-o", str(data)], "input file")
    assert data.read_bytes() == before


def test_save_never_follows_a_planted_symlink_and_leaves_no_temp(iris_files, tmp_path):
    _, npz, _ = iris_files
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    out = tmp_path / "m.npz"
    for planted in (out.with_name(out.name + ".tmp"), tmp_path / ".m.npz.tmp"):
        planted.symlink_to(victim)
    FloatModel.load(npz).save(out)
    assert victim.read_text() == "precious"
    assert FloatModel.load(out).n_inputs == 4
    assert sorted(p.name for p in tmp_path.iterdir()) == [".m.npz.tmp", "m.npz", "m.npz.tmp", "victim.txt"]


@pytest.mark.parametrize("mask", [0o022, 0o077])
def test_outputs_get_the_usual_mode(iris_files, tmp_path, mask):
    _, npz, _ = iris_files
    fm = FloatModel.load(npz)
    qm, _ = quantize(fm, np.zeros((4, 4)) + fm.input_mean)
    old = os.umask(mask)
    try:
        fm.save(tmp_path / "a.npz")
        modelfile.save(qm, tmp_path / "a.enn")
        write_atomic(tmp_path / "a.html", b"<html>")
    finally:
        os.umask(old)
    for name in ("a.npz", "a.enn", "a.html"):
        assert (tmp_path / name).stat().st_mode & 0o777 == 0o666 & ~mask, name


def _limit_file_size() -> None:
    resource.setrlimit(resource.RLIMIT_FSIZE, (2000, 2000))  # Python ignores SIGXFSZ: writes get EFBIG


@pytest.mark.parametrize("command", ["train", "quantize"])
def test_a_write_that_fails_is_one_line_and_leaves_nothing(iris_files, tmp_path, command):
    data, npz, _ = iris_files
    out = tmp_path / ("big.npz" if command == "train" else "big.enn")
    out.write_bytes(b"old")
    if command == "train":
        argv = [
            "train",
            str(data),
            "--label",
            "species",
            "-o",
            str(out),
            "--epochs",
            "2",
            "--hidden",
            "64",
            "--folds",
            "0",
        ]
    else:
        big = tmp_path / "big_float.npz"
        assert (
            main(
                [
                    "train",
                    str(data),
                    "--label",
                    "species",
                    "-o",
                    str(big),
                    "--epochs",
                    "2",
                    "--hidden",
                    "512",
                    "--folds",
                    "0",
                    "--json",
                ]
            )
            == 0
        )
        argv = ["quantize", str(big), "--data", str(data), "-o", str(out), "--no-qat"]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    proc = subprocess.run(
        [sys.executable, "-m", "edgenn.cli", *argv],
        capture_output=True,
        text=True,
        env=env,
        preexec_fn=_limit_file_size,
        timeout=300,
    )
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2 and len(lines) == 1, proc.stderr
    assert lines[0].startswith(f"edgenn {command}: error: cannot write {out}: "), proc.stderr
    assert "file size limit" in lines[0]
    assert out.read_bytes() == b"old"
    left = sorted(p.name for p in tmp_path.iterdir())
    assert left == sorted(["big_float.npz", out.name][command == "train" :])
