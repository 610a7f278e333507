"""Intervals by resampling whole embryos."""

import numpy as np
import pytest

from cs_features.metrics import auroc, embryo_bootstrap


def test_an_embryo_s_items_are_drawn_together_so_correlated_frames_widen_the_interval():
    # 20 embryos of 10 frames; within an embryo every frame has the same value (one object filmed 10 times)
    rng = np.random.default_rng(1)
    per_embryo = rng.random(20)
    values = np.repeat(per_embryo, 10)
    embryos = np.repeat([f"E{k:02d}" for k in range(20)], 10)
    by_embryo = embryo_bootstrap(embryos, lambda idx: values[idx].mean(), resamples=400)
    by_frame = embryo_bootstrap(np.arange(200).astype(str), lambda idx: values[idx].mean(), resamples=400)
    assert by_embryo["embryos"] == 20 and by_embryo["resamples"] == 400
    assert by_embryo["low"] < values.mean() < by_embryo["high"]
    # resampling frames one by one treats 200 draws as independent: about sqrt(10) times too narrow
    assert (by_embryo["high"] - by_embryo["low"]) > 2 * (by_frame["high"] - by_frame["low"])


def test_the_same_seed_gives_the_same_interval_and_a_constant_gives_a_point():
    embryos = ["a", "a", "b", "c", "c", "c"]
    values = np.array([1.0, 0.0, 1.0, 0.0, 1.0, 1.0])
    first = embryo_bootstrap(embryos, lambda idx: values[idx].mean(), resamples=200, seed=3)
    assert first == embryo_bootstrap(embryos, lambda idx: values[idx].mean(), resamples=200, seed=3)
    assert first["low"] < first["high"]
    point = embryo_bootstrap(embryos, lambda idx: 0.5, resamples=50)
    assert point["low"] == point["high"] == 0.5


def test_resamples_where_the_figure_is_undefined_are_left_out():
    # one CS embryo among four: a resample without it has one class and no AUROC
    embryos = ["cs", "cs", "n1", "n2", "n3"]
    y = np.array([1, 1, 0, 0, 0])
    scores = np.array([0.9, 0.8, 0.1, 0.2, 0.85])
    out = embryo_bootstrap(embryos, lambda idx: auroc(y[idx], scores[idx]), resamples=300)
    assert 0 < out["resamples"] < 300
    assert out["low"] <= auroc(y, scores) <= out["high"]


def test_bad_arguments_raise():
    with pytest.raises(ValueError, match="at least one item"):
        embryo_bootstrap([], lambda idx: 1.0)
    with pytest.raises(ValueError, match="confidence"):
        embryo_bootstrap(["a"], lambda idx: 1.0, confidence=1.5)
