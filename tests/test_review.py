"""csf review without a browser: the annotations table, the truth after review, the queue, the JSON API and
its refusals (4xx, path traversal, the access token), export, and training reading the reviews."""

from __future__ import annotations

import json

import numpy as np
import pytest
from review_helpers import store_copy, write_detections

from cs_features.errors import InputError
from cs_features.heads.data import load_frames, load_labelled, load_proposals, load_reviews
from cs_features.heads.training import train_head
from cs_features.ids import proposal_id
from cs_features.proposals.weak_labels import weak_labels
from cs_features.review import Decision, append_decisions, read_annotations, replay
from cs_features.store import ANNOTATIONS, FRAMES, FeatureStore, proposals_table_name
from cs_features.store.admin import history_runs, store_history, tag_store

fastapi = pytest.importorskip("fastapi")
from fastapi.testclient import TestClient  # noqa: E402

from cs_features.review.app import ReviewConfig, create_app  # noqa: E402
from cs_features.review.serve import needs_token, review_url  # noqa: E402


@pytest.fixture(scope="module")
def served(tiny_store, tmp_path_factory):
    """A copy of the tiny store with detections, its review app and a test client (module-wide: tests add rows)."""
    root = tmp_path_factory.mktemp("review")
    path = store_copy(tiny_store, root)
    boxes = write_detections(path, root / "detect")
    app = create_app(ReviewConfig(str(path), str(root / "detect"), reviewer="ana"))
    return {"path": path, "app": app, "client": TestClient(app), "boxes": boxes, "queue": app.state.queue}


def frames_of(store: FeatureStore) -> dict[str, dict]:
    rows = store.read(FRAMES, ["frame_id", "stem", "split", "label", "embryo_id", "has_gt", "gt_boxes", "width",
                               "height"]).to_pylist()
    return {row["frame_id"]: row for row in rows}


# ---- the truth after review ------------------------------------------------------------------------------
def test_replay_latest_decision_wins_and_cs_free_clears_what_came_before():
    gt = np.array([[10, 10, 30, 30]], np.int32)
    rows = [{"verdict": "accept", "box": [40, 40, 60, 60], "proposal_id": None},
            {"verdict": "reject", "box": [10, 10, 30, 30], "proposal_id": None},
            {"verdict": "accept", "box": [10, 10, 30, 30], "proposal_id": proposal_id("f", [10, 10, 30, 30])}]
    truth = replay("f", rows, gt)
    assert sorted(map(tuple, truth.strings.tolist())) == [(10, 10, 30, 30), (40, 40, 60, 60)]
    assert len(truth.rejected) == 0 and truth.label == "abnormal"
    cleared = replay("f", rows + [{"verdict": "cs_free", "box": None, "proposal_id": None}], gt)
    assert cleared.cs_free and cleared.label == "normal" and cleared.strings.shape == (0, 4)
    again = replay("f", rows + [{"verdict": "cs_free", "box": None, "proposal_id": None},
                                {"verdict": "draw", "box": [1, 2, 9, 9], "proposal_id": None}], gt)
    assert not again.cs_free and again.strings.tolist() == [[1, 2, 9, 9]]


def test_replay_adjusted_box_replaces_its_proposal_and_rejections_alone_leave_truth_unknown():
    original = [5, 5, 25, 25]
    key = proposal_id("f", original)
    adjusted = replay("f", [{"verdict": "draw", "box": [6, 6, 28, 28], "proposal_id": key}], None)
    assert adjusted.strings.tolist() == [[6, 6, 28, 28]]
    rejected = replay("f", [{"verdict": "reject", "box": original, "proposal_id": key}], None)
    assert rejected.strings is None and rejected.label is None and rejected.rejected.tolist() == [original]


