"""The review page's HTML: the template environment (package templates, autoescaped) and what each page shows."""

from __future__ import annotations

import json
import math
from functools import lru_cache
from urllib.parse import urlencode

from cs_features.review.queue import SORTS, VERDICT_FILTERS, ReviewQueue

PAGE_SIZE = 50
TIMELINE = {"width": 900, "height": 130, "left": 44, "right": 12, "top": 12, "bottom": 26}


@lru_cache(maxsize=1)
def environment():
    from jinja2 import Environment, PackageLoader, select_autoescape

    env = Environment(loader=PackageLoader("cs_features.review", "templates"),
                      autoescape=select_autoescape(["html"]), trim_blocks=True, lstrip_blocks=True)
    env.filters["score"] = lambda v: "–" if v is None else f"{v:.3f}"
    return env


def render(template: str, context: dict) -> str:
    return environment().get_template(template).render(**context)


def query_string(filters: dict, **extra) -> str:
    """The filters (and ``extra``) as a URL query, leaving out empty and default values."""
    values = {**filters, **extra}
    defaults = {"sort": "priority", "verdict": "all", "page": 1}
    return urlencode({k: v for k, v in values.items() if v not in ("", None) and defaults.get(k) != v})


def with_query(path: str, query: str) -> str:
    return f"{path}?{query}" if query else path


def common_context(queue: ReviewQueue, config) -> dict:
    return {"store": queue.store.uri, "reviewer": config.reviewer, "threshold": queue.threshold,
            "has_detections": queue.has_detections, "ae_model": queue.ae_model}


def queue_context(queue: ReviewQueue, config, filters: dict, page: int, page_size: int) -> dict:
    """What the queue page shows: one page of frames in order, the filters and the paging links."""
    items = queue.ordered(**filters)
    pages = max(1, math.ceil(len(items) / page_size))
    page = min(page, pages)
    shown = items[(page - 1) * page_size: page * page_size]
    reviewed = sum(1 for i in queue.items.values() if i.reviewed)
    return {**common_context(queue, config), "items": shown, "total": len(items), "page": page, "pages": pages,
            "filters": filters, "sorts": SORTS, "verdicts": VERDICT_FILTERS, **queue.choices(),
            "frames": len(queue.items), "reviewed": reviewed, "frame_query": query_string(filters),
            "prev_link": with_query("/queue", query_string(filters, page=page - 1)) if page > 1 else None,
            "next_link": with_query("/queue", query_string(filters, page=page + 1)) if page < pages else None,
            "first": (page - 1) * page_size}


def frame_context(queue: ReviewQueue, config, frame_id: str, filters: dict) -> dict:
    """What the frame view shows: the frame, its boxes, the error map, the embryo's timeline, the next frame."""
    frame, item = queue.frame(frame_id), queue.items[frame_id]
    boxes = queue.frame_boxes(frame_id)
    following = queue.next_frame(frame_id, **filters)
    frame_query = query_string(filters)
    next_url = with_query(f"/frame/{following}" if following else "/queue", frame_query)
    data = {"frame_id": frame_id, "width": frame["width"], "height": frame["height"], "boxes": boxes,
            "positive_p": queue.detections.positive_p, "next_url": next_url, "reviewer": config.reviewer}
    return {**common_context(queue, config), "frame": frame, "item": item, "boxes": boxes, "next_url": next_url,
            "frame_query": frame_query, "queue_url": with_query("/queue", frame_query), "filters": filters,
            "ae_score": queue.ae_scores.get(frame_id), "ae_threshold": queue.ae_threshold,
            "timeline": timeline_svg(queue, item.embryo_id, frame_id, frame_query),
            "frame_json": json.dumps(data).replace("<", "\\u003c")}


def timeline_svg(queue: ReviewQueue, embryo_id: str, frame_id: str, frame_query: str) -> dict:
    """Coordinates of the embryo's score timeline: one point per frame (x: time order, y: score), the
    threshold line, and this frame marked."""
    frames = queue.timeline(embryo_id)
    g = TIMELINE
    scores = [f["score"] for f in frames if f["score"] is not None]
    top = 1.0 if queue.has_detections else max(scores + [queue.threshold or 0.0, 1e-9]) * 1.1
    inner_w, inner_h = g["width"] - g["left"] - g["right"], g["height"] - g["top"] - g["bottom"]

    def y(value: float) -> float:
        return round(g["top"] + inner_h * (1 - min(max(value / top, 0.0), 1.0)), 1)

    points = []
    for i, f in enumerate(frames):
        x = round(g["left"] + (inner_w * i / (len(frames) - 1) if len(frames) > 1 else inner_w / 2), 1)
        points.append({**f, "x": x, "y": None if f["score"] is None else y(f["score"]),
                       "current": f["frame_id"] == frame_id, "url": with_query(f"/frame/{f['frame_id']}", frame_query)})
    line = " ".join(f"{p['x']},{p['y']}" for p in points if p["y"] is not None)
    return {**g, "points": points, "line": line, "ymax": top, "embryo_id": embryo_id, "scored": bool(scores),
            "threshold_y": y(queue.threshold) if queue.threshold is not None else None,
            "axis_y": g["height"] - g["bottom"], "top_label": f"{top:.2f}",
            "kind": "frame score (highest p)" if queue.has_detections else "autoencoder score"}
