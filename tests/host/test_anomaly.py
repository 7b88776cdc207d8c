"""Anomaly detection, the library: the score's math against a plain reference, the integer score
against a per-row Python loop, the metrics against scikit-learn, the .enn anomaly section."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import precision_recall_fscore_support, roc_auc_score

from edgenn import anomaly, golden, metrics
from edgenn import modelfile as mf
from edgenn.data import load_dataset
from edgenn.errors import UserError
from edgenn.quantize import quantize


@pytest.fixture(scope="module")
def wine():
    """Class 0 of wine is normal: half of it trains, the rest and the other classes test."""
    ds = load_dataset("wine")
    normal = np.flatnonzero(ds.y == 0)
    train = normal[::2]
    test = np.setdiff1d(np.arange(ds.n_rows), train)
    fm = anomaly.train_anomaly(ds.X[train], seed=1, feature_names=ds.feature_names)
    qm, _ = quantize(fm, ds.X[train])
    return ds, train, test, fm, qm


def test_float_score_is_the_documented_formula(wine):
    ds, _, test, fm, _ = wine
    x = ds.X[test]
    z = (x - fm.input_mean) / fm.input_std
    a = z
    for w, b, act in zip(fm.weights, fm.biases, fm.activations):
        a = a @ w + b
        a = {"relu": lambda v: np.maximum(v, 0), "tanh": np.tanh, "identity": lambda v: v}[act](a)
    want = ((z - a) ** 2) @ fm.score_weights + (z**2) @ fm.deviation_weights
    np.testing.assert_allclose(anomaly.float_scores(fm, x), want, rtol=1e-9)


def test_threshold_is_the_quantile_of_out_of_fold_scores(wine):
    _, train, _, fm, _ = wine
    oof = np.array(fm.meta["anomaly"]["oof_scores"])
    assert len(oof) == len(train)
    assert fm.threshold == pytest.approx(np.quantile(oof, 0.99), rel=1e-6)
    assert np.sum(oof > fm.threshold) <= max(1, int(np.ceil(0.01 * len(oof))))


def test_integer_score_matches_a_plain_loop_and_the_proof(wine):
    ds, _, test, _, qm = wine
    u = golden.quantize_input(qm, ds.X[test])
    r = golden.forward_q(qm, u).astype(int) + 128
    want = []
    for row, rec in zip(u.tolist(), r.tolist()):
        s = 0
        for d in range(qm.n_inputs):
            s += int(qm.score_weights[d]) * (row[d] - rec[d]) ** 2
            s += int(qm.deviation_weights[d]) * (row[d] - int(qm.score_center[d])) ** 2
        want.append(s)
    got = anomaly.golden_scores(qm, ds.X[test])
    assert got.tolist() == want
    assert mf.score_bound(qm.score_weights, qm.deviation_weights) < 2**30


def test_integer_detects_like_float(wine):
    ds, _, test, fm, qm = wine
    anomalous = ds.y[test] != 0
    auc_f = metrics.roc_auc(anomaly.float_scores(fm, ds.X[test]), anomalous)
    auc_i = metrics.roc_auc(anomaly.golden_scores(qm, ds.X[test]), anomalous)
    assert auc_f > 0.9
    assert abs(auc_f - auc_i) <= 0.02


def test_enn_anomaly_section_round_trips_every_field(wine):
    *_, qm = wine
    data = mf.to_bytes(qm)
    version, flags = int.from_bytes(data[4:6], "little"), int.from_bytes(data[6:8], "little")
    assert (version, flags) == (3, mf.FLAG_ANOMALY)
    back = mf.from_bytes(data)
    assert back.task == "anomaly"
    assert back.threshold == qm.threshold
    for field in ("score_weights", "deviation_weights", "score_center"):
        np.testing.assert_array_equal(getattr(back, field), getattr(qm, field), err_msg=field)
    assert mf.to_bytes(back) == data


def test_enn_refuses_a_score_that_could_overflow(wine):
    *_, qm = wine
    bad = mf.QuantModel(**{**qm.__dict__, "score_weights": np.full(qm.n_inputs, 0xFFFF)})
    with pytest.raises(mf.ModelFormatError, match="overflow proof"):
        mf.to_bytes(bad)


def test_metrics_match_scikit_learn():
    rng = np.random.default_rng(3)
    s = np.round(rng.normal(size=300), 1)  # ties on purpose
    pos = rng.random(300) < 0.3
    s[pos] += 0.8
    assert metrics.roc_auc(s, pos) == pytest.approx(roc_auc_score(pos, s), abs=1e-12)
    got = metrics.anomaly_summary(s, pos, 0.5)
    p, r, f, _ = precision_recall_fscore_support(pos, s > 0.5, average="binary")
    assert (got["precision"], got["recall"], got["f1"]) == pytest.approx((p, r, f))
    assert got["n_normal"] + got["n_anomalous"] == 300


def test_too_few_normal_rows_is_a_user_error():
    with pytest.raises(UserError, match="at least 10"):
        anomaly.train_anomaly(np.zeros((6, 3)))
    with pytest.raises(UserError, match="no normal rows"):
        anomaly.train_anomaly(np.zeros((0, 3)))
