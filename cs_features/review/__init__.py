"""Human review of detections (``csf review``): a local web page to triage boxes, judge them against their
nearest stored regions, and send the decisions back into the store as ground truth.

- ``annotations``: the append-only ``annotations`` table (one row per decision);
- ``truth``: the truth after review (latest decision per box and frame), which training reads;
- ``detections``: a ``csf detect`` output folder matched to the store's frames;
- ``queue``: the frames in the order they need a human, with filters, timelines and each frame's boxes;
- ``images``: frames, crops and error maps as PNG bytes, read from the store only;
- ``app``: the FastAPI application (pages, JSON API, token check); ``serve``: running it;
- ``export``: reviewed labels as YOLO files and COCO json.

The web modules import FastAPI; this package's ``__init__`` does not, so training can read reviews cheaply.
"""

from cs_features.review.annotations import (  # noqa: F401
    BOX_VERDICTS,
    VERDICTS,
    Decision,
    append_decisions,
    read_annotations,
)
from cs_features.review.truth import FrameTruth, relabel_proposals, replay, review_overrides  # noqa: F401
