// roomevents dashboard (docs/dashboard.md). Plain JS, no dependencies, nothing loaded from elsewhere.
//
// It follows GET /v1/Streams/Rooms (Server-Sent Events) and keeps the latest document of every room
// in progress and of the most recently ended ones. Received documents are coalesced per room and
// applied in animation frames, a few milliseconds of work per frame, so a snapshot of thousands of
// rooms or a burst of changes never blocks the tab; the tables render one page of rows, updating
// only the cells that changed. The browser's EventSource reconnects by itself and sends the last
// position as Last-Event-ID; if it gives up (an HTTP error), a new one resumes from that position.
"use strict";

(function () {
  const STREAM_URL = "v1/Streams/Rooms?RecentlyEnded=100";
  const PAGE_SIZE = 100;           // rows of rooms in progress rendered at once
  const ENDED_MAX = 100;           // ended rooms kept and shown, latest first
  const HISTORY_S = 300;           // seconds of chart history
  const FRAME_BUDGET_MS = 8;       // work per animation frame applying documents
  const RETRY_MAX_MS = 15000;
  const HIDDEN_FAILURE = "unique-name-taken";  // creates answered 53113: never rooms for clients

  const $ = (id) => document.getElementById(id);
  const el = (tag, cls, text) => {
    const e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined) e.textContent = text;
    return e;
  };
  const setText = (e, text) => { if (e.textContent !== text) e.textContent = text; };
  const fmtInt = (n) => n.toLocaleString("en-US");

  // ------------------------------------------------------------------ ordered sets of room SIDs

  // SIDs ordered by a numeric key, then SID; O(log n) search, inserts and removals move memory only.
  class SortedSids {
    constructor() { this.items = []; this.keys = new Map(); }
    get size() { return this.items.length; }
    keyOf(sid) { return this.keys.get(sid); }
    _at(key, sid) {
      let lo = 0, hi = this.items.length;
      while (lo < hi) {
        const mid = (lo + hi) >>> 1, item = this.items[mid];
        if (item.key < key || (item.key === key && item.sid < sid)) lo = mid + 1; else hi = mid;
      }
      return lo;
    }
    insert(sid, key) {
      this.remove(sid);
      this.items.splice(this._at(key, sid), 0, { sid, key });
      this.keys.set(sid, key);
    }
    remove(sid) {
      const key = this.keys.get(sid);
      if (key === undefined) return false;
      const i = this._at(key, sid);
      if (i < this.items.length && this.items[i].sid === sid) this.items.splice(i, 1);
      this.keys.delete(sid);
      return true;
    }
    last() { return this.items.length ? this.items[this.items.length - 1].sid : undefined; }
  }

  // ------------------------------------------------------------------ state

  const rooms = new Map();      // sid -> latest applied document (rooms in progress + ended shown)
  const pending = new Map();    // sid -> latest received document, not applied yet (one per room)
  const live = new SortedSids();   // in progress, newest first (key: -date_created_ms)
  const ended = new SortedSids();  // ended, latest first (key: -end_time_ms)
  const changed = new Set();    // SIDs whose rows need their cells updated in the next frame
  let liveDirty = true, endedDirty = true, frameQueued = false;
  let participantsNow = 0;      // connected participants over rooms in progress
  let showProvider = false;
  let filterText = "", page = 0;

  const isLive = (doc) => doc && doc.status === "in-progress";
  const connectedOf = (doc) => (isLive(doc) ? doc.connected_participants || 0 : 0);

  function apply(doc) {
    const sid = doc.sid;
    if (doc.failure_reason === HIDDEN_FAILURE) { forget(sid); return; }
    const old = rooms.get(sid);
    rooms.set(sid, doc);
    participantsNow += connectedOf(doc) - connectedOf(old);
    if (doc.provider != null && !showProvider) {
      showProvider = true;
      for (const t of document.querySelectorAll("table.rooms")) t.classList.remove("no-provider");
    }
    if (isLive(doc)) {
      const key = -(doc.date_created_ms || 0);
      if (live.keyOf(sid) !== key) { live.insert(sid, key); liveDirty = true; }
      if (ended.remove(sid)) endedDirty = true;
    } else {
      if (live.remove(sid)) liveDirty = true;
      const key = -(doc.end_time_ms || doc.date_created_ms || 0);
      if (ended.keyOf(sid) !== key) {
        ended.insert(sid, key);
        endedDirty = true;
        while (ended.size > ENDED_MAX) {
          const gone = ended.last();
          ended.remove(gone);
          if (gone !== detailSid) rooms.delete(gone);
        }
      }
    }
    changed.add(sid);
  }

  function forget(sid) {
    const old = rooms.get(sid);
    participantsNow -= connectedOf(old);
    rooms.delete(sid);
    if (live.remove(sid)) liveDirty = true;
    if (ended.remove(sid)) endedDirty = true;
  }

  function queueFrame() {
    if (!frameQueued) { frameQueued = true; requestAnimationFrame(frame); }
  }

  function frame() {
    frameQueued = false;
    const started = performance.now();
    for (const [sid, doc] of pending) {
      pending.delete(sid);
      apply(doc);
      if (performance.now() - started > FRAME_BUDGET_MS) break;
    }
    render();
    if (pending.size) queueFrame();
  }

  // ------------------------------------------------------------------ formatting

  const pad = (n) => String(n).padStart(2, "0");
  function fmtDuration(seconds) {
    if (seconds == null || !Number.isFinite(seconds)) return "—";
    const s = Math.max(0, Math.floor(seconds));
    const h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60);
    return h ? `${h}:${pad(m)}:${pad(s % 60)}` : `${m}:${pad(s % 60)}`;
  }
  const fmtTime = (ms) => (ms ? new Date(ms).toLocaleTimeString("en-GB") : "—");
  // Today: the time; another day: the date and time (local, ISO order).
  function fmtDate(text) {
    if (!text) return "—";
    const d = new Date(text), now = new Date();
    if (d.toDateString() === now.toDateString()) return d.toLocaleTimeString("en-GB");
    return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${d.toLocaleTimeString("en-GB")}`;
  }
  function fmtProvider(p) {
    if (p == null || p === "") return "—";
    if (typeof p === "string") return p;
    return String(p.name || p.id || JSON.stringify(p));
  }
  const runningSeconds = (doc, now) => (doc.date_created_ms ? (now - doc.date_created_ms) / 1000 : null);
  const endedWhy = (doc) => doc.end_reason || doc.failure_reason || "—";
  const yesNo = (v) => (v == null ? "—" : v ? "yes" : "no");

  // ------------------------------------------------------------------ tables

  function roomCell(sid) {
    const th = el("th");
    th.scope = "row";
    const button = el("button", "room");
    button.type = "button";
    button.dataset.sid = sid;
    const name = el("span", "name"), sidText = el("span", "sid", sid);
    button.append(name, sidText);
    th.append(button);
    return [th, name];
  }

  function buildLiveRow(sid) {
    const tr = el("tr");
    tr.dataset.sid = sid;
    const [th, name] = roomCell(sid);
    const c = { name, type: el("td"), provider: el("td", "col-provider"), connected: el("td", "num"),
                peak: el("td", "num"), duration: el("td", "num") };
    tr.append(th, c.type, c.provider, c.connected, c.peak, c.duration);
    tr.cellsBy = c;
    return tr;
  }

  function updateLiveRow(tr, doc, now) {
    const c = tr.cellsBy;
    setText(c.name, doc.unique_name || doc.sid);
    setText(c.type, doc.type || "—");
    setText(c.provider, fmtProvider(doc.provider));
    setText(c.connected, String(doc.connected_participants || 0));
    setText(c.peak, String(doc.peak_concurrent_participants || 0));
    setText(c.duration, fmtDuration(runningSeconds(doc, now)));
  }

  function buildEndedRow(sid) {
    const tr = el("tr");
    tr.dataset.sid = sid;
    const [th, name] = roomCell(sid);
    const c = { name, type: el("td"), provider: el("td", "col-provider"), status: el("td"), reason: el("td"),
                peak: el("td", "num"), duration: el("td", "num"), at: el("td") };
    tr.append(th, c.type, c.provider, c.status, c.reason, c.peak, c.duration, c.at);
    tr.cellsBy = c;
    return tr;
  }

  function updateEndedRow(tr, doc) {
    const c = tr.cellsBy;
    setText(c.name, doc.unique_name || doc.sid);
    setText(c.type, doc.type || "—");
    setText(c.provider, fmtProvider(doc.provider));
    setText(c.status, doc.status);
    c.status.className = "status-" + doc.status;
    setText(c.reason, endedWhy(doc));
    setText(c.peak, String(doc.peak_concurrent_participants || 0));
    setText(c.duration, fmtDuration(doc.duration));
    setText(c.at, fmtTime(doc.end_time_ms));
  }

  // Puts exactly `sids`' rows in `tbody`, in order, moving as few rows as possible (a row that stays
  // keeps its keyboard focus); rows are built once per SID and updated only when their room changed.
  function reconcile(tbody, cache, sids, build, update, now) {
    const keep = new Set(sids);
    for (const [sid, tr] of cache) {
      if (!keep.has(sid)) { cache.delete(sid); tr.remove(); }
    }
    let cursor = tbody.firstElementChild;
    for (const sid of sids) {
      let tr = cache.get(sid);
      if (!tr) {
        tr = build(sid);
        cache.set(sid, tr);
        update(tr, rooms.get(sid), now);
      } else if (changed.has(sid)) {
        update(tr, rooms.get(sid), now);
      }
      if (tr === cursor) cursor = cursor.nextElementSibling;
      else tbody.insertBefore(tr, cursor);
    }
    while (cursor) { const next = cursor.nextElementSibling; cursor.remove(); cursor = next; }
  }

  const liveBody = $("live-table").tBodies[0], endedBody = $("ended-table").tBodies[0];
  const liveRows = new Map(), endedRows = new Map();

  function matches(doc) {
    if (!filterText) return true;
    return [doc.unique_name, doc.sid, doc.type, fmtProvider(doc.provider)]
      .some((v) => v && String(v).toLowerCase().includes(filterText));
  }

  function render() {
    const now = Date.now();
    if (liveDirty) {
      let list = live.items;
      if (filterText) list = list.filter((item) => matches(rooms.get(item.sid)));
      const pages = Math.max(1, Math.ceil(list.length / PAGE_SIZE));
      page = Math.min(page, pages - 1);
      const first = page * PAGE_SIZE;
      const sids = list.slice(first, first + PAGE_SIZE).map((item) => item.sid);
      reconcile(liveBody, liveRows, sids, buildLiveRow, updateLiveRow, now);
      const of = filterText ? `${fmtInt(list.length)} matching` : fmtInt(list.length);
      setText($("live-range"), list.length ? `${fmtInt(first + 1)}–${fmtInt(first + sids.length)} of ${of}` : `0 of ${of}`);
      $("prev").disabled = page === 0;
      $("next").disabled = page >= pages - 1;
      $("live-empty").hidden = live.size > 0;
    } else {
      for (const sid of changed) {
        const tr = liveRows.get(sid);
        if (tr) updateLiveRow(tr, rooms.get(sid), now);
      }
    }
    if (endedDirty) {
      reconcile(endedBody, endedRows, ended.items.map((item) => item.sid), buildEndedRow, updateEndedRow, now);
      $("ended-empty").hidden = ended.size > 0;
    } else {
      for (const sid of changed) {
        const tr = endedRows.get(sid);
        if (tr) updateEndedRow(tr, rooms.get(sid));
      }
    }
    setText($("count-live"), fmtInt(live.size));
    setText($("count-participants"), fmtInt(participantsNow));
    if (detailSid && changed.has(detailSid)) renderDetail(false);
    changed.clear();
    liveDirty = endedDirty = false;
  }

  $("filter").addEventListener("input", (e) => {
    filterText = e.target.value.trim().toLowerCase();
    page = 0;
    liveDirty = true;
    queueFrame();
  });
  $("prev").addEventListener("click", () => { page = Math.max(0, page - 1); liveDirty = true; queueFrame(); });
  $("next").addEventListener("click", () => { page += 1; liveDirty = true; queueFrame(); });

  // A click anywhere on a row opens the room; Enter or Space on its (focusable) button does too.
  for (const table of document.querySelectorAll("table.rooms")) {
    table.addEventListener("click", (e) => {
      const tr = e.target.closest("tr[data-sid]");
      if (tr) openDetail(tr.dataset.sid, tr.querySelector("button.room"));
    });
  }

  // ------------------------------------------------------------------ chart and per-second updates

  const samples = [];           // {events, live} per second, oldest first
  let eventsThisSecond = 0;

  function drawChart(svgId, maxId, values, unit) {
    const svg = $(svgId), line = svg.querySelector("polyline");
    const max = Math.max(1, ...values);
    const step = 300 / (HISTORY_S - 1), offset = HISTORY_S - values.length;
    const points = values.map((v, i) => `${((offset + i) * step).toFixed(1)},${(58 - (v / max) * 54).toFixed(1)}`);
    line.setAttribute("points", points.join(" "));
    const now = values.length ? values[values.length - 1] : 0;
    const peak = values.length ? Math.max(...values) : 0;
    setText($(maxId), `now ${fmtInt(now)} · max ${fmtInt(peak)}`);
    svg.setAttribute("aria-label", `${unit} over the last 5 minutes: now ${now}, at most ${peak}`);
  }

  function tick() {
    samples.push({ events: eventsThisSecond, live: live.size });
    if (samples.length > HISTORY_S) samples.shift();
    setText($("rate"), fmtInt(eventsThisSecond));
    eventsThisSecond = 0;
    drawChart("chart-events", "chart-events-max", samples.map((s) => s.events), "Events per second");
    drawChart("chart-live", "chart-live-max", samples.map((s) => s.live), "Rooms in progress");
    const now = Date.now();
    for (const [sid, tr] of liveRows) {
      const doc = rooms.get(sid);
      if (doc) setText(tr.cellsBy.duration, fmtDuration(runningSeconds(doc, now)));
    }
    if (detailSid && isLive(rooms.get(detailSid))) renderFacts();
  }
  setInterval(tick, 1000);

  // ------------------------------------------------------------------ the room's details

  const dialog = $("detail");
  let detailSid = null, detailOpener = null, detailResource = null, detailSeq = 0;
  let participantsKey = "", participantsTimer = null;

  function openDetail(sid, opener) {
    detailSid = sid;
    detailOpener = opener;
    detailResource = null;
    participantsKey = "";
    $("participants-table").tBodies[0].replaceChildren();
    renderDetail(true);
    if (!dialog.open) dialog.showModal();
  }

  dialog.addEventListener("close", () => {
    const sid = detailSid;
    detailSid = null;
    detailSeq += 1;
    clearTimeout(participantsTimer);
    if (sid && live.keyOf(sid) === undefined && ended.keyOf(sid) === undefined) rooms.delete(sid);
    if (detailOpener && detailOpener.isConnected) detailOpener.focus();
  });
  $("detail-close").addEventListener("click", () => dialog.close());

  function fact(dl, label, value, wide) {
    const div = el("div", wide ? "wide" : "");
    div.append(el("dt", "", label), el("dd", "", value));
    dl.append(div);
  }

  function renderFacts() {
    const doc = rooms.get(detailSid) || {};
    const res = detailResource || {};
    const dl = $("detail-facts");
    dl.replaceChildren();
    fact(dl, "SID", detailSid, true);
    fact(dl, "Status", res.status || doc.status || "—");
    fact(dl, "Type", res.type || doc.type || "—");
    if (doc.provider != null) fact(dl, "Provider", fmtProvider(doc.provider));
    fact(dl, "Created", fmtDate(res.date_created || doc.date_created));
    fact(dl, "Created via", doc.created_via || "—");
    fact(dl, "Connected now", String(doc.connected_participants || 0));
    fact(dl, "Peak", String(doc.peak_concurrent_participants || 0));
    if (isLive(doc)) {
      fact(dl, "Running for", fmtDuration(runningSeconds(doc, Date.now())));
    } else {
      fact(dl, "Ended", fmtDate(res.end_time || doc.end_time));
      fact(dl, "End reason", endedWhy(doc));
      fact(dl, "Duration", fmtDuration(res.duration != null ? res.duration : doc.duration));
    }
    if (res.max_participants != null) fact(dl, "Max participants", String(res.max_participants));
    if (res.media_region) fact(dl, "Media region", res.media_region);
  }

  function renderTracks() {
    const doc = rooms.get(detailSid) || {};
    const who = new Map((doc.participants || []).map((p) => [p.sid, p.identity || p.sid]));
    const tracks = doc.tracks || [];
    const rows = tracks.map((t) => {
      const tr = el("tr");
      tr.append(el("td", "sid", t.sid), el("td", "", t.kind || "—"), el("td", "", t.name || "—"),
                el("td", "", who.get(t.participant_sid) || t.participant_sid || "—"),
                el("td", "", yesNo(t.published)), el("td", "", yesNo(t.enabled)));
      return tr;
    });
    $("tracks-table").tBodies[0].replaceChildren(...rows);
    setText($("tracks-note"), tracks.length ? "" : "No tracks.");
  }

  function renderDetail(fresh) {
    const doc = rooms.get(detailSid);
    setText($("detail-title"), doc ? doc.unique_name || detailSid : detailSid);
    renderFacts();
    renderTracks();
    // Participants come from the Rooms API; fetch again when the room's participants changed.
    const key = doc ? (doc.participants || []).map((p) => p.sid + p.status).join(",") + doc.status : "";
    if (fresh || key !== participantsKey) {
      participantsKey = key;
      clearTimeout(participantsTimer);
      participantsTimer = setTimeout(loadDetail, fresh ? 0 : 250);
    }
  }

  async function getJSON(url) {
    const response = await fetch(url, { headers: { Accept: "application/json" }, cache: "no-store" });
    const body = await response.json().catch(() => ({}));
    if (!response.ok) throw new Error(body.message || `HTTP ${response.status}`);
    return body;
  }

  async function loadDetail() {
    const sid = detailSid, seq = ++detailSeq;
    if (!sid) return;
    const base = `v1/Rooms/${encodeURIComponent(sid)}`;
    if (!$("participants-table").tBodies[0].rows.length) setText($("participants-note"), "Loading participants…");
    try {
      const [room, connected, gone] = await Promise.all([
        getJSON(base),
        getJSON(`${base}/Participants?Status=connected&PageSize=1000`),
        getJSON(`${base}/Participants?Status=disconnected&PageSize=1000`),
      ]);
      if (seq !== detailSeq) return;  // another room was opened meanwhile
      detailResource = room;
      renderFacts();
      const people = connected.participants.concat(gone.participants);
      const rows = people.map((p) => {
        const tr = el("tr");
        const status = el("td", p.status === "connected" ? "status-in-progress" : "", p.status);
        tr.append(el("td", "", p.identity || "—"), el("td", "sid", p.sid), status, el("td", "", fmtDate(p.start_time)),
                  el("td", "", fmtDate(p.end_time)), el("td", "num", fmtDuration(p.duration)));
        return tr;
      });
      $("participants-table").tBodies[0].replaceChildren(...rows);
      setText($("participants-note"), people.length ? "" : "No participants.");
    } catch (err) {
      if (seq === detailSeq) setText($("participants-note"), `Could not load the room: ${err.message}`);
    }
  }

  // ------------------------------------------------------------------ the stream

  let source = null, lastEventId = "", inBacklog = false, backlogSids = null;
  let retryMs = 1000, retryTimer = null;

  function setConnection(state, text) {
    const p = $("connection");
    p.dataset.state = state;
    setText($("connection-text"), text || state);
  }

  function connect() {
    // A new EventSource sends no Last-Event-ID header: the position goes in the query instead.
    const url = lastEventId ? `${STREAM_URL}&LastEventId=${encodeURIComponent(lastEventId)}` : STREAM_URL;
    source = new EventSource(url);
    source.addEventListener("open", () => { inBacklog = true; backlogSids = new Set(); });
    source.addEventListener("room", onRoom);
    source.addEventListener("room-retired", onRetired);
    source.addEventListener("snapshot-complete", (e) => onComplete(e, "snapshot"));
    source.addEventListener("resume-complete", (e) => onComplete(e, "resume"));
    source.addEventListener("error", onError);
  }

  function onRoom(e) {
    let doc;
    try { doc = JSON.parse(e.data); } catch (_) { return; }
    if (!doc || typeof doc.sid !== "string") return;
    if (e.lastEventId) lastEventId = e.lastEventId;
    if (inBacklog) backlogSids.add(doc.sid); else eventsThisSecond += 1;
    pending.set(doc.sid, doc);
    queueFrame();
  }

  function onRetired(e) {
    // The room left the hot state (ROOMEVENTS_RETAIN_ENDED after it ended): drop it.
    let sid;
    try { sid = JSON.parse(e.data).sid; } catch (_) { return; }
    if (typeof sid !== "string") return;
    pending.delete(sid);
    forget(sid);
    queueFrame();
  }

  function onComplete(e, kind) {
    if (e.lastEventId) lastEventId = e.lastEventId;
    let count = 0;
    try { count = JSON.parse(e.data).rooms || 0; } catch (_) { /* keep 0 */ }
    if (kind === "snapshot") {
      // A snapshot is every room in progress: drop those it no longer has.
      for (const item of live.items.slice()) {
        if (backlogSids && !backlogSids.has(item.sid) && !pending.has(item.sid)) forget(item.sid);
      }
      liveDirty = true;
      queueFrame();
    }
    inBacklog = false;
    backlogSids = null;
    retryMs = 1000;
    document.body.dataset.sync = kind;
    document.body.dataset.syncs = String(Number(document.body.dataset.syncs || 0) + 1);
    const what = kind === "resume" ? `caught up ${fmtInt(count)} changed room${count === 1 ? "" : "s"}`
                                   : `${fmtInt(count)} room${count === 1 ? "" : "s"} loaded`;
    setText($("sync"), `${what} at ${fmtTime(Date.now())}`);
    setConnection("live");
  }

  function onError() {
    inBacklog = false;
    if (source.readyState === EventSource.CLOSED) {
      // The browser gave up (an HTTP error, e.g. from a proxy): open a new stream, with backoff.
      source.close();
      clearTimeout(retryTimer);
      retryTimer = setTimeout(connect, retryMs);
      retryMs = Math.min(retryMs * 2, RETRY_MAX_MS);
    }
    // Otherwise the browser reconnects by itself and sends Last-Event-ID.
    setConnection("reconnecting");
  }

  $("live-empty").hidden = true;
  $("ended-empty").hidden = true;
  tick();
  connect();
})();
