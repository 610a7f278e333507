"""The string-count prior: a frame's later boxes scored down by the learned share of frames with a second string."""

import json

import numpy as np
import pytest

from cs_features.errors import ConfigError
from cs_features.heads import get_head, load_head
from cs_features.metrics import detection_ap, nms_detections
from cs_features.string_count import CountPrior, count_factors, second_string_share


def test_the_share_is_of_frames_with_strings_that_hold_a_second_one_laplace_smoothed():
    # four frames with strings, two of them with a second: (2 + 1) / (4 + 2); CS-free frames do not count
    assert second_string_share([0, 0, 1, 1, 2, 3]) == pytest.approx(0.5)
    assert second_string_share([1] * 8) == pytest.approx(1 / 10)
    assert second_string_share([2] * 8) == pytest.approx(9 / 10)
    assert second_string_share([]) == pytest.approx(0.5)


def test_factors_fall_geometrically_with_the_place_of_a_box_in_its_frame():
    np.testing.assert_allclose(count_factors(4, 0.5), [1.0, 0.5, 0.25, 0.125])
    assert count_factors(0, 0.5).shape == (0,)


def test_the_prior_reads_the_heads_share_unless_turned_off_or_given_one():
    class Head:
        second_string_share_ = 0.3

    class Older:  # a head saved before the prior existed
        pass

    assert CountPrior().decay(Head()) == 0.3
    assert CountPrior().decay(Older()) == 1.0
    assert CountPrior(enabled=False).decay(Head()) == 1.0
    assert CountPrior(share=0.6).decay(Head()) == 0.6
    for bad in (0.0, 1.5, -0.2):
        with pytest.raises(ConfigError, match="share"):
            CountPrior(share=bad)


def test_a_frames_second_box_no_longer_ranks_above_another_frames_string():
    # frame A: its string (0.9) and a second, false box (0.8); frame B: its string, scored lower (0.7)
    string_a, elsewhere, string_b = [10, 10, 60, 20], [100, 100, 150, 110], [20, 30, 70, 40]
    frames = [(np.array([string_a, elsewhere]), np.array([0.9, 0.8]), np.array([string_a])),
              (np.array([string_b]), np.array([0.7]), np.array([string_b]))]
    plain = detection_ap(frames, (0.5,))["ap50"]
    counted = detection_ap(frames, (0.5,), decay=0.5)["ap50"]
    assert plain == pytest.approx((51 + 50 * 2 / 3) / 101)  # true, false, true: precision 2/3 at full recall
    assert counted == pytest.approx(1.0)  # the false box (0.8 x 0.5 = 0.4) now ranks after frame B's string
    boxes, scores = nms_detections(frames[0][0], frames[0][1], 0.3, 100, decay=0.5)
    np.testing.assert_array_equal(boxes, frames[0][0])  # NMS and the frame's order are unchanged
    np.testing.assert_allclose(scores, [0.9, 0.4])


def test_a_saved_head_keeps_its_share_and_one_saved_without_it_ranks_as_before(tmp_path):
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(200, 6)).astype(np.float32), np.tile([0, 1], 100)
    X[y == 1] += 1.0
    iou = np.where(y == 1, 0.6, 0.0).astype(np.float32)
    head = get_head("logreg").fit(X, y, iou, X, y, iou)
    head.second_string_share_ = second_string_share([1, 1, 2, 0])
    head.save(tmp_path / "head")
    config = json.loads((tmp_path / "head" / "config.json").read_text())
    assert config["ranking"] == {"second_string_share": pytest.approx(0.4)}
    assert load_head(tmp_path / "head").second_string_share_ == pytest.approx(0.4)
    del config["ranking"]
    (tmp_path / "head" / "config.json").write_text(json.dumps(config))
    older = load_head(tmp_path / "head")
    assert older.second_string_share_ is None and CountPrior().decay(older) == 1.0
