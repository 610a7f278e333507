"""Similarity search over proposal vectors."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from cs_features.errors import StoreError
from cs_features.search import build_index, search, similar, similar_sheet
from cs_features.store import FeatureStore


@pytest.fixture(scope="module")
def store(tiny_store):
    """The shared session store, read only."""
    return FeatureStore(str(tiny_store))


@pytest.fixture(scope="module")
def indexed_store(tiny_store, tmp_path_factory):
    """A copy of the shared store for the tests that build an index and add rows (in file order)."""
    path = tmp_path_factory.mktemp("search") / "db"
    shutil.copytree(tiny_store, path)
    return FeatureStore(str(path))


def _a_positive(store):
    return store.read("proposals_classic", ["proposal_id", "frame_id"], where="weak_label = 1").to_pylist()[0]


def test_query_by_proposal_returns_itself_first(store):
    row = _a_positive(store)
    result = similar(store, proposal_id=row["proposal_id"], k=5)
    assert result.space == "standardized" and result.space_note is None  # ingest fitted the search space
    assert result.neighbours[0].proposal_id == row["proposal_id"]
    assert result.neighbours[0].distance == pytest.approx(0.0, abs=1e-5)
    distances = [n.distance for n in result.neighbours]
    assert distances == sorted(distances) and len(result.neighbours) == 5
    assert len({n.frame_id for n in result.neighbours}) == 5  # nearest region per frame by default
    assert 0.0 <= result.cs_vote <= 1.0


def test_filters_apply(store):
    row = _a_positive(store)
    result = similar(store, proposal_id=row["proposal_id"], k=6, where="split = 'val' AND weak_label = 0",
                     distinct_frames=False)
    assert result.neighbours and all(n.split == "val" and n.weak_label == 0 for n in result.neighbours)


def test_frame_and_image_queries_embed_like_ingest(store, tiny_dataset):
    row = _a_positive(store)
    stored = similar(store, proposal_id=row["proposal_id"], k=1)
    box = stored.query_box
    by_frame = similar(store, frame_id=row["frame_id"], box=box, k=1, distinct_frames=False)
    assert by_frame.neighbours[0].proposal_id == row["proposal_id"]  # same vector as at ingest
    path = store.read("frames", ["path"], where=f"frame_id = '{row['frame_id']}'").column("path")[0].as_py()
    by_image = similar(store, image=path, box=box, k=1, distinct_frames=False)
    assert by_image.neighbours[0].distance == pytest.approx(0.0, abs=1e-5)


def test_image_query_refuses_vectors_of_another_encoder_version(tiny_store, tiny_dataset, tmp_path):
    """A store whose classic vectors were made by another version of the encoder is not searched with new ones."""
    from cs_features.errors import ConfigError

    path = tmp_path / "db"
    shutil.copytree(tiny_store, path)
    copy = FeatureStore(str(path))
    info = copy.encoders()["classic"]
    copy.set_meta("encoder:classic", {**info, "settings": {**info["settings"], "version": 1}})
    row = _a_positive(copy)
    image = copy.read("frames", ["path"], where=f"frame_id = '{row['frame_id']}'").column("path")[0].as_py()
    with pytest.raises(ConfigError, match=r"settings\.version: 1 vs 2"):
        similar(copy, image=image, box=[10, 10, 40, 40], k=1)


def test_index_and_exact_search_agree(indexed_store):
    store = indexed_store
    built = build_index(store, force=True)
    assert built["vector_index"].startswith("IVF_HNSW_SQ on search_vector")
    assert "split (BITMAP)" in built["scalar_indexes"]
    assert built["vector_column"] == "search_vector" and not built["search_space"]["fitted"]  # kept the ingest's fit
    vectors = store.read("proposals_classic", ["vector"]).column("vector").combine_chunks().flatten().to_numpy()
    queries = vectors.reshape(-1, 104)[::37][:8]
    for query in queries:
        exact, _ = search(store, "classic", query, k=10, exact=True)
        indexed, was_exact = search(store, "classic", query, k=10, exact=False)
        assert not was_exact
        overlap = len({n.proposal_id for n in exact} & {n.proposal_id for n in indexed})
        assert overlap >= 9


def test_new_rows_after_indexing_are_found(indexed_store):
    # the copy was indexed above; a fresh row inserted now must be searchable
    import pyarrow as pa

    from cs_features.search import load_search_space
    from cs_features.store import proposals_schema, vectors_to_arrow

    store = indexed_store

    table = store.table("proposals_classic")
    vector = np.full((1, 104), 7.0, np.float32)
    search_vector = load_search_space(store, "classic").transform(vector)
    row = pa.Table.from_pydict({
        "proposal_id": ["fresh"], "frame_id": ["f"], "split": ["train"], "frame_label": ["normal"], "embryo_id": ["E"],
        "box": pa.FixedSizeListArray.from_arrays(pa.array([0, 0, 5, 5], pa.int32()), 4), "source": ["test"],
        "max_iou": pa.array([0.0], pa.float32()), "weak_label": pa.array([0], pa.int8()), "encoder": ["classic"],
        "vector": vectors_to_arrow(vector), "search_vector": vectors_to_arrow(search_vector)},
        schema=proposals_schema(104))
    table.add(row)
    found, _ = search(store, "classic", vector[0], k=1, exact=False)
    assert found[0].proposal_id == "fresh" and found[0].distance == pytest.approx(0.0, abs=1e-4)
    table.delete("proposal_id = 'fresh'")


def test_contact_sheet(store, tmp_path):
    row = _a_positive(store)
    result = similar(store, proposal_id=row["proposal_id"], k=4)
    path = similar_sheet(store, result, tmp_path / "sheet.png")
    import cv2

    picture = cv2.imread(str(path))
    assert picture is not None and picture.shape[1] >= 5 * 160


def test_bad_queries(store, tmp_path):
    with pytest.raises(StoreError, match="no proposal 'nope'"):
        similar(store, proposal_id="nope")
    with pytest.raises(ValueError, match="dimension 3"):
        search(store, "classic", np.zeros(3), k=3)
    row = _a_positive(store)
    with pytest.raises(ValueError, match="outside"):
        similar(store, frame_id=row["frame_id"], box=[0, 0, 5000, 10])
    with pytest.raises(ValueError, match="empty"):
        similar(store, frame_id=row["frame_id"], box=[10, 10, 10, 20])
    with pytest.raises(StoreError, match="--where 'bogus ==='"):
        similar(store, proposal_id=row["proposal_id"], where="bogus ===")
    with pytest.raises(ValueError, match="exactly one query"):
        similar(store)
    with pytest.raises(ValueError, match="space must be one of auto, standardized, raw, got 'zscore'"):
        similar(store, proposal_id=row["proposal_id"], space="zscore")
    with pytest.raises(StoreError, match="no 'dinov3-vits16' vectors"):
        similar(store, proposal_id=row["proposal_id"], encoder="dinov3-vits16")
    (tmp_path / "empty").mkdir()
    with pytest.raises(StoreError, match="is empty"):
        FeatureStore(str(tmp_path / "empty"))


def test_frames_are_named_by_stem_and_a_short_result_says_why(tiny_store):
    from cs_features.errors import InputError
    from cs_features.search import resolve_frame

    store = FeatureStore(str(tiny_store))
    rows = store.read("frames", ["frame_id", "stem", "has_gt", "gt_boxes"]).to_pylist()
    row = next(r for r in rows if r["gt_boxes"])
    assert resolve_frame(store, row["stem"]) == (row["frame_id"], row["stem"])
    assert resolve_frame(store, row["frame_id"]) == (row["frame_id"], row["stem"])
    with pytest.raises(InputError, match="no frame with id or stem 'E9999_f00'"):
        resolve_frame(store, "E9999_f00")
    result = similar(store, frame_id=row["stem"], k=500)  # more frames than the store holds
    assert result.query_frame_id == row["frame_id"] and result.query_stem == row["stem"]
    assert len(result.neighbours) == len(rows) < 500  # one region per frame, every frame found
    assert all(n.stem for n in result.neighbours)
    assert "of the 500 asked for" in result.shortfall_note and "one region per frame" in result.shortfall_note
