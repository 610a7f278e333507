"""The review page as a FastAPI application: server-rendered HTML, a little plain JS, a JSON API.

Every picture comes from the store (frames by content id; no request path touches the file system), every
asset from this package. Bad requests get a 4xx JSON ``{"error": message}``; an unexpected failure a 500
with a one-line message (the traceback goes to the log only). When a ``token`` is set (a server bound
beyond localhost) every request must carry it: ``?token=`` (then kept in a cookie), the ``X-CSF-Token``
header or the ``csf_token`` cookie; without it 401, with a wrong one 403.
"""

from __future__ import annotations

import hmac
import logging
import re
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Annotated

from fastapi import Body, FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from cs_features.boxes import parse_box
from cs_features.errors import CSFeaturesError, InputError, StoreError
from cs_features.review.annotations import VERDICTS, Decision, append_decisions, read_annotations, validate_decision
from cs_features.review.detections import load_detections
from cs_features.review.images import crop_png, error_map_png, frame_png
from cs_features.review.pages import PAGE_SIZE, frame_context, queue_context, render
from cs_features.review.queue import ReviewQueue
from cs_features.store import FeatureStore

log = logging.getLogger(__name__)
FRAME_ID = re.compile(r"[0-9a-f]{16}")
STATIC_TYPES = {"review.css": "text/css", "review.js": "text/javascript"}
TOKEN_HEADER, TOKEN_COOKIE = "X-CSF-Token", "csf_token"


@dataclass(frozen=True)
class ReviewConfig:
    """What one review server serves: the ``store`` (folder or URI), an optional ``csf detect`` output
    folder, the ``reviewer`` name recorded with each decision, the access ``token`` (None on localhost) and
    the ``hosts`` a request's Host header may name (None: any; a server on localhost answers only to its
    own names, so a web page whose domain is made to resolve to 127.0.0.1 cannot reach it)."""

    store: str
    detections: str | None = None
    reviewer: str = "reviewer"
    token: str | None = None
    storage_options: dict | None = None
    hosts: tuple[str, ...] | None = None


class NotFound(CSFeaturesError):
    """A frame, picture or asset the request names does not exist (answered 404)."""


