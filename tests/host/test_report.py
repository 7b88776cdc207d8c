"""`edgenn report`: every section and class name in the page, a self-contained file, one-line errors,
and the page rendered in real headless Chromium (not blank, no console errors, no failed loads).

The board section with --port is tested against the virtual board in tests/e2e/test_report_board.py.
"""

from __future__ import annotations

import io
import json
import re
import sys
from pathlib import Path

import numpy as np
import pytest

from edgenn import modelfile
from edgenn.cli import main
from edgenn.data import load_dataset
from edgenn.nn import TrainConfig, train
from edgenn.quantize import quantize
from edgenn.report import build_report, figures
from edgenn.report.collect import collect

sys.path.insert(0, str(Path(__file__).parent))
from headless_chromium import find_chromium, render  # noqa: E402

pytest.importorskip("matplotlib", reason="edgenn report needs the report extra (matplotlib)")

SECTION_IDS = ("data", "training", "results", "quantization", "board")


def _models(tmp: Path, name: str, folds: int = 0) -> tuple[Path, Path]:
    dataset = load_dataset(name)
    fm = train(dataset, TrainConfig(hidden=(16, 8), seed=1, epochs=60, folds=folds, val_fraction=0.15))
    npz = tmp / f"{name}.npz"
    fm.save(npz)
    qm, _ = quantize(fm, dataset.X)
    enn = tmp / f"{name}.enn"
    modelfile.save(qm, enn)
    return npz, enn


@pytest.fixture(scope="module")
def iris(tmp_path_factory) -> tuple[Path, Path, Path]:
    tmp = tmp_path_factory.mktemp("report-iris")
    npz, enn = _models(tmp, "iris", folds=3)  # fold histories for the training curves
    out = tmp / "iris.html"
    assert main(["report", str(enn), "iris", "--float", str(npz), "--board", "esp32", "-o", str(out)]) == 0
    return npz, enn, out


@pytest.fixture(scope="module")
def diabetes(tmp_path_factory) -> tuple[Path, Path]:
    tmp = tmp_path_factory.mktemp("report-diabetes")
    npz, enn = _models(tmp, "diabetes")
    out = tmp / "diabetes.html"
    assert main(["report", str(enn), "diabetes", "--float", str(npz), "-o", str(out)]) == 0
    return enn, out


def _text(html: str) -> str:
    """The page's visible text, roughly: tags dropped, entities kept."""
    return re.sub(r"<[^>]+>", " ", re.sub(r'src="data:[^"]*"', "", html))


def _figure(html: str, alt: str) -> str:
    import base64

    data = re.search(rf'alt="{alt}[^"]*" src="data:image/svg\+xml;base64,([^"]+)"', html)
    assert data, f"no figure {alt!r}"
    return base64.b64decode(data.group(1)).decode()


def assert_self_contained(html: str) -> None:
    assert "<script" not in html.lower()
    assert not re.search(r"https?://", html), "the page refers to the network"
    assert "@import" not in html and "url(" not in html
    sources = re.findall(r'\bsrc="([^"]*)"', html) + re.findall(r'\bhref="([^"]*)"', html)
    assert sources, "expected inline figures"
    for src in sources:
        assert src.startswith(("data:", "#")), f"external reference {src[:60]!r}"


def test_classification_report_has_every_section_and_class(iris) -> None:
    _, _, out = iris
    html = out.read_text()
    for section in SECTION_IDS:
        assert f'<section id="{section}">' in html
    text = _text(html)
    confusion = _figure(html, "confusion matrices")
    for label in ("setosa", "versicolor", "virginica"):
        assert text.count(label) >= 2  # class balance, per-class table
        assert confusion.count(f">{label}<") >= 4  # both axes of both matrices (svg text stays text)
    for heading in (
        "Feature ranges",
        "Per class",
        "integer and float models disagree",
        "Memory fit on esp32",
        "executable RAM: the runtime",  # the kernels' machine code, its own budget (issue 18)
    ):
        assert heading in text
    assert "float precision" in text and "integer recall" in text and "SNR (dB)" in text
    assert "confusion matrices: float, integer" in html  # the figure's alt text
    curves = _figure(html, "training curves")
    assert all(f">{run}<" in curves for run in ("fold 1", "fold 3", "final fit"))
    assert "3-fold cross-validation accuracy" in text
    assert "layer 0" in text and "output" in text
    assert "Estimated latency" in text
    assert_self_contained(html)
    assert 20_000 < len(html) < 3_000_000


def test_figures_are_svg_that_parse(iris) -> None:
    import base64
    import xml.etree.ElementTree as ET

    html = iris[2].read_text()
    images = re.findall(r'src="data:image/svg\+xml;base64,([^"]+)"', html)
    assert len(images) >= 5  # balance, ranges, curves, confusion, histograms
    for data in images:
        root = ET.fromstring(base64.b64decode(data))
        assert root.tag.endswith("svg")