def test_decisions_are_appended_never_overwritten_and_history_names_csf_review(tiny_store, tmp_path):
    path = store_copy(tiny_store, tmp_path)
    store = FeatureStore(str(path))
    frames = frames_of(store)
    frame_id = sorted(frames)[0]
    same = Decision(frame_id, "accept", "ana", (1, 1, 20, 20))
    append_decisions(store, [same], frames)
    append_decisions(store, [same, Decision(frame_id, "cs_free", "ben")], frames)
    rows = read_annotations(store).to_pylist()
    assert [r["verdict"] for r in rows] == ["accept", "accept", "cs_free"]
    assert len({r["annotation_id"] for r in rows}) == 3
    assert rows[0]["stem"] == frames[frame_id]["stem"] and rows[2]["box"] is None and rows[2]["reviewer"] == "ben"
    assert store.table(ANNOTATIONS).version == 3  # create + two appends
    runs = [r for r in history_runs(store_history(store)) if r["table"] == ANNOTATIONS]
    assert runs and runs[0]["made_by"] == "csf review" and runs[-1]["rows_after"] == 3
    with pytest.raises(InputError, match="no frame 'ffffffffffffffff'"):
        append_decisions(store, [Decision("ffffffffffffffff", "cs_free", "ana")], frames)


# ---- training reads the reviews --------------------------------------------------------------------------
def test_head_training_rows_follow_the_reviews(tiny_store, tmp_path):
    path = store_copy(tiny_store, tmp_path)
    store = FeatureStore(str(path))
    frames = frames_of(store)
    before = load_labelled(store, "classic")["train"]
    train = [f for f in frames.values() if f["split"] == "train"]
    cs_frame = next(f for f in train if f["label"] == "abnormal" and f["gt_boxes"])
    free_frame = next(f for f in train if f["label"] == "normal")
    table = proposals_table_name("classic")
    cs_rows = store.read(table, ["weak_label"], where=f"frame_id = '{cs_frame['frame_id']}'").column("weak_label")
    free_props = store.read(table, ["box", "weak_label", "proposal_id"], where=f"frame_id = '{free_frame['frame_id']}'")
    free_boxes = np.asarray(free_props.column("box").to_pylist(), np.int32)
    drawn = free_boxes[np.argsort((free_boxes[:, 2] - free_boxes[:, 0]) * (free_boxes[:, 3] - free_boxes[:, 1]))[0]]
    _, drawn_labels = weak_labels(free_boxes, drawn[None, :])
    tag_store(store, "before-review")
    append_decisions(store, [Decision(cs_frame["frame_id"], "cs_free", "ana"),
                             Decision(free_frame["frame_id"], "draw", "ana", tuple(int(v) for v in drawn))], frames)

    after = load_labelled(store, "classic")["train"]
    pinned = load_labelled(store, "classic", version="before-review")["train"]  # a tag from before the review
    assert (pinned.positives, len(pinned)) == (before.positives, len(before))
    tag_store(store, "after-review")
    assert load_labelled(store, "classic", version="after-review")["train"].positives == after.positives
    cs_positives = int((np.asarray(cs_rows.to_pylist()) == 1).sum())
    assert cs_positives > 0
    assert after.positives == before.positives - cs_positives + int((drawn_labels == 1).sum())
    cs_mask = after.frame_id == cs_frame["frame_id"]
    assert cs_mask.sum() == len(cs_rows) and (after.y[cs_mask] == 0).all()  # every proposal of it a negative now
    free_mask = after.frame_id == free_frame["frame_id"]
    assert sorted(after.y[free_mask].tolist()) == sorted(drawn_labels[drawn_labels >= 0].tolist())
    assert load_reviews(store)[cs_frame["frame_id"]].label == "normal"
    evaluated = {f["frame_id"]: f for f in load_frames(store, "train")}  # what evaluation reads
    cleared = evaluated[cs_frame["frame_id"]]
    assert cleared["label"] == "normal" and cleared["has_gt"] and len(cleared["gt_boxes"]) == 0
    assert evaluated[free_frame["frame_id"]]["gt_boxes"].tolist() == [drawn.tolist()]
    every = load_proposals(store, "classic", "train")
    assert (every.weak_label[every.frame_id == cs_frame["frame_id"]] == 0).all()

    result = train_head(store, "logreg", encoder="classic")
    assert result["rows"]["train"] == {"rows": len(after), "positives": after.positives}