def create_app(config: ReviewConfig) -> FastAPI:
    """The review application over ``config.store`` (opened once; the queue is built here).

    Raises:
        StoreError: the store is missing or empty. InputError: the detections folder has no detections.json.
    """
    store = FeatureStore(config.store, storage_options=config.storage_options)
    queue = ReviewQueue(store)
    if config.detections:
        queue = ReviewQueue(store, load_detections(Path(config.detections), list(queue.frames.values())))
    static = {name: (resources.files("cs_features.review") / "static" / name).read_bytes() for name in STATIC_TYPES}
    app = FastAPI(title="cs_features review", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.queue, app.state.config = queue, config
    _add_error_handlers(app)
    if config.token:
        _add_token_check(app, config.token)
    if config.hosts:
        from starlette.middleware.trustedhost import TrustedHostMiddleware

        app.add_middleware(TrustedHostMiddleware, allowed_hosts=list(config.hosts))
    _add_pages(app, queue, config)
    _add_pictures(app, queue)
    _add_api(app, queue, config)

    @app.get("/static/{name}")
    def asset(name: str) -> Response:
        if name not in static:
            raise NotFound(f"no asset {name!r}; assets: {', '.join(sorted(static))}")
        return Response(static[name], media_type=STATIC_TYPES[name], headers={"Cache-Control": "max-age=3600"})

    return app


def checked_frame(queue: ReviewQueue, frame_id: str) -> dict:
    """The stored row of a frame id from a request (404 for anything that is not a stored frame's id)."""
    if not FRAME_ID.fullmatch(frame_id) or frame_id not in queue.frames:
        raise NotFound(f"no frame {frame_id[:64]!r} in this store (frame ids are 16 hex digits)")
    return queue.frames[frame_id]


def decision_from_payload(payload: dict, frame: dict, reviewer: str) -> Decision:
    """The checked :class:`Decision` a POSTed JSON object describes, about the stored ``frame``.

    Raises:
        InputError: an unknown verdict, a box that is not four numbers inside the frame, a malformed
            proposal id (see :func:`validate_decision` for the rest).
    """
    verdict = str(payload.get("verdict", ""))
    if verdict not in VERDICTS:
        raise InputError(f"verdict {verdict[:32]!r} is not one of {', '.join(VERDICTS)}")
    box = payload.get("box")
    if box is not None and (not isinstance(box, list) or not all(isinstance(v, (int, float)) for v in box)):
        raise InputError(f"box must be a list of four numbers [x1, y1, x2, y2], got {str(box)[:64]}")
    proposal = payload.get("proposal_id")
    if proposal is not None and not (isinstance(proposal, str) and FRAME_ID.fullmatch(proposal)):
        raise InputError(f"proposal_id must be 16 hex digits, got {str(proposal)[:64]!r}")
    score = payload.get("score")
    decision = Decision(frame["frame_id"], verdict, str(payload.get("reviewer") or reviewer)[:64],
                        tuple(round(v) for v in box) if box is not None else None, proposal,
                        float(score) if isinstance(score, (int, float)) else None)
    return validate_decision(decision, frame["width"], frame["height"])


def _filters(sort: str, split: str, embryo: str, verdict: str) -> dict:
    return {"sort": sort, "split": split, "embryo": embryo, "verdict": verdict}


def _add_pages(app: FastAPI, queue: ReviewQueue, config: ReviewConfig) -> None:
    @app.get("/", include_in_schema=False)
    def root() -> RedirectResponse:
        return RedirectResponse("/queue", status_code=303)

    @app.get("/queue", response_class=HTMLResponse)
    def queue_page(sort: str = "priority", split: str = "", embryo: str = "", verdict: str = "all",
                   page: int = Query(1, ge=1)) -> HTMLResponse:
        filters = _filters(sort, split, embryo, verdict)
        return HTMLResponse(render("queue.html", queue_context(queue, config, filters, page, PAGE_SIZE)))

    @app.get("/frame/{frame_id}", response_class=HTMLResponse)
    def frame_page(frame_id: str, sort: str = "priority", split: str = "", embryo: str = "",
                   verdict: str = "all") -> HTMLResponse:
        checked_frame(queue, frame_id)
        return HTMLResponse(render("frame.html", frame_context(queue, config, frame_id,
                                                              _filters(sort, split, embryo, verdict))))


def _add_pictures(app: FastAPI, queue: ReviewQueue) -> None:
    from cs_features.io import decode_png

    cache: dict[str, bytes] = {}

    def picture(frame_id: str) -> bytes:
        checked_frame(queue, frame_id)
        if frame_id not in cache:
            if len(cache) >= 64:
                cache.pop(next(iter(cache)))
            cache[frame_id] = frame_png(queue.store, frame_id)
        return cache[frame_id]

    @app.get("/img/frame/{frame_id}.png")
    def frame_image(frame_id: str) -> Response:
        return Response(picture(frame_id), media_type="image/png", headers={"Cache-Control": "max-age=3600"})

    @app.get("/img/crop/{frame_id}.png")
    def crop_image(frame_id: str, box: str = Query(..., max_length=64)) -> Response:
        png = crop_png(decode_png(picture(frame_id)), parse_box(box))
        return Response(png, media_type="image/png", headers={"Cache-Control": "max-age=3600"})

    @app.get("/img/errormap/{frame_id}.png")
    def error_map_image(frame_id: str) -> Response:
        checked_frame(queue, frame_id)
        if queue.ae_model is None:
            raise NotFound("this store has no error maps: run `csf score ae` on it first")
        try:
            png = error_map_png(queue.store, frame_id, queue.ae_model)
        except StoreError as exc:
            raise NotFound(str(exc)) from exc
        return Response(png, media_type="image/png", headers={"Cache-Control": "max-age=3600"})


def _add_api(app: FastAPI, queue: ReviewQueue, config: ReviewConfig) -> None:
    from cs_features.review.neighbours import neighbours_of

    @app.get("/api/frame/{frame_id}")
    def frame_state(frame_id: str) -> dict:
        checked_frame(queue, frame_id)
        item = queue.items[frame_id]
        return {"frame_id": frame_id, "boxes": queue.frame_boxes(frame_id), "cs_free": item.cs_free,
                "decisions": item.decisions}

    @app.get("/api/neighbours/{frame_id}")
    def neighbours(frame_id: str, box: str = Query(..., max_length=64), proposal_id: str | None = None,
                   k: int = Query(8, ge=1, le=32)) -> dict:
        frame = checked_frame(queue, frame_id)
        if proposal_id is not None and not FRAME_ID.fullmatch(proposal_id):
            raise InputError(f"proposal_id must be 16 hex digits, got {proposal_id[:64]!r}")
        parsed = validate_decision(Decision(frame_id, "accept", "-", tuple(parse_box(box))), frame["width"],
                                   frame["height"]).box
        return neighbours_of(queue.store, frame_id, list(parsed), proposal_id, k)

    @app.post("/api/decisions", status_code=201)
    def decide(payload: Annotated[dict, Body()]) -> dict:
        frame = checked_frame(queue, str(payload.get("frame_id", "")))
        decision = decision_from_payload(payload, frame, config.reviewer)
        rows = append_decisions(queue.store, [decision], queue.frames)
        queue.refresh([frame["frame_id"]])
        return {"annotation_id": rows[0]["annotation_id"], "verdict": decision.verdict, "frame_id": frame["frame_id"],
                "box": rows[0]["box"], "boxes": queue.frame_boxes(frame["frame_id"])}

    @app.get("/api/annotations")
    def annotations(frame_id: str | None = None) -> dict:
        if frame_id is not None:
            checked_frame(queue, frame_id)
        rows = read_annotations(queue.store, frame_id).to_pylist()
        for row in rows:
            row["time"] = row["time"].isoformat()
        return {"rows": rows}


def _add_error_handlers(app: FastAPI) -> None:
    def answer(status: int, message: str) -> JSONResponse:
        return JSONResponse({"error": message}, status_code=status)

    @app.exception_handler(NotFound)
    def not_found(request: Request, exc: NotFound) -> JSONResponse:
        return answer(404, str(exc))

    @app.exception_handler(CSFeaturesError)
    def library_error(request: Request, exc: CSFeaturesError) -> JSONResponse:
        return answer(400, str(exc))

    @app.exception_handler(RequestValidationError)
    def bad_request(request: Request, exc: RequestValidationError) -> JSONResponse:
        where = "; ".join(f"{'.'.join(str(p) for p in e.get('loc', ()))}: {e.get('msg')}" for e in exc.errors())
        return answer(422, f"bad request: {where}")

    @app.exception_handler(StarletteHTTPException)
    def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return answer(exc.status_code, str(exc.detail))

    @app.exception_handler(Exception)
    def unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("review request %s failed", request.url.path)
        return answer(500, f"internal error ({type(exc).__name__}); the server log has the details")


def _add_token_check(app: FastAPI, token: str) -> None:
    @app.middleware("http")
    async def require_token(request: Request, call_next):
        given_query = request.query_params.get("token")
        given = given_query or request.headers.get(TOKEN_HEADER) or request.cookies.get(TOKEN_COOKIE)
        if not given:
            return JSONResponse({"error": "this review server needs its access token: open the URL that "
                                          "`csf review` printed (it ends in ?token=...)"}, status_code=401)
        if not hmac.compare_digest(given.encode(), token.encode()):
            return JSONResponse({"error": "wrong access token"}, status_code=403)
        response = await call_next(request)
        if given_query:
            response.set_cookie(TOKEN_COOKIE, token, httponly=True, samesite="strict")
        return response
