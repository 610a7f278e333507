"""Binary metrics on hand-worked examples: AUROC, AP, threshold metrics, Youden's J, embryo aggregation."""

from __future__ import annotations

import numpy as np
import pytest

from cs_features import metrics

# Hand-worked ROC: by descending score 0.8(+) 0.7(+) 0.4(-) 0.35(+) 0.2(-) 0.1(-).
Y = np.array([0, 0, 1, 1, 0, 1])
S = np.array([0.1, 0.4, 0.35, 0.8, 0.2, 0.7])
EMBRYOS = ["a", "a", "b", "b", "c", "c"]


def test_auroc_and_average_precision_by_hand():
    # positives 0.8 and 0.7 beat all 3 negatives, 0.35 beats 2 of them: 8 / 9 pairs
    assert metrics.auroc(Y, S) == pytest.approx(8 / 9)
    # AP = sum over recall steps of precision: 1/3 * 1 + 1/3 * 1 + 1/3 * 3/4
    assert metrics.average_precision(Y, S) == pytest.approx(11 / 12)


def test_threshold_metrics_by_hand():
    report = metrics.threshold_metrics(Y, S, 0.5)
    assert report["confusion"] == {"tp": 2, "fp": 0, "tn": 3, "fn": 1}
    assert report["precision"] == 1.0
    assert report["recall"] == pytest.approx(2 / 3)
    assert report["f1"] == pytest.approx(0.8)
    assert report["accuracy"] == pytest.approx(5 / 6)
    # score == threshold counts as positive
    assert metrics.confusion_at(Y, S, 0.35)["tp"] == 3


def test_youden_threshold_on_hand_worked_roc():
    # J: t=0.8 1/3, t=0.7 2/3, t=0.4 1/3, t=0.35 2/3, t=0.2 1/3, t=0.1 0 -> tie, the higher threshold wins
    assert metrics.youden_threshold(Y, S) == pytest.approx(0.7)
    # a perfectly separable case: the lowest positive score
    assert metrics.youden_threshold([0, 0, 1, 1], [0.1, 0.2, 0.6, 0.9]) == pytest.approx(0.6)


def test_single_class_is_reported_not_crashed():
    y = np.zeros(4, int)
    s = np.array([0.1, 0.2, 0.3, 0.4])
    assert metrics.auroc(y, s) is None and metrics.average_precision(y, s) is None
    assert "no positive" in metrics.undefined_reason(y)
    assert "no negative" in metrics.undefined_reason(np.ones(3, int))
    report = metrics.binary_report(y, s, 0.25)
    assert report["auroc"] is None and "AUROC is undefined" in report["auroc_undefined_reason"]
    assert report["confusion"] == {"tp": 0, "fp": 2, "tn": 2, "fn": 0} and report["f1"] == 0.0
    with pytest.raises(ValueError, match="cannot choose a Youden threshold: no positive"):
        metrics.youden_threshold(y, s)


def test_embryo_level_is_max_over_frames():
    ids, labels, scores = metrics.embryo_scores(EMBRYOS, Y, S)
    assert ids.tolist() == ["a", "b", "c"]
    assert labels.tolist() == [0, 1, 1]  # c has one abnormal frame -> abnormal embryo
    assert scores.tolist() == [0.4, 0.8, 0.7]
    report = metrics.embryo_report(EMBRYOS, Y, S, threshold=0.5)
    assert report["auroc"] == 1.0 and report["n"] == 3 and report["confusion"]["tp"] == 2


def test_binary_report_keys_and_counts():
    report = metrics.binary_report(Y, S, 0.7)
    assert report["n"] == 6 and report["n_positive"] == 3 and report["n_negative"] == 3
    assert report["auroc_undefined_reason"] is None and report["threshold"] == 0.7


def test_labels_to_binary():
    assert metrics.labels_to_binary(["normal", "abnormal", "abnormal"]).tolist() == [0, 1, 1]


@pytest.mark.parametrize("y, s, error, text", [
    ([0, 2, 1], [0.1, 0.2, 0.3], ValueError, "only 0 and 1"),
    (["normal", "abnormal"], [0.1, 0.2], TypeError, "labels_to_binary"),
    ([0, 1], [0.1], ValueError, "shape"),
    ([0, 1], [0.1, float("nan")], ValueError, "finite"),
])
def test_bad_input_is_refused_with_the_value(y, s, error, text):
    with pytest.raises(error, match=text):
        metrics.auroc(y, s)


def test_sensitivity_threshold_keeps_the_target_share_of_positives():
    from cs_features.metrics import confusion_at, sensitivity_threshold

    rng = np.random.default_rng(0)
    y = np.r_[np.ones(40), np.zeros(60)].astype(int)
    s = np.r_[rng.normal(2, 1, 40), rng.normal(0, 1, 60)]
    for target in (0.5, 0.9, 0.97, 1.0):
        t = sensitivity_threshold(y, s, target)
        c = confusion_at(y, s, t)
        assert c["tp"] / 40 >= target
        assert confusion_at(y, s, np.nextafter(t, np.inf))["tp"] / 40 < target  # the highest such threshold
    assert sensitivity_threshold(y, s, 1.0) == s[:40].min()
    with pytest.raises(ValueError, match="no positive"):
        sensitivity_threshold(np.zeros(5, int), np.arange(5.0), 0.9)
