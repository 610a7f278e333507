"""Frame screening by the chain: evidence, the val-fitted screen, embryo persistence, the training run."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pyarrow as pa
import pytest

from cs_features.errors import DatasetError, NotFittedError, StoreError, WeightsError
from cs_features.metrics import sensitivity_threshold
from cs_features.screening import (
    EVIDENCE_COLUMNS,
    SCREEN_FEATURES,
    EvidenceSources,
    FrameScreen,
    embryo_rise,
    embryo_scores_over_time,
    evidence_labels,
    evidence_matrix,
    evidence_schema,
    keep_report,
    persistence_score,
)
from cs_features.screening.evidence import ae_scores
from cs_features.strings.maps import string_peaks
from cs_features.strings.peak import map_peak


def synthetic_evidence(seed: int = 0, embryos_per_split: int = 6, frames: int = 5) -> pa.Table:
    """An evidence table whose three scores are noisy views of the label (CS embryos: frames 1-3 hold a string)."""
    rng = np.random.default_rng(seed)
    rows = {name: [] for name in evidence_schema().names}
    for split in ("train", "val", "test"):
        for e in range(embryos_per_split):
            has_cs = e % 2 == 0
            for t in range(frames):
                cs = has_cs and 1 <= t <= 3
                rows["frame_id"].append(f"{split}-{e}-{t}")
                rows["stem"].append(f"{split}_e{e}_f{t}")
                rows["embryo_id"].append(f"{split}-e{e}")
                rows["frame_index"].append(t)
                rows["split"].append(split)
                rows["label"].append("abnormal" if cs else "normal")
                rows["ae_score"].append(0.10 + 0.05 * cs + rng.normal(0, 0.03))
                rows["string_peak"].append(0.30 + 0.40 * cs + rng.normal(0, 0.15))
                rows["best_region"].append(float(np.clip(0.2 + 0.3 * cs + rng.normal(0, 0.2), 0, 1)))
    return pa.Table.from_pydict(rows, schema=evidence_schema())


def _replace(table: pa.Table, name: str, values) -> pa.Table:
    index = table.column_names.index(name)
    return table.set_column(index, table.schema.field(name), pa.array(values, table.schema.field(name).type))


# ------------------------------------------------------------------------------------------ the screen


def test_screen_is_fitted_on_val_only():
    evidence = synthetic_evidence()
    fitted = FrameScreen(seed=0).fit(evidence)
    split = np.asarray(evidence["split"].to_pylist())
    others = split != "val"
    rng = np.random.default_rng(1)
    changed = evidence
    labels = np.asarray(evidence["label"].to_pylist(), dtype=object)
    labels[others] = rng.choice(["normal", "abnormal"], int(others.sum()))
    changed = _replace(changed, "label", labels.tolist())
    for name in EVIDENCE_COLUMNS:
        values = np.asarray(evidence[name].to_pylist())
        values[others] = rng.uniform(-5, 5, int(others.sum()))
        changed = _replace(changed, name, values.tolist())
    refitted = FrameScreen(seed=0).fit(changed)
    assert np.array_equal(fitted.coef_, refitted.coef_) and fitted.intercept_ == refitted.intercept_
    assert np.array_equal(fitted.mean_, refitted.mean_) and fitted.threshold_ == refitted.threshold_
    # ... while changing one val score does change the fit
    values = np.asarray(evidence["string_peak"].to_pylist())
    values[np.flatnonzero(split == "val")[0]] += 3.0
    assert not np.array_equal(FrameScreen(seed=0).fit(_replace(evidence, "string_peak", values.tolist())).coef_,
                              fitted.coef_)
    # the evidence points the right way: every standardised coefficient of the raw evidence is positive
    assert (FrameScreen(features=EVIDENCE_COLUMNS).fit(evidence).coef_ > 0).all()


def test_screen_features_are_named_and_checked():
    from cs_features.errors import ConfigError
    from cs_features.screening import screen_features

    assert screen_features("all") == screen_features(None) == SCREEN_FEATURES
    assert screen_features(" ae_score_rise, best_region ") == ("ae_score_rise", "best_region")
    for bad, why in [("ae_score,bogus", r"unknown \['bogus'\]"), (",", "none given"),
                     ("best_region,best_region", r"\['best_region'\] given twice")]:
        with pytest.raises(ConfigError, match=why) as info:
            screen_features(bad)
        assert "string_peak_rise" in str(info.value)  # the accepted names are listed
    with pytest.raises(ConfigError, match="unknown"):
        FrameScreen(features=("ae_score", "frame_index")).fit(synthetic_evidence())


def test_embryo_rise_by_hand():
    values = [0.5, 0.2, 0.9, 0.4, 0.7, 0.3]
    embryos = ["a", "a", "a", "b", "", None]
    rise = embryo_rise(values, embryos)
    np.testing.assert_allclose(rise[:3], [0.3, 0.0, 0.7])
    assert np.isnan(rise[3:]).all()  # b's only frame, and frames without an embryo id, have no rise
    assert embryo_rise([], []).shape == (0,)


def test_the_rise_tells_a_string_from_a_distractor_that_stays_in_every_frame():
    """Half the CS-free embryos carry a string-like distractor in every frame (a fibre of the medium): it
    raises their string peak as much as a string does. Their raw peak cannot tell, their rise can."""
    evidence = synthetic_evidence(seed=5, embryos_per_split=8)
    embryo = np.asarray(evidence["embryo_id"].to_pylist())
    index = np.array([int(e.rsplit("e", 1)[1]) for e in embryo])
    fibre = index % 4 == 1  # CS-free embryos 1, 5: the distractor in all their frames
    peak = np.asarray(evidence["string_peak"].to_pylist()) + 0.40 * fibre
    evidence = _replace(evidence, "string_peak", peak.tolist())
    test, y = np.asarray(evidence["split"].to_pylist()) == "test", evidence_labels(evidence)
    from cs_features.metrics import auroc

    raw = FrameScreen(features=("string_peak",)).fit(evidence).predict_proba(evidence)
    with_rise = FrameScreen(features=("string_peak", "string_peak_rise")).fit(evidence).predict_proba(evidence)
    assert auroc(y[test], with_rise[test]) > auroc(y[test], raw[test]) + 0.05, (auroc(y[test], raw[test]),
                                                                            auroc(y[test], with_rise[test]))


def test_frames_without_a_time_lapse_get_the_val_mean_rise():
    evidence = synthetic_evidence(seed=2)
    screen = FrameScreen().fit(evidence)
    split = np.asarray(evidence["split"].to_pylist())
    alone = _replace(evidence, "embryo_id", np.where(split == "test", "", evidence["embryo_id"].to_pylist()).tolist())
    p = screen.predict_proba(alone)
    assert np.isfinite(p).all()
    X = evidence_matrix(alone, screen.features)[split == "test"]
    assert np.isnan(X[:, 3:]).all() and np.isfinite(X[:, :3]).all()
    X[:, 3:] = screen.fill_[3:]
    np.testing.assert_allclose(p[split == "test"], screen._probability(X))
    # a store with no time-lapse at all (a flat folder): the screen is the one on the evidence alone
    flat = _replace(evidence, "embryo_id", [""] * evidence.num_rows)
    plain = FrameScreen(features=EVIDENCE_COLUMNS).fit(flat)
    np.testing.assert_allclose(FrameScreen().fit(flat).predict_proba(flat), plain.predict_proba(flat), atol=1e-12)


def test_val_without_both_classes_raises_dataset_error():
    evidence = synthetic_evidence()
    split = np.asarray(evidence["split"].to_pylist())
    labels = np.where(split == "val", "normal", np.asarray(evidence["label"].to_pylist()))
    with pytest.raises(DatasetError, match=r"val split, which has 0 CS and 30 CS-free"):
        FrameScreen().fit(_replace(evidence, "label", labels.tolist()))
    no_val = _replace(evidence, "split", np.where(split == "val", "train", split).tolist())
    with pytest.raises(DatasetError, match="0 CS and 0 CS-free"):
        FrameScreen().fit(no_val)


def test_predict_before_fit_and_bad_evidence_raise():
    with pytest.raises(NotFittedError, match="not fitted"):
        FrameScreen().predict_proba(synthetic_evidence())
    evidence = synthetic_evidence()
    with pytest.raises(ValueError, match=r"lacks columns \['best_region'\]"):
        FrameScreen().fit(evidence.drop(["best_region"]))
    values = evidence["ae_score"].to_pylist()
    values[0] = float("nan")
    with pytest.raises(ValueError, match="1 NaN/inf"):
        FrameScreen().fit(_replace(evidence, "ae_score", values))
    with pytest.raises(TypeError, match="pyarrow Table or a mapping"):
        FrameScreen().fit(np.zeros((4, 3)))


def test_save_load_round_trip_gives_identical_probabilities(tmp_path):
    evidence = synthetic_evidence(seed=3)
    screen = FrameScreen(C=0.5, target_sensitivity=0.9, seed=2).fit(evidence)
    screen.save(tmp_path / "screen", sources={"ae_model_id": "abc"}, metrics={"x": 1})
    config = json.loads((tmp_path / "screen" / "config.json").read_text())
    assert config["features"] == list(SCREEN_FEATURES) and len(config["coef"]) == len(config["fill"]) == 6
    assert all(isinstance(c, float) for c in config["coef"]) and config["sources"] == {"ae_model_id": "abc"}
    assert sorted(p.name for p in (tmp_path / "screen").iterdir()) == ["config.json"]  # no pickle beside it
    loaded = FrameScreen.load(tmp_path / "screen")
    assert loaded.get_params() == screen.get_params()
    assert np.array_equal(loaded.predict_proba(evidence), screen.predict_proba(evidence))
    assert loaded.threshold_ == screen.threshold_
    assert np.array_equal(loaded.predict(evidence), screen.predict(evidence))


def test_load_refuses_other_folders(tmp_path):
    with pytest.raises(WeightsError, match="csf train screen"):
        FrameScreen.load(tmp_path / "missing")
    screen = FrameScreen().fit(synthetic_evidence())
    screen.save(tmp_path / "s")
    config = json.loads((tmp_path / "s" / "config.json").read_text())
    config["coef"] = config["coef"][:2]
    (tmp_path / "s" / "config.json").write_text(json.dumps(config))
    with pytest.raises(WeightsError, match="corrupt"):
        FrameScreen.load(tmp_path / "s")


@pytest.mark.parametrize("target", [0.5, 0.8, 0.9, 0.97, 1.0])
def test_sensitivity_threshold_keeps_the_target_share_of_val_positives(target):
    evidence = synthetic_evidence(seed=5)
    screen = FrameScreen(target_sensitivity=target).fit(evidence)
    val = np.asarray(evidence["split"].to_pylist()) == "val"
    y = np.asarray(evidence["label"].to_pylist())[val] == "abnormal"
    p = screen.predict_proba(evidence)[val]
    kept = (p[y] >= screen.threshold_).mean()
    assert kept >= target
    assert screen.val_report_["cs_kept"] == int((p[y] >= screen.threshold_).sum())
    # the threshold sits halfway into the gap below the highest one that does so: the same val frames kept
    # as there, and no val frame between the two
    edge = sensitivity_threshold(y.astype(int), p, target)
    assert screen.threshold_ <= edge and (p[y] >= np.nextafter(edge, np.inf)).mean() < target
    assert not ((p >= screen.threshold_) & (p < edge)).any()
    lower = p[p < edge]
    if lower.size:
        assert screen.threshold_ == pytest.approx((edge + lower.max()) / 2)


def test_sensitivity_threshold_and_keep_report_by_hand():
    y = np.array([1, 1, 1, 1, 0, 0, 0, 0])
    s = np.array([0.9, 0.8, 0.7, 0.2, 0.6, 0.3, 0.1, 0.05])
    assert sensitivity_threshold(y, s, 0.75) == 0.7  # 3 of 4 positives
    assert sensitivity_threshold(y, s, 0.97) == 0.2  # all 4
    # midgap: halfway down to the next lower score, of either class (none below: the edge itself)
    assert sensitivity_threshold(y, s, 0.75, midgap=True) == pytest.approx(0.65)  # 0.7 and the CS-free 0.6
    assert sensitivity_threshold(y, s, 0.97, midgap=True) == pytest.approx(0.15)  # 0.2 and 0.1
    assert sensitivity_threshold(y, s + (y == 0) * 2, 0.97, midgap=True) == 0.2  # every CS-free score above
    report = keep_report(y, s, 0.7)
    assert report["kept"] == 3 and report["skipped"] == 5 and report["cs_missed"] == 1
    assert report["sensitivity"] == 0.75 and report["cs_free_skipped_share"] == 1.0
    with pytest.raises(ValueError, match="no positive"):
        sensitivity_threshold(np.zeros(3), np.ones(3), 0.9)
    with pytest.raises(ValueError, match=r"\(0, 1\]"):
        sensitivity_threshold(y, s, 0.0)


# ------------------------------------------------------------------------------------------ embryos


def test_persistence_ranks_two_consecutive_high_frames_above_one_isolated_frame():
    ids = ["a"] * 5 + ["b"] * 5
    # embryo a: a string in frames 2 and 3; embryo b: one spurious bright frame (frame 2), given out of order
    index = [0, 1, 2, 3, 4] + [4, 2, 0, 3, 1]
    scores = [0.1, 0.2, 0.8, 0.7, 0.1] + [0.1, 0.9, 0.2, 0.15, 0.1]
    labels = [0, 0, 1, 1, 0] + [0] * 5
    result = embryo_scores_over_time(ids, index, labels, scores, k=2)
    a, b = list(result.embryo_ids).index("a"), list(result.embryo_ids).index("b")
    assert result.persistence[a] == pytest.approx(0.7) and result.persistence[b] == pytest.approx(0.15)
    assert result.persistence[a] > result.persistence[b]
    assert result.max_score[b] > result.max_score[a]  # the plain max gets them the wrong way round
    assert result.labels.tolist() == [1, 0] and result.frames.tolist() == [5, 5]
    mean = embryo_scores_over_time(ids, index, labels, scores, k=2, reduce="mean")
    assert mean.persistence[a] == pytest.approx(0.75) and mean.persistence[b] == pytest.approx(0.525)


def test_persistence_score_edge_cases():
    assert persistence_score([0.3, 0.9, 0.1], k=1) == 0.9  # k = 1 is the plain max
    assert persistence_score([0.4], k=2) == 0.4  # fewer frames than k: one window of all of them
    assert persistence_score([0.2, 0.6, 0.5, 0.9], k=3) == 0.5
    with pytest.raises(Exception, match="k must be an int >= 1"):
        persistence_score([0.1], k=0)
    with pytest.raises(Exception, match="accepted: min, mean"):
        persistence_score([0.1], reduce="median")


# ------------------------------------------------------------------------------------------ evidence


def test_string_peak_ignores_the_bright_rim_outside_the_cavity():
    size = 200
    yy, xx = np.mgrid[:size, :size]
    radius = np.hypot(yy - size / 2, xx - size / 2)
    ring = (radius > 50) & (radius < 95)  # thick textured zona + trophectoderm: False in the low-texture mask
    mask = ~ring
    string_map = np.zeros((size, size), np.float32)
    string_map[ring & (radius > 80)] = 1.0  # the zona rim lights up
    string_map[100, 60:140] = 0.6  # a string across the cavity
    assert map_peak(string_map, mask, 99.9, "frame") == pytest.approx(1.0)
    assert map_peak(string_map, mask, 100.0) == pytest.approx(0.6, abs=1e-6)  # default region: the cavity's core
    assert map_peak(string_map, None, 99.9) == pytest.approx(1.0)  # no mask: the whole frame
    string_map[(radius > 46) & (radius < 50)] = 0.8  # the trophectoderm's inner membrane, inside the found cavity
    assert map_peak(string_map, mask, 100.0, "cavity") == pytest.approx(0.8, abs=1e-6)
    assert map_peak(string_map, mask, 100.0) == pytest.approx(0.6, abs=1e-6)  # the core leaves the rim out
    with pytest.raises(Exception, match="accepted: core, cavity, interior, frame"):
        map_peak(string_map, mask, region="rim")
    from cs_features.strings.peak import auto_region

    assert auto_region("auto", transient=True) == "interior" and auto_region("auto", transient=False) == "core"
    assert auto_region("cavity", transient=True) == "cavity"
    with pytest.raises(Exception, match="accepted: auto, core, cavity, interior, frame"):
        auto_region("rim", transient=True)


def test_string_peak_reads_what_the_embryos_other_frames_do_not_show(tiny_store, tmp_path):
    """A line the map lights in every frame of an embryo (a fibre of the medium) drops out of the peak; a
    line in one frame only (a string) stays; without a time-lapse each frame keeps its whole map."""
    import cv2

    from cs_features.store import FeatureStore
    from cs_features.strings.data import frame_rows, iter_frames
    from cs_features.strings.maps import string_map_rows, write_string_maps
    from cs_features.transience import TransiencePrior

    store = FeatureStore(str(shutil.copytree(tiny_store, tmp_path / "db")))
    circles = {r["frame_id"]: r for r in store.read(
        "frames", ["frame_id", "embryo_x", "embryo_y", "embryo_radius", "embryo_found", "scale"]).to_pylist()}
    frames = list(iter_frames(store, frame_rows(store)))
    embryo = sorted({f.embryo_id for f in frames if circles[f.frame_id]["embryo_found"]})[0]
    mine = sorted((f for f in frames if f.embryo_id == embryo), key=lambda f: f.stem)
    assert len(mine) == 3 and all(circles[f.frame_id]["embryo_found"] for f in mine)
    maps = []
    for k, frame in enumerate(mine):
        row = circles[frame.frame_id]
        cx, cy, r = (row[key] * (row["scale"] or 1.0) for key in ("embryo_x", "embryo_y", "embryo_radius"))
        string_map = np.zeros(frame.image.shape, np.float32)
        # the fibre: the same chord of the embryo in every frame
        cv2.line(string_map, (int(cx - 0.6 * r), int(cy - 0.3 * r)), (int(cx + 0.6 * r), int(cy - 0.3 * r)), 0.8, 2)
        if k == 0:  # the string: in the first frame only
            cv2.line(string_map, (int(cx + 0.2 * r), int(cy)), (int(cx + 0.2 * r), int(cy + 0.6 * r)), 0.6, 2)
        if k == 1:  # a string's end by the trophectoderm, outside the cavity's core: in the second frame only
            cv2.line(string_map, (int(cx - r), int(cy + 0.1 * r)), (int(cx - 0.92 * r), int(cy + 0.1 * r)), 0.5, 2)
        maps.append(string_map)
    write_string_maps(store, string_map_rows(mine, maps, "m1"))
    ids, embryos = [f.frame_id for f in mine], [f.embryo_id for f in mine]
    raw = string_peaks(store, "m1", "/m/s", ids, 100.0, "frame")
    assert raw == pytest.approx([0.8] * 3, abs=0.01)  # the fibre sets every frame's peak
    transient = string_peaks(store, "m1", "/m/s", ids, 100.0, "frame", embryo_ids=embryos)
    assert transient[0] == pytest.approx(0.6, abs=0.01)  # the string, which the other frames do not show
    assert transient[1] == pytest.approx(0.5, abs=0.01)  # the string's end
    assert transient[2] == pytest.approx(0.0, abs=0.01)  # the fibre is in every frame: nothing new
    # the default region: the transient part in the embryo's interior, a whole map in the cavity's core
    auto = string_peaks(store, "m1", "/m/s", ids, 100.0, embryo_ids=embryos)
    assert auto == pytest.approx(string_peaks(store, "m1", "/m/s", ids, 100.0, "interior", embryo_ids=embryos))
    core = string_peaks(store, "m1", "/m/s", ids, 100.0, "core", embryo_ids=embryos)
    assert auto[1] == pytest.approx(0.5, abs=0.01) and core[1] < 0.1  # the core cuts the end away
    assert string_peaks(store, "m1", "/m/s", ids, 100.0) == pytest.approx(string_peaks(store, "m1", "/m/s", ids,
                                                                                      100.0, "core"))
    assert string_peaks(store, "m1", "/m/s", ids, 100.0, "frame", embryo_ids=["", "", ""]) == pytest.approx(raw)
    off = string_peaks(store, "m1", "/m/s", ids, 100.0, "frame", embryo_ids=embryos,
                       transience=TransiencePrior(enabled=False))
    assert off == pytest.approx(raw)


def test_missing_evidence_names_the_command(tiny_store):
    from cs_features.store import FeatureStore

    store = FeatureStore(str(tiny_store))
    ids = store.read("frames", ["frame_id"]).column("frame_id").to_pylist()
    with pytest.raises(StoreError, match=r"no error_maps table: run `csf score ae --store .* --model /m/ae`"):
        ae_scores(store, "abc", "/m/ae", ids)
    with pytest.raises(StoreError, match=r"no string_maps table: run `csf score strings --store .* --model /m/s`"):
        string_peaks(store, "abc", "/m/s", ids)
    sources = EvidenceSources("abc", "def", "h", "logreg", "classic", "/m/ae", "/m/s", "/m/h")
    assert sources.to_dict()["ae_dir"] == "/m/ae"


# ------------------------------------------------------------------------------------------ end to end


def test_train_screen_end_to_end_on_a_tiny_store(tiny_store, tmp_path):
    """Every stage trained (tiny) on a copy of the shared store, scored, then `csf train screen --json`."""
    from typer.testing import CliRunner

    from cli.main import app
    from cs_features.autoencoder import AnomalyFilter
    from cs_features.autoencoder.pipeline import score_store, train_from_store
    from cs_features.heads.training import train_head
    from cs_features.store import FeatureStore
    from cs_features.strings import PixelSampling, StringMapModel, score_strings, train_strings

    store = shutil.copytree(tiny_store, tmp_path / "db")
    frames = FeatureStore(str(store)).read("frames", ["split", "label"]).to_pylist()
    assert {f["label"] for f in frames if f["split"] == "val"} == {"normal", "abnormal"}  # seed 7: 1 CS of 6 in val
    runner = CliRunner()
    args = ["train", "screen", "--store", str(store), "--ae", str(tmp_path / "ae"), "--strings",
            str(tmp_path / "sm"), "--head", str(tmp_path / "head"), "--out", str(tmp_path / "screen"), "--json"]
    train_from_store(str(store), tmp_path / "ae", AnomalyFilter(img_size=48, epochs=1, batch_size=8, device="cpu",
                                                                crop_size=None, augment=False))
    score_store(str(store), tmp_path / "ae", device="cpu")
    train_strings(str(store), tmp_path / "sm", StringMapModel(n_estimators=20), PixelSampling(max_pixels_per_frame=300))
    train_head(str(store), "logreg", tmp_path / "head")
    missing = runner.invoke(app, args)  # the string maps are not written yet
    assert missing.exit_code == 1 and "csf score strings" in missing.output and "Traceback" not in missing.output
    score_strings(str(store), tmp_path / "sm")
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    out = json.loads(result.output)
    assert set(out["test"]) == {"autoencoder", "string_peak", "best_region", "chain"}
    assert out["frames"]["val"]["frames"] == sum(f["split"] == "val" for f in frames)
    assert out["sources"]["ae_model_id"] == json.loads((tmp_path / "ae" / "config.json").read_text())["model_id"]
    assert out["val"]["chain"]["screening"]["sensitivity"] >= 0.97
    assert out["sources"]["evidence"]["transient_peak"] is True  # the default: the peak over the time-lapse
    loaded = FrameScreen.load(tmp_path / "screen")
    assert loaded.coef_.tolist() == out["screen"]["coef"]
    chosen = runner.invoke(app, [*args, "--features", "ae_score_rise,string_peak_rise,best_region", "--c", "0.01",
                                 "--whole-map-peak"])
    assert chosen.exit_code == 0, chosen.output
    assert json.loads(chosen.output)["sources"]["evidence"]["transient_peak"] is False
    loaded = FrameScreen.load(tmp_path / "screen")
    assert loaded.features == ("ae_score_rise", "string_peak_rise", "best_region") and loaded.C == 0.01
    assert json.loads(chosen.output)["screen"]["features"] == list(loaded.features)
    wrong = runner.invoke(app, [*args, "--features", "ae_score,area"])
    assert wrong.exit_code != 0 and "unknown ['area']" in wrong.output and "Traceback" not in wrong.output