def test_regression_report_plots_predictions_instead_of_confusion(diabetes) -> None:
    enn, out = diabetes
    html = out.read_text()
    text = _text(html)
    for section in SECTION_IDS:
        assert f'<section id="{section}">' in html
    assert "predicted vs true and residual plots" in html
    assert "confusion matrices" not in html
    assert "RMSE" in text and "MAE" in text
    assert "furthest from the float model" in text
    assert_self_contained(html)


def test_npz_alone_is_quantized_in_memory_and_enn_alone_says_what_is_missing(iris, tmp_path) -> None:
    npz, enn, _ = iris
    report = build_report(str(npz), "iris", tmp_path / "a.html")
    assert "quantized in memory" in report.qm_source
    assert set(report.predictions) == {"float", "integer"}
    html = (tmp_path / "a.html").read_text()
    assert "Memory fit" in html and "Pass --board B" in html

    report = build_report(str(enn), "iris", tmp_path / "b.html")
    assert set(report.predictions) == {"integer"} and report.layers is None
    html = (tmp_path / "b.html").read_text()
    assert "pass --float MODEL.npz" in html
    assert "integer: " in html or "integer accuracy" in html


def test_model_without_history_says_so(iris, tmp_path) -> None:
    from edgenn.floatmodel import FloatModel

    npz, enn, _ = iris
    fm = FloatModel.load(npz)
    fm.meta = {}
    bare = tmp_path / "bare.npz"
    fm.save(bare)
    build_report(str(enn), "iris", tmp_path / "r.html", float_model=str(bare))
    assert "no per-epoch training history" in (tmp_path / "r.html").read_text()


def test_saturating_inputs_are_listed(iris, tmp_path) -> None:
    npz, enn, _ = iris
    ds = load_dataset("iris")
    csv = tmp_path / "wide.csv"
    with open(csv, "w") as fh:
        fh.write(",".join(ds.feature_names) + ",species\n")
        for x, y in zip(ds.X, ds.y):
            fh.write(",".join(f"{v * 3:.3f}" for v in x) + f",{ds.labels[y]}\n")
    report = build_report(str(enn), str(csv), tmp_path / "w.html", float_model=str(npz))
    text = _text((tmp_path / "w.html").read_text())
    assert "leave the calibrated range" in text and "rows outside" in text
    assert report.layers is not None and report.layers[0].clipped > 0