def test_rejected_proposal_becomes_a_negative_and_the_string_map_sees_reviewed_truth(tiny_store, tmp_path):
    from cs_features.strings.data import frame_rows

    path = store_copy(tiny_store, tmp_path)
    store = FeatureStore(str(path))
    frames = frames_of(store)
    table = proposals_table_name("classic")
    positive = store.read(table, ["proposal_id", "frame_id", "box", "split"],
                          where="weak_label = 1 AND split = 'train'").to_pylist()[0]
    free_frame = next(f for f in frames.values() if f["label"] == "normal" and f["split"] == "train")
    append_decisions(store, [Decision(positive["frame_id"], "reject", "ana", tuple(positive["box"]),
                                      positive["proposal_id"]),
                             Decision(free_frame["frame_id"], "accept", "ana", (20, 20, 60, 40))], frames)
    labelled = load_labelled(store, "classic")["train"]
    rows = store.read(table, ["proposal_id"], where=f"frame_id = '{positive['frame_id']}' AND weak_label >= 0")
    # the rejected proposal's row is still there, now a negative (rows of its frame are relabelled in place)
    assert (labelled.frame_id == positive["frame_id"]).sum() >= rows.num_rows - 1
    strings_rows = {r["frame_id"]: r for r in frame_rows(store)}
    assert strings_rows[free_frame["frame_id"]]["label"] == "abnormal"
    assert strings_rows[free_frame["frame_id"]]["gt_boxes"] == [[20, 20, 60, 40]]
    relabelled = load_reviews(store)[positive["frame_id"]]
    assert relabelled.rejected.tolist() == [positive["box"]]


# ---- the queue and the API -------------------------------------------------------------------------------
def test_queue_puts_boxes_nearest_the_threshold_first_and_filters(served):
    queue = served["queue"]
    items = queue.ordered()
    margins = [i.margin for i in items if not i.reviewed]
    assert margins == sorted(margins) and margins[0] < 0.1
    assert queue.detections.unmatched == ["X9_f00"]
    assert {i.split for i in queue.ordered(split="val")} == {"val"}
    embryo = items[0].embryo_id
    assert [i.frame_index for i in queue.ordered(sort="embryo", embryo=embryo)] == sorted(
        i.frame_index for i in items if i.embryo_id == embryo)
    scores = [i.score for i in queue.ordered(sort="score")]
    assert scores == sorted(scores, reverse=True)
    times = [i.frame_index for i in queue.ordered(sort="time")]
    assert times == sorted(times)
    page = served["client"].get("/queue", params={"split": "val", "sort": "score"})
    assert page.status_code == 200 and page.text.count("<tr data-href=") == len(queue.ordered(split="val"))


