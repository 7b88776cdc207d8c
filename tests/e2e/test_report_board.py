"""`edgenn report --port` on the virtual board: the board section (agreement, latency, heap, kernel,
the board's own memory profile) and the board's confusion matrix beside float and integer; and
`eval-device` printing the board's confusion matrix."""

from __future__ import annotations

import json
import re

import pytest

from edgenn import cli, modelfile
from edgenn.data import load_dataset
from edgenn.device.deploy import deploy, firmware_dir
from edgenn.nn import TrainConfig, train
from edgenn.quantize import quantize

pytest.importorskip("matplotlib", reason="edgenn report needs the report extra (matplotlib)")
pytestmark = pytest.mark.skipif(
    not (firmware_dir() / "edgenn.py").exists(), reason="device runtime firmware/edgenn.py not there yet"
)


@pytest.fixture
def iris_on_board(vboard, tmp_path):
    dataset = load_dataset("iris")
    fm = train(dataset, TrainConfig(hidden=(8,), seed=1, epochs=60))
    npz, enn = tmp_path / "iris.npz", tmp_path / "iris.enn"
    fm.save(npz)
    modelfile.save(quantize(fm, dataset.X)[0], enn)
    deploy(enn, vboard.port, board="esp32", say=lambda _text: None)
    return vboard, npz, enn


def test_report_with_port_shows_the_board(iris_on_board, tmp_path, capsys) -> None:
    board, npz, enn = iris_on_board
    out = tmp_path / "r.html"
    assert (
        cli.main(["report", str(enn), "iris", "--float", str(npz), "--port", board.port, "-o", str(out)]) == 0
    )
    html = out.read_text()
    text = re.sub(r"<[^>]+>", " ", re.sub(r'src="data:[^"]*"', "", html))
    assert "confusion matrices: float, integer, board" in html
    assert "board accuracy" in text and "board recall" in text
    assert "100.00% of rows: int8 outputs byte for byte" in text
    assert re.search(r"latency p50 / p95 / max\s+\d+ / \d+ / \d+ us", text)
    assert re.search(r"heap free\s+\d+ B", text)
    assert "viper" in text or "portable" in text
    # the profile doctor and deploy name for this board (issue 19 item 7: it said "virtual" here)
    assert "Memory fit on esp32" in text
    assert "x86-64 timings" in text

    # a .npz MODEL is compared with what the board runs (read back from it)
    out2 = tmp_path / "r2.html"
    assert cli.main(["report", str(npz), "iris", "--port", board.port, "-o", str(out2), "--json"]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["compared"] == ["float", "integer", "board"]
    assert "read back from the board" in out2.read_text()


def test_eval_device_prints_the_board_confusion_matrix(iris_on_board, capsys) -> None:
    board, _, _ = iris_on_board
    assert cli.main(["eval-device", "--port", board.port, "iris"]) == 0
    out = capsys.readouterr().out
    assert "confusion" in out and " 0 setosa" in out and "recall" in out
    assert cli.main(["eval-device", "--port", board.port, "iris", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert sum(map(sum, result["confusion"])) == 150
    assert [c["label"] for c in result["per_class"]] == ["setosa", "versicolor", "virginica"]


def test_report_refuses_an_enn_that_is_not_on_the_board(iris_on_board, tmp_path, capsys) -> None:
    board, _, _ = iris_on_board
    other = tmp_path / "other.enn"
    ds = load_dataset("iris")
    modelfile.save(quantize(train(ds, TrainConfig(hidden=(4,), seed=3, epochs=5)), ds.X)[0], other)
    assert cli.main(["report", str(other), "iris", "--port", board.port, "-o", str(tmp_path / "x.html")]) == 2
    assert "is not the model on the board" in capsys.readouterr().err
