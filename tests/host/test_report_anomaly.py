"""`edgenn report` of an anomaly model (`train --task anomaly`): score histograms of normal and anomalous
rows with the threshold, the ROC curve, the rows with the highest scores and why; without labels the
score distribution alone; a sensor front end's model; one-line mistakes; the page in headless Chromium.

Every number the page shows is checked against edgenn.anomaly and edgenn.metrics computed here."""

from __future__ import annotations

import csv
import re
import sys
from pathlib import Path

import numpy as np
import pytest

from edgenn import anomaly, golden, modelfile
from edgenn.cli import main
from edgenn.data import load_dataset
from edgenn.metrics import anomaly_summary
from edgenn.report.collect import collect

sys.path.insert(0, str(Path(__file__).parent))
from headless_chromium import find_chromium, render  # noqa: E402
from test_report import _figure, _not_blank, _text, assert_self_contained  # noqa: E402

pytest.importorskip("matplotlib", reason="edgenn report needs the report extra (matplotlib)")


@pytest.fixture(scope="module")
def iris(tmp_path_factory) -> tuple[Path, Path, Path]:
    """An autoencoder on versicolor (setosa and virginica are anomalies), quantized, and its report."""
    tmp = tmp_path_factory.mktemp("report-anomaly")
    npz, enn, out = tmp / "m.npz", tmp / "m.enn", tmp / "m.html"
    assert main(["train", "iris", "--task", "anomaly", "--normal", "versicolor", "-o", str(npz)]) == 0
    assert main(["quantize", str(npz), "--data", "iris", "-o", str(enn)]) == 0
    assert main(["report", str(enn), "iris", "--float", str(npz), "--board", "esp32", "-o", str(out)]) == 0
    return npz, enn, out


def _cells(html: str, heading: str) -> list[list[str]]:
    """The text of each body row of the first table after `heading`."""
    part = html[html.index(heading) :]
    body = part[part.index("<tbody>") : part.index("</tbody>")]
    return [
        [_text(c).strip() for c in re.findall(r"<td[^>]*>(.*?)</td>", row)] for row in body.split("<tr>")[1:]
    ]


def test_the_page_shows_auc_threshold_histograms_roc_and_top_rows(iris) -> None:
    _, enn, out = iris
    html = out.read_text()
    text = _text(html)
    qm = modelfile.load(enn)
    X = load_dataset("iris").X
    y = load_dataset("iris").y  # setosa 0, versicolor 1, virginica 2
    anomalous = y != 1
    scores = anomaly.golden_scores(qm, X)
    expected = anomaly_summary(scores, anomalous, qm.threshold)
    results = _cells(html, "<h2>Results</h2>")
    integer = next(r for r in results if r[0] == "integer")
    assert integer[1] == f"{expected['auc']:.4f}" and integer[2] == str(qm.threshold)
    assert integer[6] == f"{expected['confusion'][0][1]} of 50"
    assert integer[7] == f"{expected['confusion'][1][1]} of 100"
    assert f"{expected['auc']:.3f}" in text and "integer ROC AUC" in text
    assert "50 normal rows (versicolor) and 100 anomalous rows (setosa 50, virginica 50)" in text
    assert "the 0.99 quantile of their out-of-fold scores" in text
    oof = _figure(html, "anomaly score histograms")  # the first: the training rows' out-of-fold scores
    assert ">out-of-fold (training) score<" in oof and "normal (50)" in oof and "anomalous" not in oof

    hist = _figure(html[html.index("<h2>Results</h2>") :], "anomaly score histograms")
    assert ">float score<" in hist and ">integer score<" in hist
    assert (
        f"threshold {float(qm.threshold):.4g}" in hist and "normal (50)" in hist and "anomalous (100)" in hist
    )
    roc = _figure(html, "ROC curve")
    assert f"integer: AUC {expected['auc']:.3f}" in roc

    top = _cells(html, "The rows with the highest scores")
    order = np.argsort(-scores, kind="stable")
    assert [int(r[0]) for r in top] == [int(i) for i in order[:20]]
    assert [int(r[2]) for r in top] == [int(scores[i]) for i in order[:20]]
    assert all(r[4] == ("anomalous" if scores[int(r[0])] > qm.threshold else "normal") for r in top)
    labels = ["setosa", "versicolor", "virginica"]
    assert [r[1] for r in top] == [labels[y[i]] for i in order[:20]]
    for section in ("data", "training", "results", "quantization", "board"):
        assert f'<section id="{section}">' in html
    assert "no training history" not in text  # train --task anomaly keeps none; nothing to warn about
    assert_self_contained(html)


