"""The fitted search space: standardization maths, meta round trip, ingest/refit/index, raw fallback."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from typer.testing import CliRunner

from cli.main import app
from cs_features.errors import NotFittedError, StoreError
from cs_features.ingest import IngestConfig, ingest
from cs_features.proposals import ProposalConfig
from cs_features.search import (
    SEARCH_COLUMN,
    SearchSpace,
    build_index,
    ensure_search_space,
    load_search_space,
    search_space_status,
    similar,
    space_key,
)
from cs_features.settings import StoreSettings
from cs_features.store import META, FeatureStore, fixed_list_to_numpy, proposals_table_name

FAST = IngestConfig(workers=1, batch_frames=4,
                    settings=StoreSettings(proposals=ProposalConfig(method="ss-single", max_proposals=60)))
TABLE = proposals_table_name("classic")
runner = CliRunner()


def _numpy_space(X: np.ndarray, mean: np.ndarray, std: np.ndarray) -> np.ndarray:
    Z = (X.astype(np.float64) - mean) / std
    return Z / np.linalg.norm(Z, axis=1, keepdims=True)


def _rows(store: FeatureStore) -> dict:
    """Proposal rows sorted by id: ids, splits, raw vectors and search vectors (NaN where null)."""
    table = store.read(TABLE, ["proposal_id", "split", "vector", SEARCH_COLUMN]).sort_by("proposal_id")
    column = table.column(SEARCH_COLUMN)
    nulls = np.asarray(column.is_null().to_pylist())
    search = np.full((table.num_rows, 104), np.nan, np.float32)
    if (~nulls).any():
        search[~nulls] = fixed_list_to_numpy(column.drop_null(), 104)
    return {"ids": table.column("proposal_id").to_pylist(), "split": np.asarray(table.column("split").to_pylist()),
            "vector": fixed_list_to_numpy(table.column("vector"), 104), "search": search, "nulls": int(nulls.sum())}


def _make_pre_space(path) -> FeatureStore:
    """Turn a store into one written before search spaces: no search_vector column, no space in meta."""
    store = FeatureStore(str(path))
    store.table(TABLE).to_lance().drop_columns([SEARCH_COLUMN])
    store.table(META).delete(f"key = '{space_key('classic')}'")
    return FeatureStore(str(path))


# ---- the estimator ------------------------------------------------------------------------------

def test_transform_matches_numpy():
    rng = np.random.default_rng(0)
    X = (rng.standard_normal((500, 6)) * [1, 10, 100, 0.01, 3, 50] + [0, 5, 200, 1, -2, 7]).astype(np.float32)
    space = SearchSpace().fit(X)
    np.testing.assert_allclose(space.mean_, X.astype(np.float64).mean(0), rtol=1e-12)
    np.testing.assert_allclose(space.scale_, X.astype(np.float64).std(0), rtol=1e-10)
    Z = space.transform(X[:50])
    assert Z.dtype == np.float32 and Z.shape == (50, 6)
    np.testing.assert_allclose(Z, _numpy_space(X[:50], X.mean(0, dtype=np.float64), X.std(0, dtype=np.float64)),
                               atol=1e-6)
    np.testing.assert_allclose(np.linalg.norm(Z, axis=1), 1.0, atol=1e-6)


def test_partial_fit_in_batches_equals_one_fit():
    rng = np.random.default_rng(1)
    X = rng.gamma(2.0, 3.0, (1000, 5)).astype(np.float32)
    whole = SearchSpace().fit(X)
    batched = SearchSpace()
    for start in (0, 7, 300, 301, 999):
        stop = {0: 7, 7: 300, 300: 301, 301: 999, 999: 1000}[start]
        batched.partial_fit(X[start:stop])
    assert batched.n_samples_seen_ == 1000
    np.testing.assert_allclose(batched.mean_, whole.mean_, rtol=1e-12)
    np.testing.assert_allclose(batched.scale_, whole.scale_, rtol=1e-10)


def test_constant_dimension_keeps_scale_one():
    rng = np.random.default_rng(2)
    X = rng.standard_normal((200, 4)).astype(np.float32)
    X[:, 2] = 3.5  # e.g. a texture feature that never fires on this data
    space = SearchSpace().fit(X)
    assert space.scale_[2] == 1.0 and space.mean_[2] == pytest.approx(3.5)
    Z = space.transform(X)
    assert np.isfinite(Z).all() and np.abs(Z[:, 2]).max() == 0.0
    new = X[:1].copy()
    new[0, 2] = 4.0  # off the constant by 0.5: weighs 0.5, not 0.5 / 0
    expected = np.r_[(new[0, :2] - space.mean_[:2]) / space.scale_[:2], 0.5,
                     (new[0, 3] - space.mean_[3]) / space.scale_[3]]
    np.testing.assert_allclose(space.transform(new)[0], expected / np.linalg.norm(expected), atol=1e-6)


def test_bad_input_and_not_fitted():
    with pytest.raises(NotFittedError, match="not fitted"):
        SearchSpace().transform(np.zeros((2, 3), np.float32))
    space = SearchSpace().fit(np.random.default_rng(3).standard_normal((20, 3)))
    with pytest.raises(ValueError, match="dimension 4, the search space has 3"):
        space.transform(np.zeros((2, 4), np.float32))
    with pytest.raises(ValueError, match=r"2-D \(N, D\), got shape \(3,\)"):
        space.transform(np.zeros(3, np.float32))
    with pytest.raises(TypeError, match="numpy array"):
        space.transform([[0.0, 0.0, 0.0]])
    with pytest.raises(ValueError, match="NaN"):
        SearchSpace().fit(np.array([[0.0, np.nan]]))


def test_meta_round_trip_is_plain_json(tmp_path):
    X = np.random.default_rng(4).lognormal(0, 1, (300, 8)).astype(np.float32)
    space = SearchSpace().fit(X)
    store = FeatureStore(str(tmp_path / "db"), create=True)
    store.set_meta(space_key("classic"), space.to_dict())
    raw = store.read(META, ["value"], where=f"key = '{space_key('classic')}'").column("value")[0].as_py()
    data = json.loads(raw)
    assert data["fitted_rows"] == 300 and data["dim"] == 8 and len(data["mean"]) == len(data["scale"]) == 8
    loaded = load_search_space(store, "classic")
    np.testing.assert_array_equal(loaded.mean_, space.mean_)  # floats survive JSON exactly
    np.testing.assert_array_equal(loaded.scale_, space.scale_)
    np.testing.assert_array_equal(loaded.transform(X), space.transform(X))
    assert load_search_space(store, "dinov3-vits16") is None


def test_from_dict_rejects_bad_content():
    good = SearchSpace().fit(np.random.default_rng(5).standard_normal((10, 3))).to_dict()
    with pytest.raises(StoreError, match="schema version 99"):
        SearchSpace.from_dict({**good, "schema_version": 99})
    with pytest.raises(StoreError, match="dim 3, 3 means, 2 scales"):
        SearchSpace.from_dict({**good, "scale": good["scale"][:2]})
    with pytest.raises(StoreError, match="non-positive scales"):
        SearchSpace.from_dict({**good, "scale": [1.0, 0.0, 1.0]})


# ---- the space in a store -----------------------------------------------------------------------

@pytest.fixture(scope="module")
def grown(tiny_dataset, tmp_path_factory):
    """A store ingested from the dataset without embryo E0004 (train), then from the whole dataset."""
    root = tmp_path_factory.mktemp("space")
    part = root / "part"
    shutil.copytree(tiny_dataset, part)
    removed = list(part.glob("*/*/E0004_*.png"))
    assert removed and all(p.parts[-3] == "train" for p in removed)
    for png in removed:
        png.unlink()
    path = root / "db"
    first = ingest(part, path, FAST)
    shutil.copytree(path, root / "after_first")
    store = FeatureStore(str(path))
    before = {"meta": store.get_meta(space_key("classic")), "rows": _rows(store)}
    second = ingest(tiny_dataset, path, FAST)
    return {"path": path, "root": root, "first": first, "second": second, "before": before,
            "after_first": root / "after_first", "new_frames": len(removed)}


def test_first_ingest_fits_on_train_and_fills_every_row(grown):
    first, before = grown["first"], grown["before"]
    rows, meta = before["rows"], before["meta"]
    train = rows["split"] == "train"
    assert first.search_space["fitted"] and first.search_space["fitted_on"] == "train"
    assert first.search_space["rows_filled"] == len(rows["ids"]) == first.proposals_added
    assert meta["complete"] and meta["fitted_rows"] == int(train.sum()) < len(rows["ids"])
    X = rows["vector"].astype(np.float64)
    np.testing.assert_allclose(meta["mean"], X[train].mean(0), rtol=1e-9, atol=1e-12)
    assert rows["nulls"] == 0
    np.testing.assert_allclose(rows["search"], SearchSpace.from_dict(meta).transform(rows["vector"]), atol=1e-6)


def test_later_ingest_writes_new_rows_in_the_existing_space(grown):
    second, before = grown["second"], grown["before"]
    store = FeatureStore(str(grown["path"]))
    assert second.frames_added == grown["new_frames"] and second.proposals_added > 0
    assert not second.search_space["fitted"] and second.search_space["rows_filled"] == 0  # written at write time
    assert store.get_meta(space_key("classic")) == before["meta"]  # no refit
    rows = _rows(store)
    new = np.isin(rows["ids"], before["rows"]["ids"], invert=True)
    assert new.sum() == second.proposals_added and rows["nulls"] == 0
    old_space = SearchSpace.from_dict(before["meta"])
    np.testing.assert_allclose(rows["search"][new], old_space.transform(rows["vector"][new]), atol=1e-6)
    query = np.asarray(rows["ids"])[new][0]
    result = similar(store, proposal_id=query, k=3)
    assert result.space == "standardized" and result.neighbours[0].proposal_id == query
    assert result.neighbours[0].distance == pytest.approx(0.0, abs=1e-5)


def test_reingest_writes_nothing(grown, tiny_dataset):
    store = FeatureStore(str(grown["path"]))
    version = store.table(TABLE).version
    third = ingest(tiny_dataset, grown["path"], FAST)
    assert third.frames_added == 0 and third.search_space["rows_filled"] == 0 and not third.search_space["fitted"]
    assert FeatureStore(str(grown["path"])).table(TABLE).version == version


def test_refit_uses_the_current_train_split(grown, tmp_path):
    path = tmp_path / "db"
    shutil.copytree(grown["path"], path)
    store = FeatureStore(str(path))
    built = build_index(store, refit=True)
    rows = _rows(store)
    train = rows["split"] == "train"
    meta = store.get_meta(space_key("classic"))
    assert built["search_space"]["fitted"] and built["search_space"]["rows_filled"] == len(rows["ids"])
    assert meta["fitted_rows"] == int(train.sum()) > grown["before"]["meta"]["fitted_rows"]
    np.testing.assert_allclose(meta["mean"], rows["vector"][train].astype(np.float64).mean(0), rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(rows["search"], SearchSpace.from_dict(meta).transform(rows["vector"]), atol=1e-6)
    cli = runner.invoke(app, ["index", "--store", str(path), "--refit"])
    assert cli.exit_code == 0, cli.output
    assert "search space of classic: fitted" in cli.stdout and "search_vector written" in cli.stdout


def test_store_without_space_searches_raw_and_says_so(grown, tmp_path):
    path = tmp_path / "old"
    shutil.copytree(grown["path"], path)
    store = _make_pre_space(path)
    query = store.read(TABLE, ["proposal_id"], where="weak_label = 1").column("proposal_id")[0].as_py()
    result = similar(store, proposal_id=query, k=3)
    assert result.space == "raw" and "no search space" in result.space_note and "csf index" in result.space_note
    assert result.neighbours[0].proposal_id == query
    with pytest.raises(StoreError, match="standardized space: the store has no search space"):
        similar(store, proposal_id=query, space="standardized")
    text = runner.invoke(app, ["similar", "--store", str(path), "--proposal", query, "-k", "2"])
    assert text.exit_code == 0 and "raw space" in text.stdout and "raw vectors searched" in text.stdout
    as_json = runner.invoke(app, ["similar", "--store", str(path), "--proposal", query, "-k", "2", "--json"])
    data = json.loads(as_json.stdout)
    assert data["space"] == "raw" and "no search space" in data["space_note"]
    built = runner.invoke(app, ["index", "--store", str(path), "--json"])  # adds the space to the old store
    assert built.exit_code == 0, built.output
    report = json.loads(built.stdout)
    assert report["search_space"]["fitted"] and report["vector_column"] == SEARCH_COLUMN
    after = similar(FeatureStore(str(path)), proposal_id=query, k=3)
    assert after.space == "standardized" and after.space_note is None and after.neighbours[0].proposal_id == query


def test_pre_space_table_gets_the_column_on_the_next_ingest(grown, tiny_dataset, tmp_path):
    path = tmp_path / "old"
    shutil.copytree(grown["after_first"], path)
    _make_pre_space(path)
    summary = ingest(tiny_dataset, path, FAST)  # new rows are written without the column, then it is added
    store = FeatureStore(str(path))
    rows = _rows(store)
    assert summary.frames_added == grown["new_frames"] and summary.search_space["fitted"]
    assert summary.search_space["rows_filled"] == len(rows["ids"]) and rows["nulls"] == 0
    np.testing.assert_allclose(rows["search"], load_search_space(store, "classic").transform(rows["vector"]), atol=1e-6)


def test_unfinished_fill_is_not_used_and_is_redone(grown, tmp_path):
    path = tmp_path / "killed"
    shutil.copytree(grown["path"], path)
    store = FeatureStore(str(path))
    meta = store.get_meta(space_key("classic"))
    store.set_meta(space_key("classic"), {**meta, "complete": False})  # as if a refit died mid-fill
    status = search_space_status(store, "classic")
    assert not status.ready and "not finished" in status.reason
    done = ensure_search_space(store, "classic")
    assert not done["fitted"] and done["rows_filled"] == store.count(TABLE)
    assert store.get_meta(space_key("classic")) == meta and search_space_status(store, "classic").ready


def test_store_without_train_split_is_searched_raw_and_never_fits_on_test_vectors(tiny_dataset, tmp_path):
    data = tmp_path / "data"
    shutil.copytree(tiny_dataset, data, ignore=shutil.ignore_patterns("train"))
    summary = ingest(data, tmp_path / "db", FAST)
    store = FeatureStore(str(tmp_path / "db"))
    rows = _rows(store)
    assert "train" not in set(rows["split"]) and summary.proposals_added == len(rows["ids"]) > 0
    assert not summary.search_space["fitted"] and "no train split" in summary.search_space["reason"]
    assert store.get_meta(space_key("classic")) is None
    status = search_space_status(store, "classic")
    assert not status.ready


def test_fill_writes_bounded_chunks_and_every_row(grown, tmp_path, monkeypatch):
    """A refit over a big table writes search vectors in merges of bounded size (Lance sorts each merge in
    memory and cannot spill it): chunks smaller than a fragment, and every row filled with the space's values."""
    from cs_features.search.space import fill_search_vectors

    path = tmp_path / "db"
    shutil.copytree(grown["path"], path)
    store = FeatureStore(str(path))
    old = load_search_space(store, "classic")
    space = SearchSpace().fit(_rows(store)["vector"])  # fitted on every split: other values than the stored ones
    fragment_rows = max(f.count_rows() for f in store.table(TABLE).to_lance().get_fragments())
    chunk_rows = 7
    assert fragment_rows > 2 * chunk_rows
    merged = []
    patch = FeatureStore.patch_columns
    monkeypatch.setattr(FeatureStore, "patch_columns",
                        lambda self, name, rows, key: merged.append(rows.num_rows) or patch(self, name, rows, key))
    written = fill_search_vectors(store, "classic", space, only_missing=False, chunk_bytes=chunk_rows * 4 * space.dim)
    rows = _rows(FeatureStore(str(path)))
    assert written == sum(merged) == len(rows["ids"]) and rows["nulls"] == 0
    assert max(merged) <= chunk_rows and len(merged) >= len(rows["ids"]) / chunk_rows
    np.testing.assert_allclose(rows["search"], space.transform(rows["vector"]), atol=1e-6)
    assert not np.allclose(space.transform(rows["vector"]), old.transform(rows["vector"]), atol=1e-4)
