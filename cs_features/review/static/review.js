/* cs_features review page: box selection, keyboard decisions, box drawing, nearest regions. Plain JS. */
(function () {
  "use strict";
  const SVG = "http://www.w3.org/2000/svg";

  function typing(event) {
    const tag = (event.target.tagName || "").toLowerCase();
    return tag === "input" || tag === "select" || tag === "textarea" || event.ctrlKey || event.metaKey || event.altKey;
  }

  /* ---------------------------------------------------------------- queue page */
  function queuePage() {
    const rows = Array.from(document.querySelectorAll("#queue tbody tr[data-href]"));
    let current = 0;
    function mark() {
      rows.forEach((row, i) => row.classList.toggle("selected", i === current));
      if (rows[current]) rows[current].scrollIntoView({block: "nearest"});
    }
    rows.forEach((row, i) => row.addEventListener("click", (e) => {
      if (e.target.tagName !== "A") { current = i; window.location = row.dataset.href; }
    }));
    document.addEventListener("keydown", (e) => {
      if (typing(e) || !rows.length) return;
      if (e.key === "j" || e.key === "ArrowDown") { current = Math.min(current + 1, rows.length - 1); mark(); e.preventDefault(); }
      else if (e.key === "k" || e.key === "ArrowUp") { current = Math.max(current - 1, 0); mark(); e.preventDefault(); }
      else if (e.key === "Enter") { window.location = rows[current].dataset.href; }
      else if (e.key === "n") { window.location = rows[0].dataset.href; }
    });
    mark();
  }

  /* ---------------------------------------------------------------- frame page */
  function framePage() {
    const data = JSON.parse(document.getElementById("frame-data").textContent);
    const canvas = document.getElementById("canvas");
    const overlay = document.getElementById("overlay");
    const table = document.querySelector("#boxes tbody");
    const status = document.getElementById("status");
    let boxes = data.boxes;
    let selected = firstUndecided();
    let adjusting = false;
    let neighbourTimer = null;

    function firstUndecided() {
      const i = boxes.findIndex((b) => b.kind === "detection" && !b.verdict);
      return i >= 0 ? i : (boxes.length ? 0 : -1);
    }
    function say(text, kind) { status.textContent = text; status.className = "status " + (kind || ""); }
    function boxClass(b) {
      if (b.verdict === "reject" || b.verdict === "cs_free") return "rej";
      if (b.verdict === "accept" || b.verdict === "draw") return "acc";
      return b.kind === "truth" ? "truth" : "det";
    }
    function el(name, attrs, text) {
      const node = document.createElementNS(SVG, name);
      Object.entries(attrs).forEach(([k, v]) => node.setAttribute(k, v));
      if (text !== undefined) node.textContent = text;
      return node;
    }
    function label(b, i) {  /* p rounded down, so a box under the threshold never reads as reaching it */
      const p = b.p === null || b.p === undefined ? "" : " p " + (Math.floor(b.p * 100) / 100).toFixed(2);
      return i === selected ? "#" + (i + 1) + p : String(i + 1);
    }

    function boxLabel(b, i, size) {
      const [x1, y1, x2] = b.box, inside = y1 < size;  /* a box at the top edge is labelled inside */
      return el("text", {x: i === selected ? x1 + 1 : Math.max(x2 - size * 0.7, x1 + 1), y: inside ? y1 + size : y1 - 2,
                         class: "boxlabel " + boxClass(b) + (i === selected ? " selected" : ""), "font-size": size}, label(b, i));
    }

    function render() {
      overlay.replaceChildren();
      const stroke = Math.max(1.5, data.width / 300), size = Math.max(7, data.width / 40);
      boxes.forEach((b, i) => {
        const [x1, y1, x2, y2] = b.box;
        const cls = "box " + boxClass(b) + (i === selected ? " selected" : "");
        overlay.appendChild(el("rect", {x: x1, y: y1, width: x2 - x1, height: y2 - y1, class: cls,
                                        "stroke-width": i === selected ? stroke * 2 : stroke, "data-index": i}));
      });
      boxes.forEach((b, i) => {  /* labels above every box, the selected one's last (on top) */
        if (i === selected) return;
        overlay.appendChild(boxLabel(b, i, size));
      });
      if (boxes[selected]) overlay.appendChild(boxLabel(boxes[selected], selected, size * 1.15));
      table.replaceChildren();
      boxes.forEach((b, i) => {
        const row = document.createElement("tr");
        row.className = (i === selected ? "selected " : "") + "k-" + boxClass(b);
        [String(i + 1), b.kind, b.p === null || b.p === undefined ? "–" : b.p.toFixed(3), b.box.join(","),
         b.verdict ? b.verdict + (b.reviewer ? " (" + b.reviewer + ")" : "") : "–"].forEach((text) => {
          const cell = document.createElement("td"); cell.textContent = text; row.appendChild(cell);
        });
        row.addEventListener("click", () => select(i));
        table.appendChild(row);
      });
      canvas.classList.toggle("adjusting", adjusting);
    }

    function select(i) {
      if (i < 0 || i >= boxes.length) return;
      selected = i; render();
      clearTimeout(neighbourTimer);
      neighbourTimer = setTimeout(() => loadNeighbours(boxes[i]), 150);
    }

    async function post(payload) {
      const response = await fetch("/api/decisions", {method: "POST", headers: {"Content-Type": "application/json"},
                                                      body: JSON.stringify(Object.assign({frame_id: data.frame_id}, payload))});
      const body = await response.json();
      if (!response.ok) throw new Error(body.error || response.statusText);
      boxes = body.boxes;
      return body;
    }

    async function decide(verdict) {
      const b = boxes[selected];
      if (!b) { say("No box selected: drag on the frame to draw one.", "warn"); return; }
      try {
        await post({verdict: verdict, box: b.box, proposal_id: b.proposal_id || null, score: b.p});
        say((verdict === "accept" ? "Accepted" : "Rejected") + " box #" + (selected + 1) + ".", "ok");
        const next = boxes.findIndex((x) => x.kind === "detection" && !x.verdict);
        if (next >= 0) select(next); else { render(); say("Every detection of this frame is decided: n for the next frame.", "ok"); }
      } catch (err) { say("Not saved: " + err.message, "error"); }
    }

    async function markFree() {
      try { await post({verdict: "cs_free"}); render(); say("Frame marked CS-free.", "ok"); }
      catch (err) { say("Not saved: " + err.message, "error"); }
    }

    async function draw(box) {
      const original = adjusting ? boxes[selected] : null;
      try {
        const body = await post({verdict: "draw", box: box, proposal_id: original ? (original.proposal_id || original.key) : null});
        adjusting = false;
        const i = boxes.findIndex((b) => b.box.join(",") === body.box.join(","));
        say((original ? "Adjusted box #" + (selected + 1) : "Drew a string box") + " [" + body.box.join(", ") + "].", "ok");
        select(i >= 0 ? i : selected);
      } catch (err) { say("Not saved: " + err.message, "error"); }
    }

    /* drawing: drag on the frame; a click without a drag selects the box under the pointer */
    function framePoint(e) {
      const r = canvas.getBoundingClientRect();
      return [Math.min(Math.max((e.clientX - r.left) * data.width / r.width, 0), data.width),
              Math.min(Math.max((e.clientY - r.top) * data.height / r.height, 0), data.height)];
    }
    let start = null, ghost = null;
    canvas.addEventListener("mousedown", (e) => {
      if (e.button !== 0) return;
      start = framePoint(e); e.preventDefault();
      ghost = el("rect", {class: "box ghost", x: start[0], y: start[1], width: 0, height: 0, "stroke-width": Math.max(1.5, data.width / 300)});
      overlay.appendChild(ghost);
    });
    window.addEventListener("mousemove", (e) => {
      if (!start) return;
      const p = framePoint(e);
      ghost.setAttribute("x", Math.min(start[0], p[0])); ghost.setAttribute("y", Math.min(start[1], p[1]));
      ghost.setAttribute("width", Math.abs(p[0] - start[0])); ghost.setAttribute("height", Math.abs(p[1] - start[1]));
    });
    window.addEventListener("mouseup", (e) => {
      if (!start) return;
      const p = framePoint(e), s = start;
      start = null; ghost.remove();
      const box = [Math.round(Math.min(s[0], p[0])), Math.round(Math.min(s[1], p[1])),
                   Math.round(Math.max(s[0], p[0])), Math.round(Math.max(s[1], p[1]))];
      if (box[2] - box[0] >= 3 && box[3] - box[1] >= 3) { draw(box); return; }
      const hits = boxes.map((b, i) => [i, b.box]).filter(([, b]) => p[0] >= b[0] && p[0] < b[2] && p[1] >= b[1] && p[1] < b[3])
        .sort((a, b) => (a[1][2] - a[1][0]) * (a[1][3] - a[1][1]) - (b[1][2] - b[1][0]) * (b[1][3] - b[1][1]));
      if (hits.length) select(hits[0][0]);
    });

    async function loadNeighbours(b) {
      const box = document.getElementById("neighbours"), vote = document.getElementById("vote");
      box.innerHTML = '<p class="muted">Searching…</p>'; vote.textContent = "";
      const query = new URLSearchParams({box: b.box.join(",")});
      if (b.proposal_id) query.set("proposal_id", b.proposal_id);
      try {
        const response = await fetch("/api/neighbours/" + data.frame_id + "?" + query);
        const body = await response.json();
        if (!response.ok) throw new Error(body.error || response.statusText);
        box.replaceChildren();
        if (body.cs_vote !== null) {
          vote.textContent = "CS vote " + body.cs_vote.toFixed(2);
          vote.className = "vote " + (body.cs_vote >= 0.5 ? "cs" : "nocs");
        }
        if (!body.neighbours.length) box.innerHTML = '<p class="muted">No labelled regions in other frames.</p>';
        body.neighbours.forEach((n) => {
          const card = document.createElement("a");
          card.href = "/frame/" + n.frame_id; card.className = "crop " + (n.label === "CS" ? "cs" : "nocs");
          card.title = n.stem + " box " + n.box.join(",");
          const img = document.createElement("img");
          img.src = "/img/crop/" + n.frame_id + ".png?box=" + n.box.join(","); img.alt = n.label; img.loading = "lazy";
          const caption = document.createElement("span");
          caption.innerHTML = "<b></b><br><small></small>";
          caption.querySelector("b").textContent = n.label + " · d " + n.distance.toFixed(3);
          const named = n.embryo_id && !n.stem.startsWith(n.embryo_id);  // a stem that names its embryo says it once
          caption.querySelector("small").textContent = named ? n.embryo_id + " · " + n.stem : n.stem;
          card.append(img, caption); box.appendChild(card);
        });
      } catch (err) { box.innerHTML = ""; const p = document.createElement("p"); p.className = "error"; p.textContent = err.message; box.appendChild(p); }
    }

    document.getElementById("accept").addEventListener("click", () => decide("accept"));
    document.getElementById("reject").addEventListener("click", () => decide("reject"));
    document.getElementById("csfree").addEventListener("click", markFree);
    document.getElementById("adjust").addEventListener("click", () => { adjusting = !adjusting; render(); say(adjusting ? "Drag the new box for #" + (selected + 1) + " (Esc cancels)." : ""); });
    document.addEventListener("keydown", (e) => {
      if (typing(e)) return;
      const key = e.key;
      if (key === "a") decide("accept");
      else if (key === "r") decide("reject");
      else if (key === "f") markFree();
      else if (key === "n") window.location = data.next_url;
      else if (key === "e") document.getElementById("adjust").click();
      else if (key === "Escape") { adjusting = false; render(); say(""); }
      else if (key === "j" || key === "ArrowDown" || key === "Tab") select((selected + 1) % Math.max(boxes.length, 1));
      else if (key === "k" || key === "ArrowUp") select((selected - 1 + boxes.length) % Math.max(boxes.length, 1));
      else return;
      e.preventDefault();
    });
    render();
    if (selected >= 0) select(selected);
  }

  if (document.getElementById("frame-data")) framePage();
  else if (document.getElementById("queue")) queuePage();
})();
