"""`edgenn quantize`: output, JSON, and one-line errors (exit 2) for user mistakes."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from edgenn import golden
from edgenn import modelfile as mf
from edgenn.cli import main
from edgenn.data import bundled_path, load_dataset
from edgenn.nn import TrainConfig, train

sys.path.insert(0, str(Path(__file__).parent))
from on_terminal import run_on_terminal  # noqa: E402


def HOLDOUT(seed: int) -> TrainConfig:  # noqa: N802 - reads like the config it builds
    """The old holdout (20% test, 15% validation), so quantize has held-out rows to report on."""
    return TrainConfig(seed=seed, folds=0, test_fraction=0.2, val_fraction=0.15)


@pytest.fixture(scope="module")
def iris_npz(tmp_path_factory):
    path = tmp_path_factory.mktemp("models") / "iris.npz"
    train(load_dataset("iris"), HOLDOUT(seed=1)).save(path)
    return path


def run_cli(args: list[str], capsys) -> tuple[int, str, str]:
    code = main(["quantize", *args])
    out, err = capsys.readouterr()
    return code, out, err


def test_quantize_writes_a_model_and_reports_accuracy_agreement_and_size(iris_npz, tmp_path, capsys) -> None:
    out_path = tmp_path / "iris.enn"
    code, out, err = run_cli([str(iris_npz), "--data", "iris", "-o", str(out_path)], capsys)
    assert code == 0, err
    qm = mf.load(out_path)
    assert qm.n_inputs == 4 and qm.labels == ["setosa", "versicolor", "virginica"]
    assert "calibrated on 96 training rows" in out  # the model's own training rows
    assert "held-out test rows: float" in out and "argmax agreement" in out
    assert f"size: {out_path.stat().st_size} bytes" in out


def test_json_output_matches_the_written_model(iris_npz, tmp_path, capsys) -> None:
    out_path = tmp_path / "m.enn"
    code, out, _ = run_cli([str(iris_npz), "--data", "iris", "-o", str(out_path), "--json"], capsys)
    assert code == 0
    result = json.loads(out)
    assert result["bytes"] == out_path.stat().st_size
    assert result["float32_bytes"] == mf.float32_bytes(mf.load(out_path))
    assert result["evaluated_on"] == "test" and result["n"] == 30
    assert 0.99 <= result["agreement"] <= 1.0
    assert result["integer"]["accuracy"] >= result["float"]["accuracy"] - 0.005
    ds = load_dataset("iris")
    # accuracy in the report is what the golden model computes from the written file
    assert result["warnings"] == [] and 0 < result["integer"]["accuracy"] <= 1
    assert np.mean(golden.predict(mf.load(out_path), ds.X) == ds.y) > 0.85


def test_other_data_calibrates_on_all_its_rows(iris_npz, tmp_path, capsys) -> None:
    csv = tmp_path / "iris_part.csv"
    ds = load_dataset("iris")
    lines = [",".join([*ds.feature_names, "species"])]
    lines += [",".join([*(f"{v:g}" for v in row), ds.labels[y]]) for row, y in zip(ds.X[::3], ds.y[::3])]
    csv.write_text("\n".join(lines) + "\n")
    code, out, err = run_cli(
        [str(iris_npz), "--data", str(csv), "-o", str(tmp_path / "p.enn"), "--json"], capsys
    )
    assert code == 0, err
    result = json.loads(out)
    assert result["calibrated_on"] == "all" and result["calibration_rows"] == 50 and result["n"] == 50


def test_regression_reports_rmse(tmp_path, capsys) -> None:
    npz = tmp_path / "d.npz"
    train(load_dataset("diabetes"), HOLDOUT(seed=0)).save(npz)
    code, out, _ = run_cli([str(npz), "--data", "diabetes", "-o", str(tmp_path / "d.enn")], capsys)
    assert code == 0 and "RMSE on 90 held-out test rows: float" in out
    code, out, _ = run_cli([str(npz), "--data", "diabetes", "-o", str(tmp_path / "d.enn"), "--json"], capsys)
    result = json.loads(out)
    assert result["integer"]["rmse"] <= 1.02 * result["float"]["rmse"]


def _assert_one_line_error(code: int, err: str, fragment: str) -> None:
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("edgenn quantize: error: "), err
    assert fragment in lines[0], lines[0]


def test_missing_model_file(tmp_path, capsys) -> None:
    code, _, err = run_cli(
        [str(tmp_path / "nope.npz"), "--data", "iris", "-o", str(tmp_path / "x.enn")], capsys
    )
    _assert_one_line_error(code, err, "no such file")


def test_corrupt_model_file(tmp_path, capsys) -> None:
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"PK\x03\x04 this is not really a zip archive")
    code, _, err = run_cli([str(bad), "--data", "iris", "-o", str(tmp_path / "x.enn")], capsys)
    _assert_one_line_error(code, err, "bad.npz")
    junk = tmp_path / "junk.npz"
    junk.write_bytes(np.random.default_rng(0).bytes(300))
    code, _, err = run_cli([str(junk), "--data", "iris", "-o", str(tmp_path / "x.enn")], capsys)
    _assert_one_line_error(code, err, "junk.npz")
    assert not (tmp_path / "x.enn").exists()


def test_an_enn_model_is_refused(iris_npz, tmp_path, capsys) -> None:
    enn = tmp_path / "already.enn"
    assert run_cli([str(iris_npz), "--data", "iris", "-o", str(enn)], capsys)[0] == 0
    code, _, err = run_cli([str(enn), "--data", "iris", "-o", str(tmp_path / "again.enn")], capsys)
    _assert_one_line_error(code, err, "already an integer model")


def test_data_that_does_not_fit_the_model(iris_npz, tmp_path, capsys) -> None:
    code, _, err = run_cli([str(iris_npz), "--data", "wine", "-o", str(tmp_path / "x.enn")], capsys)
    _assert_one_line_error(code, err, "columns do not match the model")
    code, _, err = run_cli(
        [str(iris_npz), "--data", "no_such_dataset", "-o", str(tmp_path / "x.enn")], capsys
    )
    assert code == 2 and len(err.strip().splitlines()) == 1


def test_bad_output_paths(iris_npz, tmp_path, capsys) -> None:
    code, _, err = run_cli([str(iris_npz), "--data", "iris", "-o", str(tmp_path / "no" / "x.enn")], capsys)
    _assert_one_line_error(code, err, "does not exist")
    code, _, err = run_cli([str(iris_npz), "--data", "iris", "-o", str(tmp_path)], capsys)
    _assert_one_line_error(code, err, "is a directory")
    code, _, err = run_cli([str(iris_npz), "--data", "iris", "-o", str(iris_npz)], capsys)
    _assert_one_line_error(code, err, "would overwrite the float model")


def test_console_script_exit_code_and_no_traceback(tmp_path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "edgenn.cli", "quantize", str(tmp_path / "missing.npz"), "--data", "iris"],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr and proc.stderr.count("\n") == 1


def test_a_model_trained_on_every_row_calibrates_on_all_rows_and_says_so(tmp_path, capsys) -> None:
    npz = tmp_path / "cv.npz"
    train(load_dataset("iris"), TrainConfig(hidden=(8,), epochs=40, seed=0)).save(npz)
    code, out, _ = run_cli([str(npz), "--data", "iris", "-o", str(tmp_path / "cv.enn")], capsys)
    assert code == 0 and "calibrated on 150 rows" in out and "accuracy on all 150 rows" in out
    assert "rows the model was trained on" in out and "quantization-aware fine-tuning:" in out
    code, out, _ = run_cli([str(npz), "--data", "iris", "-o", str(tmp_path / "cv.enn"), "--json"], capsys)
    result = json.loads(out)
    assert result["calibrated_on"] == "all" and result["trained_on_evaluated_rows"] is True
    assert (
        result["qat"]["calibration_score_qat"] >= result["qat"]["calibration_score_plain"]
        or not result["qat"]["used"]
    )
    code, out, _ = run_cli([str(npz), "--data", "iris", "-o", str(tmp_path / "x.enn"), "--no-qat"], capsys)
    assert "fine-tuning: off (--no-qat)" in out


def test_a_handful_of_calibration_rows_is_warned_about(iris_npz, tmp_path, capsys) -> None:
    rows = bundled_path("iris").read_text().splitlines()
    few = tmp_path / "few.csv"
    few.write_text("\n".join(rows[:4]) + "\n")  # three setosa rows
    code, _, err = run_cli([str(iris_npz), "--data", str(few), "-o", str(tmp_path / "few.enn")], capsys)
    assert code == 0 and "warning: calibrated on only 3 row(s) of" in err
    code, _, err = run_cli([str(iris_npz), "--data", "iris", "-o", str(tmp_path / "all.enn")], capsys)
    assert code == 0 and "calibrated on only" not in err


def test_fine_tuning_shows_progress_on_a_terminal_and_clears_it(iris_npz, tmp_path) -> None:
    argv = ["quantize", str(iris_npz), "--data", "iris", "-o", str(tmp_path / "t.enn")]
    code, text = run_on_terminal(argv)
    assert code == 0 and "quantization-aware fine-tuning: epoch 1/20, agreement " in text
    assert re.search(r"\r +\r$", text), text[-200:]  # nothing of it left on the line
