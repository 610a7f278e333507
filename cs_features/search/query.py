"""Nearest-neighbour queries over the proposals' vectors: find regions like an ambiguous string.

Queries are embedded by the frame pipeline under the store's own settings and encoder (as ingest
did), moved into the encoder's fitted search space (:mod:`cs_features.search.space`) and searched with
cosine distance, exactly below :data:`~cs_features.search.index.EXACT_BELOW` rows or through the vector
index (:mod:`cs_features.search.index`) above it.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field

import numpy as np

from cs_features.errors import InputError, StoreError
from cs_features.search.index import EXACT_BELOW, HNSW_EF, NPROBES, REFINE_FACTOR, has_vector_index
from cs_features.search.space import SpaceChoice, pick_encoder, resolve_space
from cs_features.store import FRAMES, FeatureStore, fixed_list_to_numpy, proposals_table_name, sql_quote

log = logging.getLogger(__name__)
RESULT_COLUMNS = ["proposal_id", "frame_id", "split", "frame_label", "embryo_id", "box", "source", "max_iou",
                  "weak_label"]


@dataclass
class Neighbour:
    """One retrieved region: ids, frame label, box, weak label, IoU with the truth, cosine distance in the
    space searched."""

    proposal_id: str
    frame_id: str
    split: str
    frame_label: str
    embryo_id: str
    box: list[int]
    source: str
    max_iou: float | None
    weak_label: int
    distance: float
    stem: str = ""


@dataclass
class SimilarResult:
    """The query (frame id, box, vector) and its neighbours, nearest first, with the neighbour vote and
    the space searched (``"standardized"`` or ``"raw"``; ``space_note`` says why raw)."""

    encoder: str
    query_frame_id: str | None
    query_box: list[int]
    neighbours: list[Neighbour] = field(default_factory=list)
    exact: bool = True
    query_proposal_id: str | None = None
    space: str = "raw"
    space_note: str | None = None
    query_stem: str | None = None
    requested: int = 0
    shortfall_note: str | None = None

    @property
    def cs_vote(self) -> float | None:
        """Distance-weighted share of CS-positive neighbours (weights ``1 / (distance + 1e-3)``).

        The query's own region (when queried by proposal id) does not vote.
        """
        voters = [n for n in self.neighbours if n.proposal_id != self.query_proposal_id]
        if not voters:
            return None
        weights = np.array([1.0 / (n.distance + 1e-3) for n in voters])
        positive = np.array([n.weak_label == 1 for n in voters], float)
        return float((weights * positive).sum() / weights.sum())

    def to_dict(self) -> dict:
        return {"encoder": self.encoder, "query_proposal_id": self.query_proposal_id,
                "query_frame_id": self.query_frame_id, "query_stem": self.query_stem, "query_box": self.query_box,
                "exact": self.exact, "space": self.space, "space_note": self.space_note, "cs_vote": self.cs_vote,
                "requested": self.requested, "shortfall_note": self.shortfall_note,
                "neighbours": [asdict(n) for n in self.neighbours]}


def proposal_vector(store: FeatureStore, encoder: str, proposal_id: str) -> tuple[np.ndarray, str, list[int]]:
    """The stored vector, frame id and box of one proposal."""
    dim = int(store.encoders()[encoder]["dim"])
    rows = store.read(proposals_table_name(encoder), ["vector", "frame_id", "box"],
                      where=f"proposal_id = '{sql_quote(proposal_id)}'")
    if rows.num_rows == 0:
        raise StoreError(f"no proposal {proposal_id!r} in {proposals_table_name(encoder)!r} of {store.uri!r}")
    return (fixed_list_to_numpy(rows.column("vector"), dim)[0], rows.column("frame_id")[0].as_py(),
            rows.column("box")[0].as_py())


def embed_region(
    store: FeatureStore, encoder_name: str, image: np.ndarray, box, weights: str | None = None
) -> np.ndarray:
    """Embed one box of a raw ``(H, W)`` uint8 frame exactly as ingest does (preprocess, then encoder).

    Raises:
        ValueError: the box is empty or outside the frame.
        ConfigError: ``weights`` are not the ones the store's vectors were made with.
    """
    from cs_features.boxes import validate_boxes
    from cs_features.encoders import get_encoder
    from cs_features.frame import FramePipeline
    from cs_features.settings import ENCODER_IDENTITY, StoreSettings, check_encoder_info

    boxes = validate_boxes(np.asarray([box]), image.shape[1], image.shape[0], name="box")
    info = store.encoders()[encoder_name]
    encoder = get_encoder(encoder_name, weights=weights, pooling=info.get("pooling", "roi"))
    check_encoder_info(info, encoder.info(), expected_name=f"the store's {encoder_name} vectors",
                       actual_name="--weights", remedy="Pass the weights file the store was ingested with",
                       keys=ENCODER_IDENTITY)
    pipeline = FramePipeline(StoreSettings.from_dict(store.get_meta("settings") or {}), encoder)
    return pipeline.embed(pipeline.prepare(image, "query image"), boxes)[0]


def search(store: FeatureStore, encoder: str, vector: np.ndarray, k: int = 10, where: str | None = None,
           exact: bool | None = None, distinct_frames: bool = False,
           space: str | SpaceChoice | None = None) -> tuple[list[Neighbour], bool]:
    """The ``k`` nearest proposals to the raw encoder ``vector`` ``(D,)``, optionally filtered by SQL ``where``.

    The query is moved into the space searched (see :func:`resolve_space`; a :class:`SpaceChoice` from it
    may be passed as ``space``) and distances are cosine distances in that space. With
    ``distinct_frames`` only the nearest region of each frame is kept (neighbouring boxes of one frame
    are near-duplicates; an embryologist wants other strings to compare with).

    Returns:
        neighbours nearest first, and whether the search was exact.

    Raises:
        ValueError: the vector has another dimension than the store's vectors, k < 1, or an unknown space.
        StoreError: LanceDB rejected the ``where`` clause (the message quotes it).
    """
    dim = int(store.encoders()[encoder]["dim"])
    vector = np.asarray(vector, np.float32).reshape(-1)
    if vector.shape[0] != dim:
        raise InputError(f"query vector has dimension {vector.shape[0]}, the store's {encoder} vectors have {dim}")
    if k < 1:
        raise InputError(f"k must be >= 1, got {k}")
    choice = space if isinstance(space, SpaceChoice) else resolve_space(store, encoder, space)
    if choice.space is not None:
        vector = choice.space.transform(vector[None, :])[0]
    table = store.table(proposals_table_name(encoder))
    if exact is None:
        exact = table.count_rows() < EXACT_BELOW or not has_vector_index(table, choice.column)
    fetch = k * 8 if distinct_frames else k
    rows = _nearest_rows(store, table, choice, vector, fetch, exact, where)
    if distinct_frames:
        total = table.count_rows()
        while len({row["frame_id"] for row in rows}) < k and len(rows) == fetch and fetch < total:
            fetch = min(fetch * 4, total)  # neighbouring boxes of a few frames filled the first fetch
            rows = _nearest_rows(store, table, choice, vector, fetch, exact, where)
        seen: set[str] = set()
        rows = [row for row in rows if not (row["frame_id"] in seen or seen.add(row["frame_id"]))]
    return [Neighbour(row["proposal_id"], row["frame_id"], row["split"], row["frame_label"], row["embryo_id"],
                      list(row["box"]), row["source"], _float_or_none(row["max_iou"]), int(row["weak_label"]),
                      float(row["_distance"])) for row in rows[:k]], exact


def _nearest_rows(store: FeatureStore, table, choice: SpaceChoice, vector: np.ndarray, limit: int, exact: bool,
                  where: str | None) -> list[dict]:
    query = (table.search(vector, vector_column_name=choice.column).distance_type("cosine")
             .select(RESULT_COLUMNS + ["_distance"]).limit(limit))
    query = (query.bypass_vector_index() if exact
             else query.nprobes(NPROBES).ef(HNSW_EF).refine_factor(REFINE_FACTOR))
    if where:
        query = query.where(where, prefilter=True)
    try:
        return query.to_arrow().to_pylist()
    except Exception as exc:
        raise StoreError(f"search in {store.uri!r} failed for --where {where!r}: {exc}") from exc


def _float_or_none(value) -> float | None:
    return None if value is None or np.isnan(value) else float(value)


def resolve_frame(store: FeatureStore, frame: str) -> tuple[str, str]:
    """``(frame_id, stem)`` of a stored frame named by its id or by its file stem (e.g. ``E0016_f02``).

    Raises:
        InputError: no frame has that id or stem, or several frames share the stem (their paths listed).
    """
    quoted = sql_quote(frame)
    rows = store.read(FRAMES, ["frame_id", "stem", "path"], where=f"frame_id = '{quoted}' OR stem = '{quoted}'")
    by_id = [r for r in rows.to_pylist() if r["frame_id"] == frame]
    matches = by_id or rows.to_pylist()
    if not matches:
        raise InputError(f"no frame with id or stem {frame!r} in {store.uri!r}")
    if len(matches) > 1:
        paths = ", ".join(r["path"] for r in matches[:5])
        raise InputError(f"{len(matches)} frames have the stem {frame!r} ({paths}); name one by its frame id")
    return matches[0]["frame_id"], matches[0]["stem"]


def stems_of(store: FeatureStore, frame_ids: list[str]) -> dict[str, str]:
    """``{frame_id: stem}`` of the given stored frames (one query)."""
    if not frame_ids:
        return {}
    quoted = ", ".join(f"'{sql_quote(f)}'" for f in set(frame_ids))
    rows = store.read(FRAMES, ["frame_id", "stem"], where=f"frame_id IN ({quoted})")
    return dict(zip(rows.column("frame_id").to_pylist(), rows.column("stem").to_pylist()))


def stored_frame_image(store: FeatureStore, frame_id: str) -> np.ndarray:
    """The raw ``(H, W)`` uint8 frame of ``frame_id`` from the store."""
    rows = store.read(FRAMES, ["frame_id"], where=f"frame_id = '{sql_quote(frame_id)}'", with_row_id=True)
    if rows.num_rows == 0:
        raise StoreError(f"no frame {frame_id!r} in {store.uri!r}")
    return store.frame_images(rows.column("_rowid").to_pylist(), column="image")[0]


def similar(store: FeatureStore, *, proposal_id: str | None = None, frame_id: str | None = None,
            image=None, box=None, k: int = 10, where: str | None = None, encoder: str | None = None,
            weights: str | None = None, distinct_frames: bool = True, space: str | None = None) -> SimilarResult:
    """Regions most similar to a query given as a stored proposal, a stored frame + box, or an image + box.

    Args:
        proposal_id: a stored proposal (its own vector is the query; it is its own nearest neighbour).
        frame_id: a stored frame, by id or file stem; ``box`` defaults to its first ground-truth string.
        image: a path or an ``(H, W)`` uint8 array, with ``box`` ``[x1, y1, x2, y2]``.
        k: neighbours to return; where: SQL filter on the proposals (e.g. ``"split = 'train'"``).
        distinct_frames: keep only the nearest region of each frame.
        space: ``"auto"`` (default: the fitted search space, raw vectors on a store without one),
            ``"standardized"`` or ``"raw"``; the result's ``space`` says which was searched.
    """
    from cs_features.io import read_gray

    given = [x is not None for x in (proposal_id, frame_id, image)]
    if sum(given) != 1:
        raise InputError("give exactly one query: a proposal id, a frame id, or an image with a box")
    encoder = pick_encoder(store, encoder)
    choice = resolve_space(store, encoder, space)
    if proposal_id is not None:
        vector, query_frame, query_box = proposal_vector(store, encoder, proposal_id)
    else:
        if frame_id is not None:
            frame_id, _ = resolve_frame(store, frame_id)
            frame = stored_frame_image(store, frame_id)
            box = box if box is not None else _first_truth_box(store, frame_id)
        else:
            frame = read_gray(image) if not isinstance(image, np.ndarray) else image
        if box is None:
            raise InputError("a query image needs --box x1,y1,x2,y2")
        vector, query_frame, query_box = embed_region(store, encoder, frame, box, weights), frame_id, list(box)
    neighbours, exact = search(store, encoder, vector, k=k, where=where, distinct_frames=distinct_frames,
                               space=choice)
    stems = stems_of(store, [n.frame_id for n in neighbours] + ([query_frame] if query_frame else []))
    for n in neighbours:
        n.stem = stems.get(n.frame_id, "")
    shortfall = None
    if len(neighbours) < k:
        why = ["one region per frame (--all-regions keeps several)"] if distinct_frames else []
        why += [f"the filter {where!r}"] if where else []
        shortfall = (f"{len(neighbours)} of the {k} asked for: the store holds no more regions"
                     + (" under " + " and ".join(why) if why else ""))
    return SimilarResult(encoder, query_frame, [int(v) for v in query_box], neighbours, exact, proposal_id,
                         choice.name, choice.note, stems.get(query_frame) if query_frame else None, k, shortfall)


def _first_truth_box(store: FeatureStore, frame_id: str) -> list[int]:
    rows = store.read(FRAMES, ["gt_boxes"], where=f"frame_id = '{sql_quote(frame_id)}'")
    boxes = rows.column("gt_boxes")[0].as_py() if rows.num_rows else []
    if not boxes:
        raise InputError(f"frame {frame_id!r} has no ground-truth string box; pass --box x1,y1,x2,y2")
    return list(boxes[0])


