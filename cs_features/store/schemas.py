"""Explicit pyarrow schemas and names of the feature store's tables.

Tables:

- ``frames``: one row per ingested frame (``frame_id`` = sha256 of the file bytes, 16 hex digits), with
  the grayscale image as read and the preprocessed image as PNG blobs, ground-truth boxes (frame
  pixels), the low-texture mask (PNG, 0/255), the embryo circle (frame pixels) and ``scale``: the
  preprocessed image and the mask are at the canonical scale (canonical px = ``scale`` x frame px).
- ``proposals_<encoder>``: one table per encoder so vectors of different encoders never mix; one row per
  region proposal (``proposal_id`` derived from frame id and box) with weak label and vector.
- ``ingest_log``: (frame, encoder) pairs that finished; written last, so a killed run redoes exactly the
  frames whose rows may be incomplete.
- ``errors``: every file that could not be ingested, with stage and reason.
- ``meta``: JSON settings (preprocessing, texture mask, proposals, weak labels, encoders) that every
  frame in the store was processed with, and the store's schema version.
- ``annotations``: the decisions of human reviewers (``csf review``), appended and never overwritten: one
  row per decision on a box (accept, reject, draw) or a frame (cs_free), with reviewer and time.

Primary keys carry Lance's unenforced primary key metadata (:data:`PRIMARY_KEY`), which also makes
concurrent writers of the same keys conflict and retry instead of duplicating rows.
"""

from __future__ import annotations

import re

import pyarrow as pa

# 2: frames resampled to a canonical embryo diameter (scale and embryo circle columns; preprocessed
#    frame and mask at the canonical scale, boxes in frame pixels)
STORE_SCHEMA_VERSION = 2
PRIMARY_KEY = {"lance-schema:unenforced-primary-key": "true"}
BLOB = {"lance-encoding:blob": "true"}
BOX_TYPE = pa.list_(pa.int32(), 4)
FRAMES, INGEST_LOG, ERRORS, META = "frames", "ingest_log", "errors", "meta"
ANNOTATIONS = "annotations"
PROPOSALS_PREFIX = "proposals_"


def timestamp_type() -> pa.DataType:
    return pa.timestamp("us", tz="UTC")


def frames_schema() -> pa.Schema:
    return pa.schema([
        pa.field("frame_id", pa.string(), nullable=False, metadata=PRIMARY_KEY),
        pa.field("path", pa.string()),
        pa.field("stem", pa.string()),
        pa.field("split", pa.string()),
        pa.field("label", pa.string()),
        pa.field("embryo_id", pa.string()),
        pa.field("frame_index", pa.int32()),
        pa.field("width", pa.int32()),
        pa.field("height", pa.int32()),
        pa.field("image", pa.large_binary(), metadata=BLOB),
        pa.field("preprocessed", pa.large_binary(), metadata=BLOB),
        pa.field("gt_boxes", pa.list_(BOX_TYPE)),
        pa.field("has_gt", pa.bool_()),
        pa.field("low_texture_mask", pa.large_binary()),
        pa.field("low_texture_fraction", pa.float32()),
        pa.field("scale", pa.float32()),
        pa.field("embryo_x", pa.float32()),
        pa.field("embryo_y", pa.float32()),
        pa.field("embryo_radius", pa.float32()),
        pa.field("embryo_found", pa.bool_()),
        pa.field("config_hash", pa.string()),
        pa.field("ingested_at", timestamp_type()),
    ])


def proposals_schema(dim: int, search_vector: bool = True) -> pa.Schema:
    """Schema of a ``proposals_<encoder>`` table.

    ``search_vector`` (nullable) holds ``vector`` in the encoder's fitted search space (see
    :mod:`cs_features.search_space`); tables made before search spaces lack it (``search_vector=False``).
    """
    fields = [
        pa.field("proposal_id", pa.string(), nullable=False, metadata=PRIMARY_KEY),
        pa.field("frame_id", pa.string()),
        pa.field("split", pa.string()),
        pa.field("frame_label", pa.string()),
        pa.field("embryo_id", pa.string()),
        pa.field("box", BOX_TYPE),
        pa.field("source", pa.string()),
        pa.field("max_iou", pa.float32()),
        pa.field("weak_label", pa.int8()),
        pa.field("encoder", pa.string()),
        pa.field("vector", pa.list_(pa.float32(), dim)),
    ]
    if search_vector:
        fields.append(pa.field("search_vector", pa.list_(pa.float32(), dim)))
    return pa.schema(fields)


def ingest_log_schema() -> pa.Schema:
    return pa.schema([
        pa.field("log_id", pa.string(), nullable=False, metadata=PRIMARY_KEY),
        pa.field("frame_id", pa.string()),
        pa.field("encoder", pa.string()),
        pa.field("config_hash", pa.string()),
        pa.field("n_proposals", pa.int32()),
        pa.field("finished_at", timestamp_type()),
    ])


def errors_schema() -> pa.Schema:
    return pa.schema([
        pa.field("error_id", pa.string(), nullable=False, metadata=PRIMARY_KEY),
        pa.field("path", pa.string()),
        pa.field("stage", pa.string()),
        pa.field("reason", pa.string()),
        pa.field("time", timestamp_type()),
    ])


def meta_schema() -> pa.Schema:
    return pa.schema([
        pa.field("key", pa.string(), nullable=False, metadata=PRIMARY_KEY),
        pa.field("value", pa.string()),
        pa.field("updated_at", timestamp_type()),
    ])


def annotations_schema() -> pa.Schema:
    """Schema of the ``annotations`` table: one row per review decision, appended only.

    ``verdict`` is ``accept``, ``reject`` or ``draw`` (a box drawn, or adjusted from the proposal named by
    ``proposal_id``) with ``box`` in frame pixels, or ``cs_free`` for the whole frame (``box`` null).
    ``proposal_id`` is the decided proposal's id (frame id + box) when the box came from one, ``score`` the
    string probability it was shown with (null for boxes without one).
    """
    return pa.schema([
        pa.field("annotation_id", pa.string(), nullable=False, metadata=PRIMARY_KEY),
        pa.field("frame_id", pa.string(), nullable=False),
        pa.field("stem", pa.string()),
        pa.field("split", pa.string()),
        pa.field("embryo_id", pa.string()),
        pa.field("box", BOX_TYPE),
        pa.field("verdict", pa.string(), nullable=False),
        pa.field("proposal_id", pa.string()),
        pa.field("score", pa.float32()),
        pa.field("reviewer", pa.string()),
        pa.field("time", timestamp_type()),
    ])


PRIMARY_KEYS = {FRAMES: "frame_id", INGEST_LOG: "log_id", ERRORS: "error_id", META: "key",
                ANNOTATIONS: "annotation_id"}


def encoder_slug(encoder: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", encoder.lower()).strip("_")


def proposals_table_name(encoder: str) -> str:
    return PROPOSALS_PREFIX + encoder_slug(encoder)


def frame_result_fields(key: str) -> list[pa.Field]:
    """The leading fields of a table holding one model's result per frame (``error_maps``, ``string_maps``):
    the primary key ``key`` (``short_hash(frame_id, model_id)``), then frame and model ids and the frame's
    stem, split, label and embryo, so results filter without a join."""
    return [pa.field(key, pa.string(), nullable=False, metadata=PRIMARY_KEY), pa.field("frame_id", pa.string()),
            pa.field("model_id", pa.string()), pa.field("stem", pa.string()), pa.field("split", pa.string()),
            pa.field("label", pa.string()), pa.field("embryo_id", pa.string())]
