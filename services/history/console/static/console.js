// Switchboard run console. Plain DOM, no framework, no build step: the page
// calls the history API of the origin that served it with the project API
// key kept in sessionStorage. Every value from the API is put in the page as
// text (textContent), never as HTML.
"use strict";

(() => {
  const KEY = "switchboard.console.key";
  const PROJECT = "switchboard.console.project";
  const LIVE_MS = 3000;       // runs list refresh while "Live" is on
  const RUN_POLL_MS = 1500;   // an unfinished run's refresh
  const BULK_MAX = 1000;      // most runs one bulk replay walks
  const BULK_PAGE = 10;       // runs per bulk replay call: one progress step

  const $ = (sel) => document.querySelector(sel);

  // h builds an element: h("td", {class: "x"}, "text", child…).
  function h(tag, attrs, ...children) {
    const el = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === undefined || v === null || v === false) continue;
      if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
      else el.setAttribute(k, v === true ? "" : String(v));
    }
    for (const c of children.flat()) {
      if (c === undefined || c === null || c === false) continue;
      el.append(c instanceof Node ? c : document.createTextNode(String(c)));
    }
    return el;
  }

  const session = {
    get key() { return sessionStorage.getItem(KEY) || ""; },
    get project() { return sessionStorage.getItem(PROJECT) || ""; },
    set(project, key) { sessionStorage.setItem(PROJECT, project); sessionStorage.setItem(KEY, key); },
    clear() { sessionStorage.removeItem(KEY); sessionStorage.removeItem(PROJECT); },
  };

  // ---- API -----------------------------------------------------------------

  class APIError extends Error {
    constructor(status, body) {
      const e = (body && body.error) || {};
      super(e.message || `HTTP ${status}`);
      this.status = status;
      this.code = e.code || "http_" + status;
      this.field = e.field;
    }
  }

  async function api(method, path, query, opts = {}) {
    const project = opts.project || session.project;
    const key = opts.key || session.key;
    let url = "/v1/projects/" + encodeURIComponent(project) + path;
    const q = new URLSearchParams();
    for (const [k, v] of Object.entries(query || {})) if (v) q.set(k, v);
    if ([...q].length) url += "?" + q;
    const resp = await fetch(url, { method, headers: { Authorization: "Bearer " + key, Accept: "application/json" } });
    let body = null;
    try { body = await resp.json(); } catch (_) { /* not JSON */ }
    if (!resp.ok) {
      const err = new APIError(resp.status, body);
      // A key that stopped working (revoked, another project) ends the session.
      if (resp.status === 401 && !opts.key) signOut(err.message);
      throw err;
    }
    return body;
  }

  // ---- status line ---------------------------------------------------------

  function say(text, isError) {
    const s = $("#status");
    s.textContent = text || "";
    s.className = isError ? "error" : "";
  }
  const fail = (err) => say(err.field ? `${err.message} (${err.field})` : err.message, true);

  // ---- formatting ----------------------------------------------------------

  const pad = (n) => String(n).padStart(2, "0");
  function fmtTime(s) {
    if (!isSet(s)) return "";
    const d = new Date(s);
    if (isNaN(d)) return s;
    return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
  }
  function fmtDuration(ms) {
    if (ms === null || ms === undefined || isNaN(ms) || ms < 0) return "";
    if (ms < 1000) return Math.round(ms) + " ms";
    if (ms < 60000) return (ms / 1000).toFixed(ms < 10000 ? 2 : 1) + " s";
    return Math.floor(ms / 60000) + " min " + Math.round((ms % 60000) / 1000) + " s";
  }
  // Go writes an unset time as year 1.
  const isSet = (t) => Boolean(t) && !String(t).startsWith("0001-");
  const ms = (a, b) => (isSet(a) && isSet(b) ? new Date(b) - new Date(a) : null);
  const badge = (s) => h("span", { class: "badge " + s }, s);
  const runLink = (id) => h("a", { href: "#run/" + encodeURIComponent(id), class: "mono", "data-run": id }, id);
  const eventLink = (id) => h("a", { href: "#event/" + encodeURIComponent(id), class: "mono", "data-event": id }, id);
  const pretty = (v) => (typeof v === "string" ? v : JSON.stringify(v, null, 2));

  // ---- views ---------------------------------------------------------------

  const views = ["login-view", "runs-view", "run-view", "event-view", "dead-view"];
  let timer = null; // the one pending refresh of the visible view
  function show(view, tab) {
    clearTimeout(timer);
    timer = null;
    for (const v of views) $("#" + v).hidden = v !== view;
    for (const t of ["runs", "dead", "event"]) {
      const a = $("#tab-" + t);
      if (t === tab) a.setAttribute("aria-current", "page"); else a.removeAttribute("aria-current");
    }
  }

  function route() {
    if (!session.key) {
      show("login-view");
      $("#tabs").hidden = $("#signout").hidden = $("#who").hidden = true;
      $("#login-key").focus();
      return;
    }
    $("#tabs").hidden = $("#signout").hidden = $("#who").hidden = false;
    $("#who").textContent = "Project " + session.project;
    const [name, ...rest] = location.hash.replace(/^#/, "").split("/");
    const arg = decodeURIComponent(rest.join("/"));
    say("");
    switch (name) {
      case "run": show("run-view", "runs"); loadRun(arg); break;
      case "event": show("event-view", "event"); $("#event-id").value = arg; if (arg) loadEvent(arg); else $("#event-body").replaceChildren(); break;
      case "dead": show("dead-view", "dead"); loadDead(false); break;
      default: show("runs-view", "runs"); loadRuns(false);
    }
  }

  function signOut(why) {
    session.clear();
    location.hash = "";
    route();
    if (why) say(why, true);
  }

  // ---- login ---------------------------------------------------------------

  async function login(ev) {
    ev.preventDefault();
    const project = $("#login-project").value.trim();
    const key = $("#login-key").value.trim();
    $("#login-submit").disabled = true;
    try {
      // One cheap call proves the key and the project before it is kept.
      await api("GET", "/runs", { limit: 1 }, { project, key });
      session.set(project, key);
      $("#login-key").value = "";
      if (!location.hash || location.hash === "#") location.hash = "#runs"; else route();
    } catch (err) {
      fail(err);
    } finally {
      $("#login-submit").disabled = false;
    }
  }

  // ---- runs list -----------------------------------------------------------

  let runsCursor = "";
  // runsReq numbers list requests: an answer to an older one (filters
  // changed meanwhile) is dropped, not drawn over the newer.
  let runsReq = 0;

  function runFilters() {
    const iso = (v) => (v ? new Date(v).toISOString() : "");
    return {
      workflow: $("#f-workflow").value.trim(),
      user: $("#f-user").value.trim(),
      status: $("#f-status").value,
      since: iso($("#f-since").value),
      until: iso($("#f-until").value),
    };
  }

  function runRow(r) {
    const end = isSet(r.finishedAt) ? r.finishedAt : r.status === "running" ? new Date().toISOString() : null;
    return h("tr", { "data-run-row": r.id },
      h("td", {}, fmtTime(r.createdAt)),
      h("td", {}, runLink(r.id), r.replayOf ? h("span", { class: "muted" }, " (replay)") : null),
      h("td", {}, r.workflow),
      h("td", {}, r.user),
      h("td", {}, badge(r.status)),
      h("td", {}, fmtDuration(ms(r.startedAt, end))));
  }

  // loadRuns shows the first page (more=false) or appends the next one.
  async function loadRuns(more) {
    clearTimeout(timer);
    const body = $("#runs-table tbody");
    const req = ++runsReq;
    try {
      const page = await api("GET", "/runs", { ...runFilters(), limit: 50, cursor: more ? runsCursor : "" });
      if ($("#runs-view").hidden || req !== runsReq) return;
      const rows = page.runs.map(runRow);
      if (more) body.append(...rows); else body.replaceChildren(...rows);
      if (!body.children.length) body.append(h("tr", {}, h("td", { colspan: 6, class: "muted" }, "No runs match.")));
      runsCursor = page.nextCursor || "";
      $("#runs-more").hidden = !runsCursor;
      $("#runs-caption").textContent = "Newest first · updated " + fmtTime(new Date().toISOString());
    } catch (err) {
      if (req !== runsReq) return;
      fail(err);
    }
    // Live refresh redraws the first page only: a user paging back through
    // history keeps what they loaded.
    if (!more && $("#f-live").checked && !$("#runs-view").hidden) timer = setTimeout(() => loadRuns(false), LIVE_MS);
  }

  // ---- one run -------------------------------------------------------------

  function meta(pairs) {
    return pairs.filter(([, v]) => v !== undefined && v !== null && v !== "")
      .flatMap(([k, v]) => [h("dt", {}, k), h("dd", {}, v)]);
  }

  function stepItem(s, t0, span, pendingOf) {
    const status = pendingOf ? "pending" : s.status;
    const started = isSet(s.startedAt);
    const start = started ? Math.max(0, new Date(s.startedAt) - t0) : 0;
    const dur = ms(s.startedAt, s.finishedAt) || 0;
    const left = span > 0 ? Math.max(0, Math.min(100, (start / span) * 100)) : 0;
    const width = span > 0 ? Math.max(0.5, Math.min(100 - left, (dur / span) * 100)) : 100;
    const bar = h("div", { class: "bar " + status, role: "img",
      "aria-label": `${s.id}: starts at +${fmtDuration(start)}, takes ${fmtDuration(dur)}` });
    bar.style.left = left + "%";
    bar.style.width = width + "%";
    return h("li", { "data-step": s.id },
      h("div", { class: "head" },
        h("strong", {}, s.id), h("span", { class: "muted" }, s.type || ""), badge(status),
        h("span", {}, `attempts ${s.attempts || 0}`),
        h("span", { class: "muted" }, started ? `+${fmtDuration(start)} · ${fmtDuration(dur)}` : "not started")),
      h("div", { class: "track" }, bar),
      s.error ? h("p", { class: "error-text" }, s.error) : null,
      pendingOf ? h("p", { class: "muted" }, "retry at " + fmtTime(pendingOf.retryAt)) : null,
      s.input !== undefined ? h("details", {}, h("summary", {}, "Input"), h("pre", {}, pretty(s.input))) : null,
      s.output !== undefined ? h("details", {}, h("summary", {}, "Output"), h("pre", {}, pretty(s.output))) : null);
  }

  async function loadRun(id) {
    clearTimeout(timer);
    let r;
    try {
      r = await api("GET", "/runs/" + encodeURIComponent(id));
    } catch (err) {
      $("#run-title").textContent = "Run " + id;
      $("#run-meta").replaceChildren();
      $("#timeline").replaceChildren();
      return fail(err);
    }
    // Another run (or view) was opened while this one loaded.
    if ($("#run-view").hidden || location.hash !== "#run/" + encodeURIComponent(id)) return;
    $("#run-title").replaceChildren("Run ", h("span", { class: "mono" }, r.id), " ", badge(r.status));
    $("#run-meta").replaceChildren(...meta([
      ["Workflow", r.workflow], ["User", r.user], ["Credential", r.credential],
      ["Event", r.eventId ? eventLink(r.eventId) : ""],
      ["Replay of", r.replayOf ? runLink(r.replayOf) : ""],
      ["Created", fmtTime(r.createdAt)], ["Started", fmtTime(r.startedAt)], ["Finished", fmtTime(r.finishedAt)],
      ["Duration", fmtDuration(ms(r.startedAt, r.finishedAt))], ["Deliveries", r.deliveries],
      ["Error", r.error ? h("span", { class: "error-text" }, r.error) : ""],
    ]));
    const steps = r.steps || [];
    const t0 = new Date(r.startedAt || r.createdAt);
    const endTimes = steps.map((s) => new Date(isSet(s.finishedAt) ? s.finishedAt : isSet(s.startedAt) ? s.startedAt : t0));
    const tEnd = isSet(r.finishedAt) ? new Date(r.finishedAt) : new Date(Math.max(t0, ...endTimes));
    const span = tEnd - t0;
    const items = steps.map((s) => stepItem(s, t0, span));
    if (r.pending) {
      items.push(stepItem({ id: r.pending.step, status: "pending", attempts: r.pending.attempts,
        error: r.pending.error, startedAt: r.pending.startedAt }, t0, span, r.pending));
    }
    if (!items.length) items.push(h("li", { class: "muted" }, "No step has run yet."));
    $("#timeline").replaceChildren(...items);
    $("#run-replay").dataset.run = r.id;
    $("#run-replay-result").replaceChildren();
    if (r.status !== "succeeded" && r.status !== "failed") timer = setTimeout(() => loadRun(id), RUN_POLL_MS);
  }

  // replayOutcome renders a replay answer (or error) into el.
  function replayOutcome(el, acc) {
    el.replaceChildren("replayed as ", runLink(acc.runId));
  }

  async function replayRun() {
    const btn = $("#run-replay");
    btn.disabled = true;
    try {
      const acc = await api("POST", "/runs/" + encodeURIComponent(btn.dataset.run) + "/replay");
      replayOutcome($("#run-replay-result"), acc);
      say("Replay started: " + acc.runId);
    } catch (err) {
      fail(err);
    } finally {
      btn.disabled = false;
    }
  }

  // ---- event and decision record ------------------------------------------

  async function loadEvent(id) {
    const out = $("#event-body");
    out.replaceChildren(h("p", { class: "muted" }, "Loading…"));
    let d;
    try {
      d = await api("GET", "/events/" + encodeURIComponent(id));
    } catch (err) {
      out.replaceChildren();
      return fail(err);
    }
    const sum = d.summary || {};
    const skipped = Object.entries(sum.skipped || {}).map(([k, n]) => `${k} ${n}`).join(", ");
    const rows = (d.candidates || []).map((c) => h("tr", { "data-candidate": c.workflow },
      h("td", {}, c.workflow), h("td", {}, c.user || ""), h("td", {}, c.credential || ""),
      h("td", {}, badge(c.outcome)), h("td", { class: "mono" }, c.reason || ""),
      h("td", { class: "reason" }, c.message || ""),
      h("td", {}, c.runId ? runLink(c.runId) : "")));
    if (!rows.length) rows.push(h("tr", {}, h("td", { colspan: 7, class: "muted" }, "No candidate: no workflow listens to this trigger.")));
    let trigger = d.trigger;
    try { if (typeof trigger === "string") trigger = JSON.parse(trigger); } catch (_) { /* shown as is */ }
    out.replaceChildren(
      h("dl", { class: "meta" }, ...meta([
        ["Event", h("span", { class: "mono" }, d.eventId)], ["Kind", d.kind], ["Name", d.name], ["User", d.user],
        ["Received", fmtTime(d.receivedAt)], ["Decided", fmtTime(d.decidedAt)],
        ["Error", d.error ? h("span", { class: "error-text" }, d.error) : ""],
      ])),
      h("p", { class: "summary-line" }, `${sum.candidates ?? rows.length} candidate(s), ${sum.ran ?? 0} ran`,
        skipped ? `; skipped: ${skipped}` : ""),
      h("table", { id: "decision-table" },
        h("caption", {}, "Why each candidate ran or not"),
        h("thead", {}, h("tr", {}, ...["Workflow", "User", "Credential", "Outcome", "Reason", "Message", "Run"]
          .map((t) => h("th", { scope: "col" }, t)))),
        h("tbody", {}, ...rows)),
      trigger ? h("details", {}, h("summary", {}, "Trigger event"), h("pre", {}, pretty(trigger))) : null);
  }

  // ---- dead letters --------------------------------------------------------

  let deadCursor = "";
  let deadReq = 0; // as runsReq

  function deadRow(d) {
    const result = h("span", { class: "result" });
    const btn = h("button", { type: "button", "data-replay-dead": d.seq, disabled: !d.replayable,
      "aria-label": `Replay dead letter ${d.seq}` }, "Replay");
    btn.addEventListener("click", async () => {
      btn.disabled = true;
      try {
        const acc = await api("POST", "/dead/" + d.seq + "/replay");
        replayOutcome(result, acc);
        say(`Dead letter ${d.seq} replayed as ${acc.runId}`);
      } catch (err) {
        result.replaceChildren(h("span", { class: "error-text" }, err.message));
        btn.disabled = false;
      }
    });
    return h("tr", { "data-dead": d.seq },
      h("td", {}, d.seq), h("td", {}, fmtTime(d.time)), h("td", {}, d.kind), h("td", {}, d.workflow || ""),
      h("td", {}, d.runId ? runLink(d.runId) : ""), h("td", {}, d.user || ""),
      h("td", { class: "reason" }, d.reason || d.error || ""),
      h("td", {}, btn, " ", result));
  }

  async function loadDead(more) {
    const body = $("#dead-table tbody");
    const req = ++deadReq;
    try {
      const page = await api("GET", "/dead", { workflow: $("#d-workflow").value.trim(), order: "newest", limit: 100, cursor: more ? deadCursor : "" });
      if (req !== deadReq) return;
      const rows = page.deadLetters.map(deadRow);
      if (more) body.append(...rows); else body.replaceChildren(...rows);
      if (!body.children.length) body.append(h("tr", {}, h("td", { colspan: 8, class: "muted" }, "No dead letters.")));
      deadCursor = page.nextCursor || "";
      $("#dead-more").hidden = !deadCursor;
    } catch (err) {
      fail(err);
    }
  }

  // ---- bulk replay ---------------------------------------------------------

  let bulk = null; // {filters, total, stopped}

  async function bulkCount() {
    const filters = runFilters();
    $("#bulk-start").disabled = true;
    try {
      // The same filters, counted by listing (bounded): the total the
      // progress bar is measured against.
      let n = 0, cursor = "";
      do {
        const page = await api("GET", "/runs", { ...filters, limit: 500, cursor });
        n += page.runs.length;
        cursor = page.nextCursor || "";
      } while (cursor && n < BULK_MAX);
      n = Math.min(n, BULK_MAX);
      if (n === 0) { say("No runs match the filters."); return; }
      bulk = { filters, total: n, stopped: false };
      $("#bulk-question").textContent = `Replay ${n} run(s) matching the filters${n === BULK_MAX ? " (the first " + BULK_MAX + ")" : ""}?`;
      $("#bulk-go").textContent = `Replay ${n} run(s)`;
      $("#bulk-confirm").hidden = false;
      $("#bulk-go").focus();
    } catch (err) {
      fail(err);
    } finally {
      $("#bulk-start").disabled = false;
    }
  }

  async function bulkRun() {
    const b = bulk;
    $("#bulk-confirm").hidden = true;
    $("#bulk-progress").hidden = false;
    $("#bulk-start").disabled = true;
    $("#bulk-stop").disabled = false;
    $("#bulk-failures").replaceChildren();
    const bar = $("#bulk-bar"), text = $("#bulk-text");
    bar.max = b.total;
    bar.value = 0;
    let done = 0, accepted = 0, failed = 0, cursor = "";
    const update = (state) => {
      bar.value = done;
      text.textContent = `${done} of ${b.total} · ${accepted} replayed · ${failed} failed${state ? " · " + state : ""}`;
    };
    update("starting");
    try {
      while (!b.stopped && done < b.total) {
        const limit = Math.min(BULK_PAGE, b.total - done);
        const res = await api("POST", "/runs/replay", { ...b.filters, limit, cursor });
        for (const r of res.results) {
          done++;
          if (r.status === "accepted") accepted++;
          else {
            failed++;
            $("#bulk-failures").append(h("li", {}, runLink(r.replayOf), ": ", r.error ? r.error.message : "failed"));
          }
        }
        cursor = res.nextCursor || "";
        update();
        if (!cursor || !res.results.length) break;
      }
      update(b.stopped ? "stopped" : "done");
    } catch (err) {
      update("error");
      fail(err);
    } finally {
      $("#bulk-start").disabled = false;
      $("#bulk-stop").disabled = true;
      bulk = null;
      // Show the new runs now rather than at the next live refresh.
      if (!$("#runs-view").hidden) loadRuns(false);
    }
  }

  // ---- wiring --------------------------------------------------------------

  document.addEventListener("DOMContentLoaded", () => {
    $("#login").addEventListener("submit", login);
    $("#signout").addEventListener("click", () => signOut());
    $("#run-filters").addEventListener("submit", (ev) => { ev.preventDefault(); loadRuns(false); });
    $("#f-clear").addEventListener("click", () => { $("#run-filters").reset(); loadRuns(false); });
    $("#f-live").addEventListener("change", () => loadRuns(false));
    // Paging back through history stops the live refresh, which would
    // redraw the first page over what was loaded; the checkbox says so.
    $("#runs-more").addEventListener("click", () => { $("#f-live").checked = false; loadRuns(true); });
    $("#run-replay").addEventListener("click", replayRun);
    $("#event-lookup").addEventListener("submit", (ev) => {
      ev.preventDefault();
      location.hash = "#event/" + encodeURIComponent($("#event-id").value.trim());
    });
    $("#dead-filters").addEventListener("submit", (ev) => { ev.preventDefault(); loadDead(false); });
    $("#dead-more").addEventListener("click", () => loadDead(true));
    $("#bulk-start").addEventListener("click", bulkCount);
    $("#bulk-go").addEventListener("click", bulkRun);
    $("#bulk-cancel").addEventListener("click", () => { bulk = null; $("#bulk-confirm").hidden = true; });
    $("#bulk-stop").addEventListener("click", () => { if (bulk) bulk.stopped = true; });
    const p = new URLSearchParams(location.search).get("project");
    if (p) $("#login-project").value = p;
    window.addEventListener("hashchange", route);
    route();
  });
})();
