"""Feature store inspection: info, history, tags, restore, and proposal recall from stored rows."""

from __future__ import annotations

import re
from datetime import datetime

import numpy as np

from cs_features.errors import StoreError
from cs_features.store.arrow import fixed_list_to_numpy
from cs_features.store.db import FeatureStore
from cs_features.store.schemas import (
    ANNOTATIONS,
    ERRORS,
    FRAMES,
    INGEST_LOG,
    META,
    PROPOSALS_PREFIX,
    proposals_table_name,
)

# What writes each table (the store keeps no record of the command behind a version; the table says it).
# error_maps and string_maps are named here rather than imported: those packages import the store.
TABLE_WRITERS = {FRAMES: "csf ingest", INGEST_LOG: "csf ingest", ERRORS: "csf ingest",
                 META: "settings and search spaces (csf ingest, add-source, index)",
                 "error_maps": "csf score ae", "string_maps": "csf score strings", ANNOTATIONS: "csf review"}
PROPOSALS_WRITER = "csf ingest (also add-source; index fills search_vector)"
# Tags name the command that pinned a version: ae-<model id> (csf train ae), bench-<hash> (csf bench heads).
TAG_WRITERS = {"ae-": "csf train ae", "bench-": "csf bench heads"}
# Versions of one table less than this apart belong to one run (an ingest commits every --batch-frames).
RUN_GAP_SECONDS = 600.0


def store_info(store: FeatureStore) -> dict:
    """Tables with row counts and versions, encoders, settings and package versions of a store."""
    tables = {}
    for name in store.table_names():
        table = store.db.open_table(name)
        tables[name] = {"rows": table.count_rows(), "version": table.version}
    meta = store.all_meta()
    frames = _frame_counts(store)
    return {
        "uri": store.uri,
        "tables": tables,
        "encoders": store.encoders(),
        "settings": meta.get("settings"),
        "store": meta.get("store"),
        "frames": frames,
        "errors": store.count(ERRORS),
        "tags": sorted(list_tags(store)),
        "proposal_recall": {name: proposal_recall(store, name) for name in store.encoders()},
    }


def _frame_counts(store: FeatureStore) -> dict:
    if not store.has_table(FRAMES):
        return {}
    rows = store.table(FRAMES).search().select(["split", "label"]).limit(None).to_arrow()
    counts: dict[str, dict[str, int]] = {}
    for split, label in zip(rows.column("split").to_pylist(), rows.column("label").to_pylist()):
        counts.setdefault(split, {}).setdefault(label, 0)
        counts[split][label] += 1
    return counts


def store_history(store: FeatureStore) -> list[dict]:
    """Every version of every table: table, version, timestamp, rows, and the tags pointing at it."""
    out = []
    for name in store.table_names():
        table = store.db.open_table(name)
        tags = {}
        for tag, info in table.tags.list().items():
            tags.setdefault(info["version"], []).append(tag)
        for version in table.list_versions():
            number = version["version"]
            out.append({"table": name, "version": number, "timestamp": str(version["timestamp"]),
                        "rows": int(version.get("metadata", {}).get("total_rows", -1)),
                        "tags": sorted(tags.get(number, []))})
    return out


def history_runs(history: list[dict], gap_seconds: float = RUN_GAP_SECONDS) -> list[dict]:
    """Collapse :func:`store_history` rows into runs: consecutive versions of one table less than
    ``gap_seconds`` apart (one ingest writes a version per batch of frames).

    Returns:
        Runs in time order, each ``{"table", "made_by", "versions", "first_version", "last_version",
        "rows_before", "rows_after", "first_time", "last_time", "tags", "tagged_by"}``; ``rows_before`` is
        the row count of the version before the run (0 for a new table).
    """
    runs: list[dict] = []
    by_table: dict[str, list[dict]] = {}
    for row in history:
        by_table.setdefault(row["table"], []).append(row)
    for table, rows in by_table.items():
        rows = sorted(rows, key=lambda r: r["version"])
        previous_rows, run = 0, None
        for row in rows:
            time = _parse_time(row["timestamp"])
            if run is None or (time - run["_last"]).total_seconds() > gap_seconds:
                run = {"table": table, "made_by": _writer_of(table), "versions": 0,
                       "first_version": row["version"], "rows_before": previous_rows,
                       "first_time": row["timestamp"], "tags": [], "_last": time}
                runs.append(run)
            run.update(versions=run["versions"] + 1, last_version=row["version"], rows_after=row["rows"],
                       last_time=row["timestamp"], _last=time)
            run["tags"] += row["tags"]
            previous_rows = row["rows"]
    for run in runs:
        del run["_last"]
        run["tagged_by"] = sorted({w for t in run["tags"] for p, w in TAG_WRITERS.items() if t.startswith(p)})
    return sorted(runs, key=lambda r: (_parse_time(r["first_time"]), r["table"]))


