"""The ``annotations`` table: review decisions appended one row each, never overwritten.

A decision is a verdict on a box of a frame (``accept``, ``reject``, ``draw``) or on the whole frame
(``cs_free``). Rows are appended (``table.add``), so two reviewers deciding on the same box both land as
rows; :mod:`cs_features.review.truth` reads them back with the latest decision winning. Writes in one
process are serialised by a lock; Lance itself retries concurrent appends from several processes.
"""

from __future__ import annotations

import itertools
import threading
from dataclasses import dataclass

import pyarrow as pa

from cs_features.errors import InputError
from cs_features.ids import proposal_id as make_proposal_id
from cs_features.ids import short_hash
from cs_features.store import ANNOTATIONS, FeatureStore, annotations_schema, now, sql_quote

BOX_VERDICTS = ("accept", "reject", "draw")
FRAME_VERDICTS = ("cs_free",)
VERDICTS = BOX_VERDICTS + FRAME_VERDICTS
_WRITE_LOCK = threading.Lock()
_SEQUENCE = itertools.count()


@dataclass(frozen=True)
class Decision:
    """One reviewer decision on a stored frame.

    ``box`` ``[x1, y1, x2, y2]`` in frame pixels (exclusive end) for box verdicts, None for ``cs_free``;
    ``proposal_id`` the proposal the box came from (None for a box drawn from scratch); ``score`` the
    string probability shown with it.
    """

    frame_id: str
    verdict: str
    reviewer: str
    box: tuple[int, int, int, int] | None = None
    proposal_id: str | None = None
    score: float | None = None


def validate_decision(decision: Decision, width: int, height: int) -> Decision:
    """Check a decision against the frame it is about (``width`` x ``height`` pixels).

    Raises:
        InputError: an unknown verdict, a box verdict without a box (or a frame verdict with one), a box
            that is empty or leaves the frame, or an empty reviewer name.
    """
    if decision.verdict not in VERDICTS:
        raise InputError(f"verdict {decision.verdict!r} is not one of {', '.join(VERDICTS)}")
    if not str(decision.reviewer or "").strip():
        raise InputError("a decision needs a reviewer name")
    if decision.verdict in FRAME_VERDICTS:
        if decision.box is not None:
            raise InputError(f"verdict {decision.verdict!r} is about the whole frame and takes no box")
        return decision
    if decision.box is None or len(decision.box) != 4:
        raise InputError(f"verdict {decision.verdict!r} needs a box [x1, y1, x2, y2], got {decision.box!r}")
    x1, y1, x2, y2 = (int(v) for v in decision.box)
    if not (0 <= x1 < x2 <= width and 0 <= y1 < y2 <= height):
        raise InputError(f"box {[x1, y1, x2, y2]} is empty or outside the {width}x{height} frame "
                         f"{decision.frame_id!r}")
    return Decision(decision.frame_id, decision.verdict, decision.reviewer.strip(), (x1, y1, x2, y2),
                    decision.proposal_id, decision.score)


def box_key(proposal_id: str | None, frame_id: str, box) -> str:
    """What a box decision is about: its proposal, or (for a drawn box) the proposal id its box would have."""
    return proposal_id or make_proposal_id(frame_id, box)


def append_decisions(store: FeatureStore, decisions: list[Decision], frames: dict[str, dict]) -> list[dict]:
    """Append validated decisions as rows of ``annotations``; returns the rows written.

    Args:
        frames: ``{frame_id: row}`` with the frame's ``stem``, ``split`` and ``embryo_id`` (copied into the
            row so the table filters without a join).

    Raises:
        InputError: a decision about a frame not in ``frames``.
    """
    rows = []
    with _WRITE_LOCK:
        for decision in decisions:
            frame = frames.get(decision.frame_id)
            if frame is None:
                raise InputError(f"no frame {decision.frame_id!r} in {store.uri!r}")
            stamp = now()
            # unique per decision: the same verdict given twice is two decisions, both kept
            annotation_id = short_hash(decision.frame_id, decision.verdict, decision.box, decision.proposal_id,
                                       decision.reviewer, stamp.isoformat(), next(_SEQUENCE))
            rows.append({"annotation_id": annotation_id, "frame_id": decision.frame_id, "stem": frame.get("stem"),
                         "split": frame.get("split"), "embryo_id": frame.get("embryo_id"),
                         "box": list(decision.box) if decision.box is not None else None,
                         "verdict": decision.verdict, "proposal_id": decision.proposal_id,
                         "score": decision.score, "reviewer": decision.reviewer, "time": stamp})
        if rows:
            table = store.ensure_table(ANNOTATIONS, annotations_schema())
            table.add(pa.Table.from_pylist(rows, schema=annotations_schema()))
    return rows


def read_annotations(store: FeatureStore, frame_id: str | None = None, version: int | str | None = None) -> pa.Table:
    """Rows of ``annotations`` (of one frame, or all) in time order; an empty table when there are none.

    ``version``: a store tag reads the table as tagged (no rows when the table did not exist yet when the
    store was tagged: :func:`~cs_features.store.admin.tag_store` tags every table there is). A version
    number belongs to one table (the one a caller pinned), so it reads the latest decisions.
    """
    if not store.has_table(ANNOTATIONS):
        return annotations_schema().empty_table()
    table = store.table(ANNOTATIONS)
    if isinstance(version, str):
        if version not in table.tags.list():
            return annotations_schema().empty_table()
        table.checkout(version)
    where = f"frame_id = '{sql_quote(frame_id)}'" if frame_id is not None else None
    rows = table.to_lance().to_table(filter=where)
    return rows.sort_by([("time", "ascending"), ("annotation_id", "ascending")])
