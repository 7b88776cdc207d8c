"""`edgenn train --task anomaly`, `quantize` and `evaluate` on anomaly models, end to end: the new-user
line, JSON keys, --label/--normal (only normal rows fit), and one-line errors that write nothing."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from edgenn import anomaly, modelfile
from edgenn.cli import main
from edgenn.data import load_dataset
from edgenn.floatmodel import FloatModel


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def assert_one_line_error(code: int, err: str, command: str, *fragments: str) -> None:
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"edgenn {command}: error: "), err
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


def write_csv(path: Path, header: list[str], rows) -> Path:
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(header)
        w.writerows(rows)
    return path


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> Path:
    """wine: 40 rows of class 0 are normal.csv; test.csv holds the other class-0 rows (ok) and 40 of the
    others (fault); mixed.csv holds all of them with the label, for --label/--normal."""
    d = tmp_path_factory.mktemp("anomaly_cli")
    ds = load_dataset("wine")
    normal = np.flatnonzero(ds.y == 0)
    other = np.flatnonzero(ds.y != 0)[:40]
    fmt = lambda i: [f"{v:g}" for v in ds.X[i]]  # noqa: E731
    write_csv(d / "normal.csv", ds.feature_names, [fmt(i) for i in normal[:40]])
    tests = [(i, "ok") for i in normal[40:]] + [(i, "fault") for i in other]
    write_csv(d / "test.csv", ds.feature_names + ["label"], [fmt(i) + [lab] for i, lab in tests])
    mixed = [(i, "ok") for i in normal] + [(i, "fault") for i in other]
    write_csv(d / "mixed.csv", ["state", *ds.feature_names], [[lab, *fmt(i)] for i, lab in mixed])
    return d


def test_the_new_user_line(files, tmp_path, capsys):
    """train normal.csv --task anomaly -> quantize -> evaluate --label label --normal ok: AUC + table."""
    m_npz, m_enn = tmp_path / "m.npz", tmp_path / "m.enn"
    code, out, _ = run(capsys, "train", files / "normal.csv", "--task", "anomaly", "-o", m_npz)
    assert code == 0 and "threshold" in out and m_npz.exists()
    code, out, _ = run(capsys, "quantize", m_npz, "--data", files / "normal.csv", "-o", m_enn)
    assert code == 0 and "calibrated on 40 normal rows" in out
    code, out, _ = run(capsys, "evaluate", m_enn, files / "test.csv", "--label", "label", "--normal", "ok")
    assert code == 0
    lines = out.splitlines()
    assert "19 normal, 40 anomalous" in lines[0] and "ROC AUC 0.9" in lines[0]
    assert lines[2].split()[-2:] == ["normal", "anomalous"]
    n_kept, n_flagged = map(int, lines[3].split()[1:])
    n_missed, n_caught = map(int, lines[4].split()[1:])
    assert (n_kept + n_flagged, n_missed + n_caught) == (19, 40)
    assert n_caught >= 30


def test_evaluate_json_keys_and_predictions(files, tmp_path, capsys):
    m = tmp_path / "m.npz"
    assert main(["train", str(files / "normal.csv"), "--task", "anomaly", "-o", str(m), "--json"]) == 0
    capsys.readouterr()
    qm_path = tmp_path / "m.enn"
    assert main(["quantize", str(m), "--data", str(files / "normal.csv"), "-o", str(qm_path), "--json"]) == 0
    capsys.readouterr()
    argv = ["evaluate", qm_path, files / "test.csv", "--normal", "ok", "--json", "--predictions"]
    code, out, _ = run(capsys, *argv)
    got = json.loads(out)
    keys = ("auc", "threshold", "precision", "recall", "f1", "n_normal", "n_anomalous", "scores", "anomalies")
    assert set(keys) <= set(got)
    qm = modelfile.load(qm_path)
    from edgenn.commands.anomaly_task import read_rows

    rows = read_rows(str(files / "test.csv"), "label", ["ok"], qm.input_names)
    assert got["scores"] == anomaly.golden_scores(qm, rows.X).tolist()
    assert got["anomalies"] == [s > qm.threshold for s in got["scores"]]
    assert got["threshold"] == qm.threshold and (got["n_normal"], got["n_anomalous"]) == (19, 40)
    # without labels: the distribution and the count over the threshold
    code, out, _ = run(capsys, "evaluate", qm_path, files / "normal.csv", "--json")
    got = json.loads(out)
    assert "auc" not in got and got["n_normal"] is None
    assert got["n"] == 40 and 0 <= got["flagged"] <= 40


def test_only_the_normal_rows_are_fitted(files, tmp_path, capsys):
    m = tmp_path / "m.npz"
    argv = ["train", files / "mixed.csv", "--task", "anomaly", "--label", "state", "--normal", "ok", "-o", m]
    code, out, _ = run(capsys, *argv, "--json")
    assert code == 0
    got = json.loads(out)
    assert (got["n_normal"], got["n_anomalous"]) == (59, 40)
    assert got["estimate"]["auc"] > 0.9
    fm = FloatModel.load(m)
    ds = load_dataset("wine")
    assert np.allclose(fm.input_mean, ds.X[ds.y == 0].mean(axis=0))  # scaling from the normal rows only
    assert len(fm.meta["anomaly"]["oof_scores"]) == 59
    # quantize finds the normal rows from the model (label column and --normal recorded)
    code, out, _ = run(capsys, "quantize", m, "--data", files / "mixed.csv", "-o", tmp_path / "m.enn")
    assert code == 0 and "calibrated on 59 normal rows" in out and "ROC AUC on 99 rows" in out


@pytest.mark.parametrize(
    "argv, fragments",
    [
        (["--label", "state", "--normal", "fine"], ["'fine' is not a label", "its labels: fault, ok"]),
        (["--label", "state"], ["holds 2 labels", "--normal"]),
        (["--label", "nope", "--normal", "ok"], ["no column named 'nope'"]),
        (["--threshold-quantile", "1.5"], ["--threshold-quantile"]),
    ],
)
def test_bad_input_is_one_line_and_writes_nothing(files, tmp_path, capsys, argv, fragments):
    out = tmp_path / "m.npz"
    code, _, err = run(capsys, "train", files / "mixed.csv", "--task", "anomaly", "-o", out, *argv)
    assert_one_line_error(code, err, "train", *fragments)
    assert not out.exists()


def test_too_few_or_no_normal_rows(files, tmp_path, capsys):
    rows = list(csv.reader(open(files / "normal.csv")))
    few = write_csv(tmp_path / "few.csv", rows[0], rows[1:6])
    out = tmp_path / "m.npz"
    code, _, err = run(capsys, "train", few, "--task", "anomaly", "-o", out)
    assert_one_line_error(code, err, "train", "5 normal rows", "at least 10")
    empty = write_csv(tmp_path / "empty.csv", rows[0], [])
    code, _, err = run(capsys, "train", empty, "--task", "anomaly", "-o", out)
    assert_one_line_error(code, err, "train", "no data rows")
    assert not out.exists()


def test_evaluate_with_a_normal_label_that_does_not_exist(files, tmp_path, capsys):
    m = tmp_path / "m.npz"
    assert main(["train", str(files / "normal.csv"), "--task", "anomaly", "-o", str(m), "--json"]) == 0
    capsys.readouterr()
    code, _, err = run(capsys, "evaluate", m, files / "test.csv", "--label", "label", "--normal", "okay")
    assert_one_line_error(code, err, "evaluate", "'okay' is not a label", "fault, ok")


def test_normal_without_anomaly_task_is_refused(capsys, tmp_path):
    code, _, err = run(capsys, "train", "iris", "--normal", "setosa", "-o", tmp_path / "m.npz")
    assert_one_line_error(code, err, "train", "--task anomaly")


def test_help_describes_the_new_options():
    out = subprocess.run(
        [sys.executable, "-m", "edgenn.cli", "train", "--help"], capture_output=True, text=True, check=True
    ).stdout
    assert "--threshold-quantile" in out and "--normal" in out


def test_eval_device_counts_a_wrong_board_score(files, tmp_path):
    """summarize: one board score off by one is one disagreeing row, named in first_score_mismatches."""
    from edgenn import golden
    from edgenn.commands.anomaly_task import read_rows
    from edgenn.device.board_eval import BoardRun, summarize

    m = tmp_path / "m.npz"
    assert main(["train", str(files / "normal.csv"), "--task", "anomaly", "-o", str(m), "--json"]) == 0
    assert (
        main(
            ["quantize", str(m), "--data", str(files / "normal.csv"), "-o", str(tmp_path / "m.enn"), "--json"]
        )
        == 0
    )
    qm = modelfile.load(tmp_path / "m.enn")
    rows = read_rows(str(files / "test.csv"), "label", ["ok"], qm.input_names)
    outputs = golden.forward_q(qm, golden.quantize_input(qm, rows.X)).astype(np.int64)
    scores = anomaly.golden_scores(qm, rows.X).astype(np.float64)
    scores[3] += 1
    n = len(scores)
    run_ = BoardRun(n, outputs, outputs, scores, np.zeros(n, np.int64), [], 1.0, 0, 0)
    r = summarize(run_, qm, rows.anomalous, rows.X)
    assert r["score_agreement"] == pytest.approx((n - 1) / n) and r["agreement"] == pytest.approx((n - 1) / n)
    assert r["first_score_mismatches"][0]["row"] == 3 and r["auc"] > 0.9


def test_monitor_marks_anomaly_lines():
    from edgenn.commands.monitor import annotate

    assert annotate('{"score": 12, "anomaly": true}').endswith("<- score 12: ANOMALY")
    assert annotate('{"score": 3, "anomaly": false}').endswith("<- score 3: normal")
    assert annotate("hello anomaly") == "hello anomaly"
    assert annotate('{"anomaly": "yes"}') == '{"anomaly": "yes"}'


def test_sensor_windows_with_a_front_end(tmp_path, capsys):
    """--axes 3 --features stats: raw 3-axis windows in, the front end's features inside the model."""
    rng = np.random.default_rng(0)
    t = np.arange(32)

    def windows(n: int, fault: bool) -> np.ndarray:
        x = 2000 * np.sin(rng.uniform(0.25, 0.35, (n, 1, 1)) * t + rng.uniform(0, 6.3, (n, 3, 1)))
        if fault:
            x = x + 1500 * np.sin(2.5 * t + rng.uniform(0, 6.3, (n, 3, 1)))
        return np.round(x + rng.normal(0, 80, x.shape)).reshape(n, -1).astype(int)

    cols = [f"{a}{i}" for a in "xyz" for i in range(32)]
    write_csv(tmp_path / "normal.csv", cols, windows(120, False).tolist())
    rows = [[*r, "ok"] for r in windows(30, False).tolist()] + [
        [*r, "fault"] for r in windows(30, True).tolist()
    ]
    write_csv(tmp_path / "test.csv", [*cols, "label"], rows)
    m = tmp_path / "m.npz"
    argv = [
        "train",
        tmp_path / "normal.csv",
        "--task",
        "anomaly",
        "--axes",
        "3",
        "--features",
        "stats",
        "-o",
        m,
    ]
    code, out, _ = run(capsys, *argv)
    assert code == 0 and "front end: stats" in out
    code, _, _ = run(capsys, "quantize", m, "--data", tmp_path / "normal.csv", "-o", tmp_path / "m.enn")
    assert code == 0
    qm = modelfile.load(tmp_path / "m.enn")
    assert qm.frontend is not None and qm.task == "anomaly"
    code, out, _ = run(
        capsys, "evaluate", tmp_path / "m.enn", tmp_path / "test.csv", "--normal", "ok", "--json"
    )
    got = json.loads(out)
    assert code == 0 and got["auc"] > 0.95 and (got["n_normal"], got["n_anomalous"]) == (30, 30)


def test_evaluate_refuses_options_of_other_tasks(files, tmp_path, capsys):
    m = tmp_path / "m.npz"
    assert main(["train", str(files / "normal.csv"), "--task", "anomaly", "-o", str(m), "--json"]) == 0
    capsys.readouterr()
    code, _, err = run(capsys, "evaluate", m, files / "normal.csv", "--split", "test")
    assert_one_line_error(code, err, "evaluate", "--split")


def test_quantize_calibrates_on_the_rows_normal_names(files, tmp_path, capsys):
    """A model trained on a file of normal rows, quantized with a labelled file: --normal picks the rows."""
    m = tmp_path / "m.npz"
    assert main(["train", str(files / "normal.csv"), "--task", "anomaly", "-o", str(m), "--json"]) == 0
    capsys.readouterr()
    out = tmp_path / "m.enn"
    code, _, err = run(capsys, "quantize", m, "--data", files / "test.csv", "-o", out)
    assert_one_line_error(code, err, "quantize", "holds 2 labels", "--normal")
    assert not out.exists()
    code, text, _ = run(capsys, "quantize", m, "--data", files / "test.csv", "--normal", "ok", "-o", out)
    assert code == 0 and "calibrated on 19 normal rows" in text and "(40 anomalous)" in text
