"""An anomaly model on the virtual board through the real commands: deploy, predict (score and flag),
eval-device (every board score equals golden's; AUC of the board's own scores), the server's replies."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from edgenn import anomaly, cli, modelfile
from edgenn.data import load_dataset
from edgenn.device.client import BoardClient, format_features
from edgenn.device.deploy import deploy
from edgenn.quantize import quantize


@pytest.fixture(scope="module")
def wine_anomaly(tmp_path_factory) -> tuple[Path, Path, modelfile.QuantModel, np.ndarray, np.ndarray]:
    """Class 0 of wine is normal (half of it trains); test.csv: every row, label ok/fault."""
    d = tmp_path_factory.mktemp("anomaly_e2e")
    ds = load_dataset("wine")
    train = np.flatnonzero(ds.y == 0)[::2]
    fm = anomaly.train_anomaly(ds.X[train], seed=0, feature_names=ds.feature_names)
    qm, _ = quantize(fm, ds.X[train])
    path = d / "wine_anomaly.enn"
    modelfile.save(qm, path)
    test = d / "test.csv"
    with open(test, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow([*ds.feature_names, "label"])
        for x, y in zip(ds.X, ds.y):
            w.writerow([f"{v:g}" for v in x] + ["ok" if y == 0 else "fault"])
    return path, test, qm, ds.X, ds.y != 0


@pytest.fixture
def board(vboard, wine_anomaly):
    deploy(wine_anomaly[0], vboard.port, board="esp32", say=lambda _text: None)
    return vboard


def edgenn(capsys, *argv) -> tuple[int, str, str]:
    code = cli.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_predict_replies_with_the_golden_score_and_flag(board, wine_anomaly, capsys):
    _, _, qm, X, anomalous = wine_anomaly
    want = anomaly.golden_scores(qm, X)
    for i in (0, int(np.flatnonzero(anomalous)[0])):
        code, out, err = edgenn(capsys, "predict", "--port", board.port, "--json", format_features(X[i]))
        assert code == 0, err
        reply = json.loads(out)
        assert reply["score"] == want[i] and reply["anomaly"] == bool(want[i] > qm.threshold)
        assert len(reply["scores"]) == qm.n_inputs
    code, out, _ = edgenn(capsys, "predict", "--port", board.port, format_features(X[0]))
    assert code == 0 and out.split()[0] in ("normal", "ANOMALY") and f"score {want[0]}" in out


def test_q_and_x_replies_carry_the_score(board, wine_anomaly):
    _, _, qm, X, _ = wine_anomaly
    from edgenn import golden

    codes = golden.quantize_input(qm, X[:3])
    want = anomaly.golden_scores_q(qm, codes)
    with BoardClient(board.port) as client:
        client.connect()
        for row, s in zip(codes, want):
            reply = client.request("q " + ",".join(str(int(v)) for v in row))
            assert reply["score"] == s and reply["anomaly"] == bool(s > qm.threshold)
        reply = client.request("x " + format_features(X[0]))
        assert reply["x"] == codes[0].tolist() and reply["score"] == want[0]


@pytest.mark.slow
@pytest.mark.parametrize("mode", [[], ["--codes"]])
def test_eval_device_checks_every_score(board, wine_anomaly, capsys, mode):
    path, test, qm, X, anomalous = wine_anomaly
    argv = ["eval-device", "--port", board.port, test, "--normal", "ok", "--model", path, "--json", *mode]
    code, out, err = edgenn(capsys, *argv)
    assert code == 0, err
    r = json.loads(out)
    assert r["n"] == len(X) and r["score_agreement"] == 1.0 and r["agreement"] == 1.0
    assert r["threshold"] == qm.threshold
    assert r["flagged"] == int(np.sum(anomaly.golden_scores(qm, X) > qm.threshold))
    assert (r["n_normal"], r["n_anomalous"]) == (int((~anomalous).sum()), int(anomalous.sum()))
    assert r["auc"] > 0.9
    code, out, _ = edgenn(capsys, *[a for a in argv if a != "--json"])
    assert code == 0 and "anomaly score equals the golden model's" in out and "ROC AUC" in out
