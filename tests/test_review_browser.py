"""The review page in a real browser (Chromium through Playwright): open the queue, accept one box and reject
another with the keyboard, draw a box with the mouse, and find the decisions as rows of ``annotations``."""

from __future__ import annotations

import socket
import threading
import time

import pytest
from conftest import chromium_executable
from review_helpers import store_copy, write_detections

from cs_features.review import read_annotations
from cs_features.store import FeatureStore

pytestmark = pytest.mark.browser


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def server(tiny_store, tmp_path_factory):
    """The review app over a copy of the tiny store with detections, served by uvicorn in a thread."""
    uvicorn = pytest.importorskip("uvicorn")
    from cs_features.review.app import ReviewConfig, create_app

    root = tmp_path_factory.mktemp("review_browser")
    path = store_copy(tiny_store, root)
    write_detections(path, root / "detect")
    app = create_app(ReviewConfig(str(path), str(root / "detect"), reviewer="ana"))
    port = free_port()
    runner = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=runner.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not runner.started:
        assert time.monotonic() < deadline, "the review server did not start within 20 s"
        time.sleep(0.05)
    yield {"url": f"http://127.0.0.1:{port}", "path": path, "queue": app.state.queue}
    runner.should_exit = True
    thread.join(timeout=10)


@pytest.fixture(scope="module")
def page(server):
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium_executable())
        tab = browser.new_page(viewport={"width": 1400, "height": 950})
        yield tab
        browser.close()


def test_keyboard_and_mouse_decisions_land_in_the_annotations_table(server, page):
    queue = server["queue"]
    first = queue.ordered()[0]
    page.goto(server["url"] + "/queue")
    rows = page.locator("#queue tbody tr[data-href]")
    assert rows.count() == len(queue.frames)
    assert rows.first.locator("td").nth(1).inner_text() == first.stem
    page.keyboard.press("Enter")
    page.wait_for_url(f"**/frame/{first.frame_id}")
    page.wait_for_selector("#boxes tbody tr")
    boxes = queue.frame_boxes(first.frame_id)
    detections = [b for b in boxes if b["kind"] == "detection"]
    assert page.locator("#overlay rect.box").count() == len(boxes)
    page.wait_for_selector("#neighbours a.crop small")  # the selected box's nearest regions, each named once
    captions = page.locator("#neighbours a.crop small").all_inner_texts()
    assert captions and all(c.startswith("E0") and " · " not in c for c in captions), captions

    page.keyboard.press("a")  # the first undecided detection is selected on arrival
    page.wait_for_function("document.getElementById('status').textContent.startsWith('Accepted box #1')")
    page.keyboard.press("r")  # the selection moved on to the next undecided detection
    page.wait_for_function("document.getElementById('status').textContent.startsWith('Rejected box #2')")

    canvas = page.locator("#canvas").bounding_box()
    width, height = queue.frames[first.frame_id]["width"], queue.frames[first.frame_id]["height"]
    start, end = (0.30, 0.35), (0.62, 0.55)
    page.mouse.move(canvas["x"] + start[0] * canvas["width"], canvas["y"] + start[1] * canvas["height"])
    page.mouse.down()
    page.mouse.move(canvas["x"] + 0.5 * canvas["width"], canvas["y"] + 0.5 * canvas["height"], steps=4)
    page.mouse.move(canvas["x"] + end[0] * canvas["width"], canvas["y"] + end[1] * canvas["height"], steps=4)
    page.mouse.up()
    page.wait_for_function("document.getElementById('status').textContent.startsWith('Drew a string box')")
    assert page.locator("#overlay rect.box.acc").count() == 2  # the accepted and the drawn box

    rows = read_annotations(FeatureStore(str(server["path"])), first.frame_id).to_pylist()
    assert [(r["verdict"], r["proposal_id"], r["reviewer"]) for r in rows] == [
        ("accept", detections[0]["proposal_id"], "ana"), ("reject", detections[1]["proposal_id"], "ana"),
        ("draw", None, "ana")]
    assert rows[0]["box"] == detections[0]["box"] and rows[1]["box"] == detections[1]["box"]
    expected = [start[0] * width, start[1] * height, end[0] * width, end[1] * height]
    assert all(abs(got - want) <= 2 for got, want in zip(rows[2]["box"], expected)), (rows[2]["box"], expected)

    page.keyboard.press("n")  # next: the first frame nobody decided on
    following = queue.next_frame(first.frame_id)
    page.wait_for_url(f"**/frame/{following}")
    assert following != first.frame_id and not queue.items[following].reviewed


def test_queue_filters_show_only_the_chosen_split_and_reviewed_frames(server, page):
    page.goto(server["url"] + "/queue?split=val")
    stems = page.locator("#queue tbody tr[data-href] td:nth-child(2)").all_inner_texts()
    assert sorted(stems) == sorted(i.stem for i in server["queue"].ordered(split="val"))
    page.goto(server["url"] + "/queue?verdict=reviewed")
    reviewed = page.locator("#queue tbody tr[data-href]")
    assert reviewed.count() == sum(1 for i in server["queue"].items.values() if i.reviewed)
