"""`edgenn datasets | train | evaluate` end to end: outputs, JSON, exit codes, one-line errors."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from edgenn.cli import main
from edgenn.commands.train import ProgressLine
from edgenn.data import bundled_path, load_dataset, stratified_split
from edgenn.floatmodel import FloatModel
from edgenn.nn import EpochReport

FAST = ["--epochs", "15", "--hidden", "8"]


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def assert_one_line_error(code: int, err: str, command: str, *fragments: str) -> None:
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith(f"edgenn {command}: error: ")
    assert "Traceback" not in err
    for fragment in fragments:
        assert fragment in lines[0]


@pytest.fixture(scope="module")
def iris_model(tmp_path_factory):
    path = tmp_path_factory.mktemp("models") / "iris.npz"
    argv = ["train", "iris", "-o", str(path), "--seed", "1", "--test-fraction", "0.2", "--json", *FAST]
    assert main(argv) == 0
    return path


def test_datasets_lists_every_bundled_set(capsys):
    code, out, _ = run(capsys, "datasets")
    assert code == 0
    for name in ("iris", "wine", "breast_cancer", "digits", "diabetes"):
        assert name in out
    code, out, _ = run(capsys, "datasets", "--json")
    rows = {d["name"]: d for d in json.loads(out)["datasets"]}
    assert rows["diabetes"]["task"] == "regress" and rows["iris"]["rows"] == 150


def test_train_json_is_one_object_and_silent_on_stderr(capsys, tmp_path):
    out_path = tmp_path / "wine.npz"
    code, out, err = run(capsys, "train", "wine", "-o", str(out_path), "--json", *FAST)
    assert code == 0 and err == ""
    summary = json.loads(out)
    assert summary["task"] == "classify" and summary["layers"] == [13, 8, 3]
    assert summary["cv"]["k"] == 5 and len(summary["cv"]["folds"]) == 5
    assert 0.0 <= summary["cv"]["mean"] <= 1.0 and summary["train"]["n"] == 178
    assert summary["epochs"] == summary["cv"]["epochs"] and summary["test"] is None
    model = FloatModel.load(out_path)
    assert model.meta["cv"]["mean"] == pytest.approx(summary["cv"]["mean"], rel=1e-5)  # --json rounds


def test_train_with_a_test_file_scores_it_and_skips_folds(capsys, tmp_path):
    rows = bundled_path("iris").read_text().splitlines()
    train_csv, test_csv = tmp_path / "train.csv", tmp_path / "test.csv"
    train_csv.write_text("\n".join([rows[0]] + [r for i, r in enumerate(rows[1:]) if i % 3]) + "\n")
    test_csv.write_text("\n".join([rows[0]] + [r for i, r in enumerate(rows[1:]) if i % 3 == 0]) + "\n")
    argv = [
        "train",
        str(train_csv),
        "--label",
        "species",
        "--test",
        str(test_csv),
        "-o",
        str(tmp_path / "m.npz"),
    ]
    code, out, _ = run(capsys, *argv, *FAST, "--json")
    summary = json.loads(out)
    assert code == 0 and summary["cv"] is None and summary["test"]["n"] == 50
    assert summary["train"]["n"] == 100 and summary["epochs"] == 15
    code, out, _ = run(capsys, *argv, *FAST)
    assert "on 50 rows of the --test file" in out and "cross-validated" not in out


def test_train_human_output_names_the_test_metric(capsys, tmp_path):
    code, out, _ = run(capsys, "train", "diabetes", "-o", str(tmp_path / "d.npz"), *FAST)
    assert code == 0 and "cross-validated RMSE" in out and "wrote" in out and "final fit: all 442" in out


def test_train_a_csv_with_options(capsys, tmp_path):
    csv = tmp_path / "blobs.csv"
    rng = np.random.default_rng(0)
    rows = ["x1,x2,colour"] + [
        f"{rng.normal(3 * (i % 2)):.3f},{rng.normal():.3f},{['red', 'blue'][i % 2]}" for i in range(80)
    ]
    csv.write_text("\n".join(rows) + "\n")
    code, out, _ = run(
        capsys,
        "train",
        str(csv),
        "--label",
        "colour",
        "--activation",
        "tanh",
        "--optimizer",
        "sgd",
        "--lr",
        "0.05",
        "--batch-size",
        "16",
        "--weight-decay",
        "0",
        "--patience",
        "5",
        "--hidden",
        "4,4",
        "-o",
        str(tmp_path / "b.npz"),
        "--json",
    )
    assert code == 0
    summary = json.loads(out)
    assert summary["labels"] == ["blue", "red"] and summary["activation"] == "tanh"


def test_evaluate_npz_json_with_predictions_in_file_order(capsys, iris_model):
    code, out, _ = run(capsys, "evaluate", str(iris_model), "iris", "--json", "--predictions")
    assert code == 0
    result = json.loads(out)
    ds = load_dataset("iris")
    expected = FloatModel.load(iris_model).predict(ds.X)
    assert result["n"] == 150 and result["predictions"] == expected.tolist()
    assert np.isclose(result["accuracy"], np.mean(expected == ds.y))
    code, out, _ = run(capsys, "evaluate", str(iris_model), "iris", "--json")
    assert "predictions" not in json.loads(out)


def test_evaluate_test_split_reproduces_train_metric(capsys, iris_model):
    code, out, _ = run(capsys, "evaluate", str(iris_model), "iris", "--split", "test", "--json")
    result = json.loads(out)
    model = FloatModel.load(iris_model)
    assert result["n"] == len(stratified_split(load_dataset("iris"), 0.2, 0.0, seed=1).test)
    assert result["accuracy"] == pytest.approx(model.meta["metrics"]["test"]["accuracy"], rel=1e-5)


def test_evaluate_a_held_out_csv_finds_the_label_column(capsys, iris_model, tmp_path):
    rows = bundled_path("iris").read_text().splitlines()
    header = rows[0].split(",")
    reordered = [",".join([r.split(",")[-1]] + r.split(",")[:-1]) for r in rows[::10]]  # label first
    csv = tmp_path / "held_out.csv"
    csv.write_text("\n".join(reordered) + "\n")
    code, out, err = run(capsys, "evaluate", str(iris_model), str(csv), "--json", "--predictions")
    assert code == 0, err
    result = json.loads(out)
    assert result["label_column"] == header[-1] and result["n"] == len(reordered) - 1
    assert len(result["predictions"]) == result["n"]


def test_evaluate_regression_predictions_are_values(capsys, tmp_path):
    path = tmp_path / "d.npz"
    assert main(["train", "diabetes", "-o", str(path), "--json", *FAST]) == 0
    capsys.readouterr()
    code, out, _ = run(capsys, "evaluate", str(path), "diabetes", "--json", "--predictions")
    result = json.loads(out)
    ds = load_dataset("diabetes")
    predicted = FloatModel.load(path).predict(ds.X)[:, 0]
    assert np.allclose(result["predictions"], predicted)
    assert result["rmse"] == pytest.approx(np.sqrt(np.mean((predicted - ds.y) ** 2)), rel=1e-5)
    assert result["mae"] == pytest.approx(np.mean(np.abs(predicted - ds.y)), rel=1e-5)


def test_evaluate_enn_uses_the_golden_integer_model(capsys, tmp_path):
    quantize = pytest.importorskip("edgenn.quantize")
    if not hasattr(quantize, "quantize"):
        pytest.skip("edgenn.quantize.quantize is not written yet")
    from edgenn import golden, modelfile

    ds = load_dataset("wine")
    npz = tmp_path / "wine.npz"
    assert main(["train", "wine", "-o", str(npz), "--json", *FAST]) == 0
    capsys.readouterr()
    quant, _warnings = quantize.quantize(FloatModel.load(npz), ds.X, name="wine")
    enn = tmp_path / "wine.enn"
    modelfile.save(quant, enn)
    code, out, err = run(capsys, "evaluate", str(enn), "wine", "--json", "--predictions")
    assert code == 0, err
    result = json.loads(out)
    assert result["kind"] == "integer"
    assert result["predictions"] == golden.predict(modelfile.load(enn), ds.X).tolist()


@pytest.mark.parametrize(
    "argv, command, fragments",
    [
        (["train", "nope.csv", "-o", "m.npz"], "train", ["nope.csv", "bundled"]),
        (["train", "iris", "--hidden", "32,x", "-o", "m.npz"], "train", ["--hidden", "32,x"]),
        (["train", "iris", "--hidden", "0", "-o", "m.npz"], "train", ["--hidden"]),
        (["train", "iris", "--label", "colour", "-o", "m.npz"], "train", ["'colour'", "species"]),
        (["train", "irs", "-o", "m.npz"], "train", ["irs", "iris"]),
        (["train", "iris", "--epochs", "0", "-o", "m.npz"], "train", ["--epochs"]),
        (["train", "iris", "-o", "no/such/dir/m.npz"], "train", ["does not exist"]),
        (["train", "iris", "--folds", "-1", "-o", "m.npz"], "train", ["--folds"]),
        (["train", "iris", "--folds", "1", "-o", "m.npz"], "train", ["--folds 1", "at least 2"]),
        (["evaluate", "missing.npz", "iris"], "evaluate", ["missing.npz", "no such file"]),
        (["evaluate", "CVMODEL", "iris", "--split", "test"], "evaluate", ["no test rows", "every row"]),
        (["evaluate", "MODEL", "wine"], "evaluate", ["columns do not match", "missing feature"]),
        (["evaluate", "MODEL", "iris", "--label", "petal_width"], "evaluate", ["columns do not match"]),
        (["evaluate", "NOTAMODEL", "iris"], "evaluate", ["neither a float model"]),
        (["evaluate", "iris", "MODEL"], "evaluate", ["is a bundled dataset, not a model"]),
        (["evaluate", "MODEL", "MODEL"], "evaluate", ["is an edgenn model, not a CSV"]),
    ],
)
def test_user_mistakes_are_one_line_errors(
    capsys, iris_model, tmp_path, monkeypatch, argv, command, fragments
):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "NOTAMODEL").write_text("hello")
    if "CVMODEL" in argv:
        assert main(["train", "iris", "-o", str(tmp_path / "cv.npz"), "--json", *FAST]) == 0
        capsys.readouterr()
    argv = [
        str(iris_model) if a == "MODEL" else str(tmp_path / "cv.npz") if a == "CVMODEL" else a for a in argv
    ]
    code, out, err = run(capsys, *argv)
    assert_one_line_error(code, err, command, *fragments)
    assert not (tmp_path / "m.npz").exists()


def test_console_entry_point_exit_code_and_no_traceback(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "edgenn.cli", "train", str(tmp_path / "x.csv"), "-o", "m.npz"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0 and "Traceback" not in proc.stderr


class FakeTerminal:
    def __init__(self):
        self.text = ""

    def write(self, s):
        self.text += s

    def flush(self):
        pass


def test_progress_line_rewrites_in_place_and_clears():
    term = FakeTerminal()
    line = ProgressLine(term)
    for epoch in (1, 2):
        line(EpochReport(epoch, 2, 0.5, 0.4, 0.9, "accuracy", epoch))
    assert term.text.startswith("\repoch 1/2") and "val accuracy 90.0%" in term.text and "\n" not in term.text
    line.close()
    assert term.text.endswith("\r")


def test_evaluate_on_the_rows_a_model_trained_on_says_so(capsys, tmp_path, iris_model):
    path = tmp_path / "all.npz"
    assert main(["train", "iris", "-o", str(path), "--json", *FAST]) == 0  # every row trains, 5-fold CV
    cv = json.loads(capsys.readouterr().out)["cv"]["mean"]
    code, out, _ = run(capsys, "evaluate", str(path), "iris")
    assert code == 0
    assert "trained on all 150 of these rows, so this is not how it does on new data" in out
    assert f"cross-validated estimate: {100 * cv:.2f}%" in out
    code, out, _ = run(capsys, "evaluate", str(iris_model), "iris")  # a --test-fraction model
    assert "120 of these rows were used for training; `--split test`" in out