def test_frame_page_and_decisions_through_the_api(served):
    client, queue = served["client"], served["queue"]
    frame_id = queue.ordered()[0].frame_id
    page = client.get(f"/frame/{frame_id}")
    assert page.status_code == 200 and queue.frames[frame_id]["stem"] in page.text and "<polyline" in page.text
    image = client.get(f"/img/frame/{frame_id}.png")
    assert image.status_code == 200 and image.content[:8] == b"\x89PNG\r\n\x1a\n"
    box = served["boxes"][frame_id][0]
    crop = client.get(f"/img/crop/{frame_id}.png", params={"box": ",".join(map(str, box["box"]))})
    assert crop.status_code == 200 and crop.content[:4] == b"\x89PNG"
    near = client.get(f"/api/neighbours/{frame_id}", params={"box": ",".join(map(str, box["box"])),
                                                              "proposal_id": box["proposal_id"]}).json()
    assert near["query"] == "proposal" and 0 < len(near["neighbours"]) <= 8
    assert all(n["frame_id"] != frame_id and n["label"] in ("CS", "no CS") for n in near["neighbours"])
    drawn = client.get(f"/api/neighbours/{frame_id}", params={"box": "30,30,71,52"}).json()
    assert drawn["query"] == "box" and drawn["neighbours"]
    # two tabs deciding on the same box: both land
    for _ in range(2):
        answer = client.post("/api/decisions", json={"frame_id": frame_id, "verdict": "accept", "box": box["box"],
                                                     "proposal_id": box["proposal_id"], "score": box["p"]})
        assert answer.status_code == 201
    rows = client.get("/api/annotations", params={"frame_id": frame_id}).json()["rows"]
    assert [(r["verdict"], r["reviewer"], r["proposal_id"]) for r in rows][-2:] == [
        ("accept", "ana", box["proposal_id"])] * 2
    # adjusting a detection: a drawn box naming its proposal replaces the detection's box
    second = served["boxes"][frame_id][1]
    moved = [second["box"][0] + 1, second["box"][1] + 1, second["box"][2] - 1, second["box"][3] - 1]
    answer = client.post("/api/decisions", json={"frame_id": frame_id, "verdict": "draw", "box": moved,
                                                 "proposal_id": second["proposal_id"]}).json()
    adjusted = next(b for b in answer["boxes"] if b["key"] == second["proposal_id"])
    assert adjusted["box"] == moved and adjusted["verdict"] == "draw" and adjusted["kind"] == "detection"
    assert queue.items[frame_id].reviewed and queue.ordered()[-1].reviewed


def test_simultaneous_decisions_on_one_box_all_land(served):
    from concurrent.futures import ThreadPoolExecutor

    client, queue = served["client"], served["queue"]
    frame_id = queue.ordered(sort="embryo")[-1].frame_id
    box = served["boxes"][frame_id][0]
    payload = {"frame_id": frame_id, "box": box["box"], "proposal_id": box["proposal_id"]}
    verdicts = ["accept", "reject"] * 3
    with ThreadPoolExecutor(max_workers=6) as pool:
        answers = list(pool.map(lambda v: client.post("/api/decisions", json={**payload, "verdict": v}), verdicts))
    assert [a.status_code for a in answers] == [201] * 6
    rows = read_annotations(FeatureStore(str(served["path"])), frame_id).to_pylist()
    assert sorted(r["verdict"] for r in rows) == sorted(verdicts)
    assert len({r["annotation_id"] for r in rows}) == 6


@pytest.mark.parametrize(("method", "url", "body", "status", "message"), [
    ("get", "/frame/0123", None, 404, "no frame '0123'"),
    ("get", "/img/frame/..%2F..%2Fetc%2Fpasswd.png", None, 404, "Not Found"),
    ("get", "/img/frame/..%2e%2e%5cwin.ini.png", None, 404, "no frame"),
    ("get", "/img/frame/....//....//etc/passwd", None, 404, "Not Found"),
    ("get", "/static/..%2Fapp.py", None, 404, "Not Found"),
    ("get", "/static/app.py", None, 404, "no asset 'app.py'"),
    ("get", "/static/%2e%2e", None, 404, "no asset"),
    ("get", "/queue?sort=colour", None, 400, "sort 'colour' is not one of"),
    ("get", "/queue?page=0", None, 422, "page"),
    ("post", "/api/decisions", {"frame_id": "../../etc/passwd", "verdict": "accept"}, 404, "no frame"),
    ("post", "/api/decisions", {"verdict": "accept"}, 404, "no frame ''"),
])
def test_bad_requests_get_4xx_with_a_message_never_a_traceback(served, method, url, body, status, message):
    answer = getattr(served["client"], method)(url, **({"json": body} if body is not None else {}))
    assert answer.status_code == status
    assert message in answer.json()["error"] and "Traceback" not in answer.text


