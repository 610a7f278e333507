"""The one frame pipeline: ingest, detect and `similar --image` process a frame identically."""

from __future__ import annotations

import json

import numpy as np
import pytest

from cs_features.errors import FrameError
from cs_features.frame import FramePipeline
from cs_features.ingest import IngestConfig, ingest
from cs_features.proposals import ProposalConfig
from cs_features.settings import StoreSettings
from cs_features.store import FRAMES, FeatureStore, fixed_list_to_numpy, proposals_table_name

SETTINGS = StoreSettings(proposals=ProposalConfig(method="filament,ss-single", max_proposals=60))


@pytest.fixture(scope="module")
def chain(tiny_dataset, tmp_path_factory):
    """A store of the tiny dataset, an autoencoder and a head trained on it."""
    from cs_features.autoencoder import AnomalyFilter, train_from_store
    from cs_features.heads.training import train_head

    root = tmp_path_factory.mktemp("frame_chain")
    store = str(root / "store")
    ingest(tiny_dataset, store, IngestConfig(workers=1, settings=SETTINGS))
    train_from_store(store, root / "ae", AnomalyFilter(epochs=1, img_size=64, batch_size=8, seed=0))
    train_head(store, "logreg", root / "head", encoder="classic")
    return root


def _stored(store: FeatureStore, stem: str) -> tuple[np.ndarray, np.ndarray]:
    """Stored proposal boxes ``(N, 4)`` and vectors ``(N, D)`` of one frame, in box order."""
    frame_id = store.read(FRAMES, ["frame_id"], where=f"stem = '{stem}'").column("frame_id")[0].as_py()
    rows = store.read(proposals_table_name("classic"), ["box", "vector"], where=f"frame_id = '{frame_id}'")
    boxes = fixed_list_to_numpy(rows.column("box"), 4)
    vectors = fixed_list_to_numpy(rows.column("vector"), int(store.encoders()["classic"]["dim"]))
    order = np.lexsort(boxes.T[::-1])
    return boxes[order], vectors[order]


def _a_cs_frame(tiny_dataset):
    return sorted((tiny_dataset / "test" / "abnormal").glob("*.png"))[0]


def test_detect_pipeline_gives_the_ingested_proposals_and_vectors(chain, tiny_dataset):
    from cs_features.detect import load_detector

    path = _a_cs_frame(tiny_dataset)
    detector = load_detector(chain / "ae", chain / "head")
    assert detector.settings == SETTINGS  # rebuilt from the head's record of the store's settings
    frame = detector.pipeline.prepare(detector.pipeline.read(path), str(path))
    boxes = detector.pipeline.propose(frame).boxes
    vectors = detector.pipeline.embed(frame, boxes)
    stored_boxes, stored_vectors = _stored(FeatureStore(str(chain / "store")), path.stem)
    assert len(boxes) > 10
    np.testing.assert_array_equal(boxes, stored_boxes)  # proposals come in canonical (sorted) order
    np.testing.assert_allclose(vectors, stored_vectors, rtol=0, atol=1e-5)


def test_detect_scores_every_ingested_proposal_as_the_head_scores_its_stored_vector(chain, tiny_dataset, tmp_path):
    from cs_features.detect import DetectConfig, detect
    from cs_features.heads import load_head

    path = _a_cs_frame(tiny_dataset)
    detect([path], chain / "ae", chain / "head", tmp_path / "out",
           DetectConfig(gate=False, top_k=10_000, nms_iou=1.0, nms_inside=None, min_score=0.0))
    found = json.loads((tmp_path / "out" / "detections.json").read_text())["frames"][0]["boxes"]
    stored_boxes, stored_vectors = _stored(FeatureStore(str(chain / "store")), path.stem)
    p, _ = load_head(chain / "head").predict(stored_vectors)
    expected = {tuple(box): round(float(prob), 4) for box, prob in zip(stored_boxes.tolist(), p)}
    # the head's own p (a box's p also carries the ranking priors' factors)
    assert {tuple(b["box"]): b["head_p"] for b in found} == expected


def test_similar_image_query_embeds_a_box_as_ingest_did(chain, tiny_dataset):
    from cs_features.io import read_gray
    from cs_features.search import embed_region

    path = _a_cs_frame(tiny_dataset)
    store = FeatureStore(str(chain / "store"))
    stored_boxes, stored_vectors = _stored(store, path.stem)
    for k in (0, len(stored_boxes) // 2, len(stored_boxes) - 1):
        vector = embed_region(store, "classic", read_gray(path), stored_boxes[k].tolist())
        np.testing.assert_allclose(vector, stored_vectors[k], rtol=0, atol=1e-5)


def test_run_records_seconds_per_stage_and_refuses_a_frame_smaller_than_the_glcm_window():
    from cs_features.encoders import get_encoder

    rng = np.random.default_rng(0)
    image = rng.integers(0, 255, (96, 120), dtype=np.uint8)
    pipeline = FramePipeline(SETTINGS, get_encoder("classic"))
    frame = pipeline.run(image, "noise")
    assert frame.preprocessed.shape == frame.low_texture_mask.shape == (96, 120)
    assert frame.vectors.shape == (len(frame.proposals), pipeline.encoder.dim)
    assert set(frame.seconds) == {"scale", "preprocess", "texture", "proposals", "encode"}
    with pytest.raises(FrameError, match="smaller than the 31x31 GLCM window") as info:
        pipeline.prepare(image[:20, :20], "tiny.png")
    assert info.value.stage == "texture" and info.value.path == "tiny.png"


def test_embed_without_an_encoder_says_so():
    frame = FramePipeline(SETTINGS).prepare(np.full((64, 64), 128, np.uint8))
    with pytest.raises(ValueError, match="no encoder"):
        FramePipeline(SETTINGS).embed(frame, np.array([[0, 0, 8, 8]], np.int32))