def test_the_largest_terms_add_up_to_the_integer_score(iris) -> None:
    npz, enn, _ = iris
    report = collect(str(enn), "iris", float_model=str(npz))
    a = report.anomaly
    assert a is not None and set(a.scores) == {"float", "integer"}
    qm = modelfile.load(enn)
    X = load_dataset("iris").X
    assert np.array_equal(a.terms.sum(axis=1), anomaly.golden_scores(qm, X))
    assert np.array_equal(a.scores["integer"], anomaly.golden_scores(qm, X))
    assert a.normal == ["versicolor"]  # from the model, as it was trained
    # a feature pushed far from its normal range takes the largest share of its row's score
    x = X[60:61].copy()
    x[0, 2] = 20.0  # petal length in cm
    u = golden.quantize_input(qm, x)
    assert anomaly.golden_scores(qm, x)[0] > anomaly.golden_scores(qm, X[60:61])[0]
    assert u[0, 2] == 255


def test_the_page_says_when_the_normal_rows_are_those_the_model_was_fitted_on(iris, tmp_path) -> None:
    npz, enn, out = iris
    said = "the model was fitted on all 50 normal rows here, so their scores are lower than new normal data"
    assert said in _text(out.read_text())  # iris's versicolor rows are the rows it was trained on
    others = tmp_path / "others.csv"  # the same model on rows it never saw: no such note
    ds = load_dataset("iris")
    with open(others, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow([*ds.feature_names, "species"])
        w.writerows([[*x, ds.labels[c]] for x, c in zip((ds.X + 0.01).tolist(), ds.y.tolist())])
    page = tmp_path / "o.html"
    assert (
        main(["report", str(enn), str(others), "--float", str(npz), "--label", "species", "-o", str(page)])
        == 0
    )
    assert "was fitted on all" not in _text(page.read_text())


def test_without_labels_the_scores_alone(iris, tmp_path) -> None:
    npz, enn, _ = iris
    ds = load_dataset("iris")
    data = tmp_path / "unlabelled.csv"
    with open(data, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(ds.feature_names)
        w.writerows(ds.X[:40].tolist())
    out = tmp_path / "u.html"
    assert main(["report", str(enn), str(data), "-o", str(out)]) == 0
    html = out.read_text()
    text = _text(html)
    qm = modelfile.load(enn)
    flagged = int(np.sum(anomaly.golden_scores(qm, ds.X[:40]) > qm.threshold))
    assert "No label column" in text and f"{flagged} of 40" in text
    assert "<h3>ROC curve</h3>" not in html and "normal (40)" in _figure(html, "anomaly score histograms")


@pytest.mark.slow  # trains a window model and draws its page: ~5 s
def test_a_front_end_model_names_its_features(tmp_path) -> None:
    """3-axis windows (axis-major, as `edgenn record` writes): normal ones hum slowly, faults faster."""
    rng = np.random.default_rng(3)
    t = np.arange(32)
    rows, labels = [], []
    for k in range(80):
        fault = k % 4 == 3
        hz = 0.2 if not fault else 0.45
        x = 800 * np.sin(hz * t + rng.uniform(0, 6)) + rng.normal(0, 60, (3, 32))
        x[2] += 4096
        rows.append(np.round(x).astype(int).ravel().tolist())
        labels.append("fault" if fault else "ok")
    data = tmp_path / "windows.csv"
    with open(data, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow([f"{a}{i}" for a in "xyz" for i in range(32)] + ["label"])
        w.writerows(r + [lab] for r, lab in zip(rows, labels))
    npz, out = tmp_path / "w.npz", tmp_path / "w.html"
    train = ["train", str(data), "--task", "anomaly", "--normal", "ok", "--axes", "3", "--features", "stats"]
    assert main([*train, "--epochs", "40", "-o", str(npz)]) == 0
    assert main(["report", str(npz), str(data), "-o", str(out)]) == 0  # a .npz alone: quantized in memory
    top = _cells(out.read_text(), "The rows with the highest scores")
    assert re.match(r"(x|y|z|mag)\.\w+ \d+%", top[0][-1]), top[0]  # the front end's feature names
    assert "calibrated on the normal rows of DATA" in _text(out.read_text())


def test_user_mistakes_are_one_line(iris, tmp_path, capsys) -> None:
    npz, enn, _ = iris
    out = str(tmp_path / "x.html")
    classify = tmp_path / "c.npz"
    assert main(["train", "iris", "--epochs", "5", "-o", str(classify)]) == 0
    capsys.readouterr()
    cases = [
        (["report", str(enn), "iris", "--normal", "tulip", "-o", out], "'tulip' is not a label"),
        (["report", str(classify), "iris", "--normal", "setosa", "-o", out], "this is a classify model"),
        (["report", str(enn), "iris", "-o", out], "say which are normal with --normal"),  # .enn: no meta
    ]
    for argv, needle in cases:
        assert main(argv) == 2, argv
        err = capsys.readouterr().err
        assert needle in err and err.count("\n") == 1 and "Traceback" not in err, err
        assert not Path(out).exists()


@pytest.mark.skipif(find_chromium() is None, reason="chromium is not installed (.ci/run installs it)")
@pytest.mark.slow  # a real browser: ~5 s, more on a loaded machine
def test_the_page_renders_in_headless_chromium(iris, tmp_path) -> None:
    shot = render(iris[2])
    assert shot.errors == [], shot.errors
    (tmp_path / "anomaly.png").write_bytes(shot.png)
    non_white, colours = _not_blank(shot.png)
    assert shot.height > 2500 and non_white > 0.03 and colours > 20, (shot.height, non_white, colours)


def test_a_board_score_that_differs_from_golden_is_shown_as_a_bug(iris) -> None:
    """The board section of an anomaly model (tests/e2e/test_anomaly_tutorial.py runs the real one):
    a differing score is named, row and both values."""
    from edgenn.report import page
    from edgenn.report.collect import BoardSection

    npz, enn, _ = iris
    report = collect(str(enn), "iris", float_model=str(npz))
    a = report.anomaly
    board_scores = a.scores["integer"].copy()
    board_scores[7] += 1
    a.scores["board"], a.thresholds["board"] = board_scores, a.thresholds["integer"]
    lat = {"p50": 10.0, "p95": 12.0, "max": 20.0}
    summary = {
        "n": 150,
        "answered": 150,
        "errors": 0,
        "agreement": 149 / 150,
        "score_agreement": 149 / 150,
        "latency_us": lat,
        "rows_per_s": 100.0,
        "first_mismatches": [],
        "first_score_mismatches": [
            {"row": 7, "board": int(board_scores[7]), "golden": int(board_scores[7] - 1)}
        ],
    }
    report.board = BoardSection({"platform": "linux"}, summary, board_scores, np.full(150, 10.0))
    text = _text(page.render(report))
    assert f"row 7: board score {int(board_scores[7])} golden {int(board_scores[7] - 1)}" in text
    assert "99.33% of rows" in text  # anomaly scores equal to golden
    assert "drawn once" not in text  # the board's scores differ: drawn in their own panel