def test_bad_decisions_are_refused_and_write_nothing(served):
    client, queue = served["client"], served["queue"]
    frame_id = sorted(queue.frames)[1]
    width = queue.frames[frame_id]["width"]
    before = len(client.get("/api/annotations").json()["rows"])
    cases = [({"verdict": "maybe"}, "verdict 'maybe' is not one of"),
             ({"verdict": "accept"}, "needs a box"),
             ({"verdict": "draw", "box": [5, 5, width + 5, 20]}, "outside the"),
             ({"verdict": "draw", "box": [5, 5, 5, 20]}, "empty"),
             ({"verdict": "draw", "box": "1,2,3,4"}, "list of four numbers"),
             ({"verdict": "cs_free", "box": [1, 1, 4, 4]}, "takes no box"),
             ({"verdict": "accept", "box": [1, 1, 4, 4], "proposal_id": "x'; drop"}, "16 hex digits")]
    for payload, message in cases:
        answer = client.post("/api/decisions", json={"frame_id": frame_id, **payload})
        assert answer.status_code == 400 and message in answer.json()["error"], payload
    assert client.post("/api/decisions", content=b"{not json", headers={"Content-Type": "application/json"}
                       ).status_code == 422
    assert client.get(f"/img/crop/{frame_id}.png", params={"box": "1,2,3"}).json()["error"].startswith("box must be")
    assert "run `csf score ae`" in client.get(f"/img/errormap/{frame_id}.png").json()["error"]
    assert len(client.get("/api/annotations").json()["rows"]) == before


def test_on_localhost_only_requests_naming_a_loopback_host_are_answered(served):
    from cs_features.review.serve import allowed_hosts

    app = create_app(ReviewConfig(str(served["path"]), reviewer="ana", hosts=allowed_hosts("127.0.0.1")))
    assert TestClient(app, base_url="http://127.0.0.1:8765").get("/queue").status_code == 200
    assert TestClient(app, base_url="http://localhost:8765").get("/queue").status_code == 200
    rebound = TestClient(app, base_url="http://attacker.example:8765").get("/queue")
    assert rebound.status_code == 400 and "Invalid host header" in rebound.text
    assert allowed_hosts("0.0.0.0") is None


def test_beyond_localhost_every_request_needs_the_token(served):
    assert not needs_token("127.0.0.1") and needs_token("0.0.0.0")
    assert review_url("0.0.0.0", 8765, "abc") == "http://0.0.0.0:8765/queue?token=abc"
    app = create_app(ReviewConfig(str(served["path"]), reviewer="ana", token="s3cret-token"))
    client = TestClient(app)
    frame_id = sorted(app.state.queue.frames)[0]
    missing = client.get("/queue")
    assert missing.status_code == 401 and "?token=" in missing.json()["error"]
    assert client.get(f"/img/frame/{frame_id}.png").status_code == 401
    assert client.post("/api/decisions", json={"frame_id": frame_id, "verdict": "cs_free"}).status_code == 401
    assert client.get("/queue", params={"token": "wrong"}).status_code == 403
    assert client.get("/queue", headers={"X-CSF-Token": "s3cret-token"}).status_code == 200
    opened = client.get("/queue", params={"token": "s3cret-token"})  # the printed URL; the cookie carries it on
    assert opened.status_code == 200 and client.get(f"/img/frame/{frame_id}.png").status_code == 200
    # without --detections: the stored truth is what there is to review
    truth = client.get(f"/api/frame/{frame_id}").json()["boxes"]
    assert {b["kind"] for b in truth} <= {"truth", "drawn"}
    assert client.get(f"/frame/{frame_id}").status_code == 200


