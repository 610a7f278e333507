"""A box's nearest stored regions for the review page, through the product's similarity search.

The query is the stored proposal when the box is one (its vector as ingested), else the box embedded
from the stored frame as ingest would. Neighbours come from other frames and carry a weak label (so the
vote is among regions whose truth is known), one per frame, with the distance-weighted CS vote.
"""

from __future__ import annotations

from cs_features.errors import StoreError
from cs_features.ids import proposal_id as make_proposal_id
from cs_features.store import FeatureStore, sql_quote

LABELS = {1: "CS", 0: "no CS", -1: "unknown"}


def neighbours_of(store: FeatureStore, frame_id: str, box: list[int], proposal_id: str | None = None,
                  k: int = 8) -> dict:
    """The ``k`` stored regions nearest to ``box`` of stored frame ``frame_id``.

    Returns:
        ``{"query": "proposal" | "box", "encoder", "space", "cs_vote", "neighbours": [{"frame_id", "stem",
        "embryo_id", "split", "box", "label", "frame_label", "distance", "proposal_id"}]}``.

    Raises:
        StoreError / InputError: the store has no (or several) encoders, or the box cannot be embedded.
    """
    from cs_features.search import similar

    where = f"frame_id != '{sql_quote(frame_id)}' AND weak_label >= 0"
    query = "proposal"
    try:
        result = similar(store, proposal_id=proposal_id or make_proposal_id(frame_id, box), k=k, where=where)
    except StoreError as exc:
        if "no proposal" not in str(exc):
            raise
        query = "box"  # a drawn or adjusted box: embed it from the stored frame
        result = similar(store, frame_id=frame_id, box=box, k=k, where=where)
    return {"query": query, "encoder": result.encoder, "space": result.space, "cs_vote": result.cs_vote,
            "neighbours": [{"frame_id": n.frame_id, "stem": n.stem, "embryo_id": n.embryo_id, "split": n.split,
                            "box": n.box, "label": LABELS.get(n.weak_label, "unknown"), "frame_label": n.frame_label,
                            "distance": round(n.distance, 4), "proposal_id": n.proposal_id}
                           for n in result.neighbours]}