def test_json_summary(iris, tmp_path, capsys) -> None:
    npz, enn, _ = iris
    out = tmp_path / "j.html"
    assert main(["report", str(enn), "iris", "--float", str(npz), "-o", str(out), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["bytes"] == out.stat().st_size and result["rows"] == 150
    assert result["compared"] == ["float", "integer"]


def test_user_mistakes_are_one_line(iris, tmp_path, capsys) -> None:
    npz, enn, _ = iris
    out = str(tmp_path / "x.html")
    cases = [
        (["report", str(npz), "iris", "--float", str(npz), "-o", out], "already a .npz"),
        (["report", str(enn), "wine", "-o", out], "wine"),
        (["report", str(enn), "iris", "-o", str(tmp_path / "nodir" / "x.html")], "does not exist"),
        (["report", str(enn), "iris", "-o", out, "--board", "nosuchboard"], "nosuchboard"),
    ]
    other_npz, _ = _models(tmp_path, "wine")
    cases.append((["report", str(enn), "iris", "--float", str(other_npz), "-o", out], "not the same model"))
    for argv, needle in cases:
        assert main(argv) == 2, argv
        err = capsys.readouterr().err
        assert needle in err and err.count("\n") == 1 and "Traceback" not in err, err


def test_missing_matplotlib_is_one_line(iris, tmp_path, monkeypatch, capsys) -> None:
    _, enn, _ = iris
    monkeypatch.setattr(figures, "_plt", None)
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib -> ImportError
    assert main(["report", str(enn), "iris", "-o", str(tmp_path / "m.html")]) == 2
    err = capsys.readouterr().err
    assert "pip install 'edgenn[report]'" in err and err.count("\n") == 1


# ---------------------------------------------------------------------------------------------------
# The browser


def _not_blank(png: bytes) -> tuple[float, int]:
    """(share of non-white pixels, number of distinct colours) of a screenshot."""
    from PIL import Image

    image = Image.open(io.BytesIO(png)).convert("RGB")
    pixels = np.asarray(image)
    non_white = float(np.mean(np.any(pixels < 240, axis=2)))
    colours = len(np.unique(pixels.reshape(-1, 3)[::7], axis=0))
    return non_white, colours


needs_chromium = pytest.mark.skipif(
    find_chromium() is None, reason="chromium is not installed (.ci/run installs it)"
)


@needs_chromium
@pytest.mark.slow  # two pages in a real browser: ~5 s, more on a loaded machine
def test_the_page_renders_in_headless_chromium(iris, diabetes, tmp_path) -> None:
    for out in (iris[2], diabetes[1]):
        shot = render(out)
        assert shot.errors == [], shot.errors
        (tmp_path / (out.stem + ".png")).write_bytes(shot.png)
        non_white, colours = _not_blank(shot.png)
        assert shot.height > 2000  # five sections of tables and figures, not an empty page
        assert non_white > 0.03 and colours > 20, (non_white, colours)


@needs_chromium
def test_the_browser_check_catches_a_broken_page(tmp_path) -> None:
    bad = tmp_path / "bad.html"
    bad.write_text('<p>x</p><img src="missing.png"><script>console.error("boom")</script>')
    shot = render(bad)
    assert any("boom" in e for e in shot.errors)
    assert any("ERR_FILE_NOT_FOUND" in e for e in shot.errors)
    blank = tmp_path / "blank.html"
    blank.write_text("<html><body></body></html>")
    non_white, _ = _not_blank(render(blank).png)
    assert non_white < 0.001


def test_estimated_latency_on_an_esp32_and_why_not_on_the_virtual_board(iris, tmp_path) -> None:
    import shutil

    _, enn, out = iris
    text = _text(out.read_text())
    if shutil.which("qemu-xtensa"):
        assert re.search(r"estimated time per inference\s+[\d.]+ us at 160 MHz \(Xtensa LX6\)", text)
        assert "kernel instructions" in text
    else:
        assert "Estimated latency: not available" in text
    report = build_report(str(enn), "iris", tmp_path / "v.html", board="virtual")
    assert report.fit is not None and report.fit.estimate is None
    assert "not available for virtual" in report.fit.estimate_note
    assert "Memory fit on virtual" in (tmp_path / "v.html").read_text()


def test_a_sensor_front_end_model_shows_its_features(tmp_path) -> None:
    """Rows are raw windows; the feature ranges are those of the front end's features, which are what
    the input scaling sees."""
    rng = np.random.default_rng(3)
    t = np.arange(32)
    csv = tmp_path / "g.csv"
    y = np.repeat(np.arange(3), 15)
    with open(csv, "w") as fh:
        fh.write(",".join(f"{a}{i}" for a in "xyz" for i in t) + ",label\n")
        for k in y:  # three gestures: still, slow wave, fast wave (integer sensor counts)
            w = [
                np.round(500 * k * np.sin(2 * np.pi * (k + a) * t / 32) + rng.normal(0, 40, 32))
                for a in range(3)
            ]
            fh.write(",".join(str(int(v)) for v in np.concatenate(w)) + f",g{k}\n")
    npz, enn = tmp_path / "g.npz", tmp_path / "g.enn"
    assert (
        main(["train", str(csv), "--label", "label", "--axes", "3", "--features", "stats", "-o", str(npz)])
        == 0
    )
    assert main(["quantize", str(npz), "--data", str(csv), "-o", str(enn), "--no-qat", "--json"]) == 0
    report = build_report(str(enn), str(csv), tmp_path / "g.html", float_model=str(npz))
    qm = modelfile.load(enn)
    assert qm.frontend is not None and report.input_names == list(qm.feature_names)
    assert report.inputs is not None and report.inputs.shape == (len(y), len(qm.feature_names))
    ranges = _figure((tmp_path / "g.html").read_text(), "feature ranges")
    assert f">{qm.feature_names[0]}<" in ranges and ">x0<" not in ranges
    assert report.layers is not None and report.layers[0].width == len(qm.feature_names)


def test_progress_mentions_the_emulated_latency_only_for_a_chip_with_a_cycle_model(iris) -> None:
    _, enn, _ = iris
    for board, emulated in (("esp32", True), ("virtual", False)):
        heard: list[str] = []
        collect(str(enn), "iris", board=board, progress=heard.append)
        fit = [m for m in heard if m.startswith("memory fit on ")]
        assert fit and ("estimated latency" in fit[0]) == emulated, heard


def test_a_report_on_the_training_rows_says_they_are_not_new_data(iris) -> None:
    npz, enn, _ = iris  # iris trained on every row, 3-fold CV
    notes = collect(str(enn), "iris", float_model=str(npz)).notes
    said = [n for n in notes if "trained on all 150 of these rows" in n]
    assert said and "3-fold cross-validated" in said[0], notes
    assert not any("these rows" in n for n in collect(str(enn), "iris").notes)  # a .enn alone cannot know