def _writer_of(table: str) -> str:
    if table.startswith(PROPOSALS_PREFIX):
        return PROPOSALS_WRITER
    return TABLE_WRITERS.get(table, "unknown")


def _parse_time(text: str) -> datetime:
    parsed = datetime.fromisoformat(text)
    return parsed.replace(tzinfo=None) if parsed.tzinfo else parsed


def list_tags(store: FeatureStore) -> dict[str, dict[str, int]]:
    """``{tag: {table: version}}`` over all tables."""
    tags: dict[str, dict[str, int]] = {}
    for name in store.table_names():
        for tag, info in store.db.open_table(name).tags.list().items():
            tags.setdefault(tag, {})[name] = info["version"]
    return tags


def tag_store(store: FeatureStore, tag: str) -> dict[str, int]:
    """Pin the current version of every table under ``tag``; returns ``{table: version}``.

    Raises:
        StoreError: the tag exists already or the name is not a valid tag.
    """
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", tag):
        raise StoreError(f"tag {tag!r} is not valid: use letters, digits, '.', '_' and '-'")
    if tag in list_tags(store):
        raise StoreError(f"tag {tag!r} already exists in {store.uri!r}; pick another name or restore it")
    pinned = {}
    for name in store.table_names():
        table = store.db.open_table(name)
        table.tags.create(tag, table.version)
        pinned[name] = table.version
    return pinned


def restore_store(store: FeatureStore, tag_or_version: str) -> dict[str, int]:
    """Make the tagged versions the latest versions again (a new version; history is kept).

    Tables that did not exist when the tag was made are left as they are. Returns ``{table: version
    restored}``.
    """
    tags = list_tags(store)
    if tag_or_version not in tags:
        known = ", ".join(sorted(tags)) or "(none)"
        raise StoreError(f"no tag {tag_or_version!r} in {store.uri!r}; tags: {known}")
    restored = {}
    for name, version in tags[tag_or_version].items():
        table = store.db.open_table(name)
        table.checkout(version)
        table.restore()
        restored[name] = version
    return restored


def proposal_recall(store: FeatureStore, encoder: str) -> dict:
    """Share of ground-truth strings with a proposal at IoU >= 0.25 / >= 0.5, per source and overall.

    Only CS frames with known boxes count. Returns ``{source: {"strings", "frames", "recall@0.25",
    "recall@0.5", "proposals_per_frame"}}`` (``"all"`` for every source together).
    """
    from cs_features.metrics import add_counts, recall_by_source, recall_summary

    name = proposals_table_name(encoder)
    if not store.has_table(name) or not store.has_table(FRAMES):
        return {}
    frames = store.read(FRAMES, ["frame_id", "gt_boxes"], where="has_gt = true AND label = 'abnormal'")
    truth = {fid: np.asarray(b, np.int32).reshape(-1, 4)
             for fid, b in zip(frames.column("frame_id").to_pylist(), frames.column("gt_boxes").to_pylist()) if b}
    if not truth:
        return {}
    props = store.read(name, ["frame_id", "box", "source"])
    frame_ids = np.asarray(props.column("frame_id").to_pylist(), dtype=object)
    boxes = fixed_list_to_numpy(props.column("box"), 4)
    sources = np.asarray(props.column("source").to_pylist(), dtype=object)
    order = np.argsort(frame_ids, kind="stable")
    frame_ids, boxes, sources = frame_ids[order], boxes[order], sources[order]
    starts = np.searchsorted(frame_ids, list(truth), side="left")
    ends = np.searchsorted(frame_ids, list(truth), side="right")
    counts: dict[str, list[int]] = {}
    for gt, start, end in zip(truth.values(), starts, ends):
        in_frame = sources[start:end]
        per_source = {"all": end - start, **{s: int((in_frame == s).sum()) for s in set(in_frame)}}
        frame = recall_by_source(gt, boxes[start:end], in_frame) if end > start else {"all": [len(gt), 0, 0]}
        add_counts(counts, {name: [*c, 1, per_source.get(name, 0)] for name, c in frame.items()})
    summary = recall_summary(counts)
    for name, (*_, frames_seen, proposals) in counts.items():
        summary[name].update(frames=frames_seen, proposals_per_frame=round(proposals / frames_seen, 1))
    return summary