def test_export_writes_yolo_labels_and_coco(tiny_store, tmp_path):
    from typer.testing import CliRunner

    from cli.main import app as cli

    path = store_copy(tiny_store, tmp_path)
    store = FeatureStore(str(path))
    frames = frames_of(store)
    runner = CliRunner()
    empty = runner.invoke(cli, ["review", "export", "--store", str(path), "--out", str(tmp_path / "none")])
    assert empty.exit_code == 1 and "no review decisions yet" in empty.output
    normal = next(f for f in frames.values() if f["label"] == "normal")
    cs = next(f for f in frames.values() if f["label"] == "abnormal" and f["gt_boxes"])
    append_decisions(store, [Decision(normal["frame_id"], "draw", "ana", (0, 0, 96, 48)),
                             Decision(cs["frame_id"], "cs_free", "ana")], frames)
    result = runner.invoke(cli, ["review", "export", "--store", str(path), "--out", str(tmp_path / "out"), "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output)
    assert summary["frames"] == 2 and summary["cs_free"] == 1 and summary["boxes"] == 1
    w, h = normal["width"], normal["height"]
    line = (tmp_path / "out" / "labels" / f"{normal['stem']}.txt").read_text().split()
    assert line[0] == "0" and np.allclose([float(v) for v in line[1:]], [48 / w, 24 / h, 96 / w, 48 / h], atol=1e-6)
    assert (tmp_path / "out" / "labels" / f"{cs['stem']}.txt").read_text() == ""
    coco = json.loads((tmp_path / "out" / "reviewed_coco.json").read_text())
    assert [a["bbox"] for a in coco["annotations"]] == [[0, 0, 96, 48]]
    assert {i["frame_id"] for i in coco["images"]} == {normal["frame_id"], cs["frame_id"]}

    # two reviewed frames with one stem (EmbryoScope repeats file names per embryo folder): both kept
    store.table(FRAMES).update(where=f"frame_id = '{cs['frame_id']}'", values={"stem": normal["stem"]})
    result = runner.invoke(cli, ["review", "export", "--store", str(path), "--out", str(tmp_path / "same"), "--json"])
    assert result.exit_code == 0, result.output
    written = sorted(p.name for p in (tmp_path / "same" / "labels").iterdir())
    assert written == sorted(f"{normal['stem']}__{f}.txt" for f in (normal["frame_id"], cs["frame_id"]))
    assert (tmp_path / "same" / "labels" / f"{normal['stem']}__{cs['frame_id']}.txt").read_text() == ""
    coco = json.loads((tmp_path / "same" / "reviewed_coco.json").read_text())
    assert {i["label_file"] for i in coco["images"]} == {f"labels/{name}" for name in written}


def test_csf_review_serves_and_beyond_localhost_refuses_requests_without_the_printed_token(served, tmp_path):
    import os
    import socket
    import subprocess
    import sys
    import time

    import httpx

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    command = [sys.executable, "-m", "cli.main", "review", "--store", str(served["path"]), "--host", "0.0.0.0",
               "--port", str(port), "--reviewer", "ana"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                               env={**os.environ, "COLUMNS": "200"})
    try:
        lines = []
        while not any("token=" in line for line in lines):
            line = process.stdout.readline()
            assert line, f"csf review ended early: {''.join(lines)}"
            lines.append(line)
        url = next(line for line in lines if "token=" in line).split()[1]
        assert url.startswith(f"http://0.0.0.0:{port}/queue?token=")
        token = url.split("token=")[1]
        local = f"http://127.0.0.1:{port}"
        for _ in range(100):  # the URL is printed just before uvicorn binds
            try:
                answer = httpx.get(local + "/queue")
                break
            except httpx.TransportError:
                time.sleep(0.1)
        assert answer.status_code == 401
        assert httpx.get(local + "/queue", params={"token": token[:-1]}).status_code == 403
        page = httpx.get(local + "/queue", params={"token": token})
        assert page.status_code == 200 and "cs_features review" in page.text
    finally:
        process.terminate()
        process.wait(timeout=20)
