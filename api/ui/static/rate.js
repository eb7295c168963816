// The rating page: keyboard first, autosave, nothing lost.
//
// Every change is written at once to an outbox in localStorage, then sent to the server, which is
// idempotent (a draft replaces the draft, a submission replaces the rating). Sending retries with backoff
// until the server answers, so a refresh, a closed tab or a dropped connection loses nothing: the next page
// load sends what is left. All text shown here goes through textContent, never innerHTML.
"use strict";
(function () {
  const cfg = JSON.parse(document.getElementById("rj-config").textContent);
  const T = cfg.t;
  const AXES = cfg.axes;
  const POS = cfg.position;
  const readOnly = cfg.closed;
  const outboxKey = "rj:" + cfg.study + ":" + cfg.rater + ":outbox";
  const state = {
    scores: Object.assign({}, cfg.scores),
    comments: Object.assign({}, cfg.comments),
    focus: 0,
    elapsed: cfg.elapsed || 0,
    busy: false,
    dirty: false, // changed on this visit: leaving saves a draft
  };
  const $ = (sel, root) => (root || document).querySelector(sel);
  const $$ = (sel, root) => Array.from((root || document).querySelectorAll(sel));
  const axisEl = (i) => document.getElementById("axis-" + AXES[i]);

  // --- the outbox -------------------------------------------------------------------------------------------
  function loadOutbox() {
    try { return JSON.parse(localStorage.getItem(outboxKey) || "{}") || {}; } catch (e) { return {}; }
  }
  function saveOutbox(box) {
    try { localStorage.setItem(outboxKey, JSON.stringify(box)); } catch (e) { /* full or disabled: server only */ }
  }
  let seq = 0;
  function enqueue(kind, position, body) {
    const box = loadOutbox();
    if (kind !== "draft") delete box["draft:" + position]; // a submission or skip supersedes the draft
    const op = { kind: kind, position: position, body: body, ts: Date.now() * 1000 + (seq++ % 1000) };
    box[kind + ":" + position] = op;
    saveOutbox(box);
    return kind + ":" + position + ":" + op.ts;
  }
  const ROUTES = {
    draft: ["PUT", (p) => cfg.api + "/items/" + p + "/draft"],
    submit: ["POST", (p) => cfg.api + "/items/" + p + "/submit"],
    skip: ["POST", (p) => cfg.api + "/items/" + p + "/skip"],
  };
  async function send(op, keepalive) {
    const route = ROUTES[op.kind];
    const ctrl = new AbortController();
    const timer = setTimeout(() => ctrl.abort(), 15000);
    try {
      const r = await fetch(route[1](op.position), {
        method: route[0],
        headers: { "Content-Type": "application/json", "X-Rater-Token": cfg.token },
        body: JSON.stringify(op.body),
        signal: ctrl.signal,
        cache: "no-store",
        keepalive: !!keepalive,
      });
      let data = null;
      try { data = await r.json(); } catch (e) { data = null; }
      if (r.ok) return { ok: true, data: data };
      const retry = r.status >= 500 || r.status === 408 || r.status === 429;
      return { ok: false, retry: retry, data: data, status: r.status };
    } catch (e) {
      return { ok: false, retry: true };
    } finally {
      clearTimeout(timer);
    }
  }
  const waiters = {};
  let flushing = null;
  let backoff = 1000;
  let retryTimer = null;
  function flush() {
    if (flushing) return flushing;
    flushing = (async () => {
      for (;;) {
        const ops = Object.entries(loadOutbox()).sort((a, b) => a[1].ts - b[1].ts);
        if (!ops.length) { setSave("saved"); backoff = 1000; return; }
        const key = ops[0][0];
        const op = ops[0][1];
        setSave("saving");
        const res = await send(op);
        if (!res.ok && res.retry) {
          setSave("offline");
          if (state.busy) flash(T.offline);
          clearTimeout(retryTimer);
          retryTimer = setTimeout(flush, backoff);
          backoff = Math.min(backoff * 2, 15000);
          return;
        }
        const box = loadOutbox();
        if (box[key] && box[key].ts === op.ts) { delete box[key]; saveOutbox(box); }
        if (!res.ok) showError(res);
        if (res.ok && res.data && res.data.progress) showProgress(res.data.progress);
        const wkey = key + ":" + op.ts;
        if (waiters[wkey]) { waiters[wkey](res); delete waiters[wkey]; }
      }
    })().finally(() => { flushing = null; });
    return flushing;
  }
  function enqueueAndWait(kind, position, body) {
    const wkey = enqueue(kind, position, body);
    const done = new Promise((resolve) => { waiters[wkey] = resolve; });
    flush();
    return done;
  }
  let draftTimer = null;
  function autosave() {
    if (readOnly) return;
    state.dirty = true;
    if (cfg.state === "done") flash(T.unsubmitted);
    enqueue("draft", POS, draftBody()); // on this computer at once
    clearTimeout(draftTimer);
    draftTimer = setTimeout(flush, 500); // on the server shortly after
  }
  function draftBody() {
    return { scores: Object.assign({}, state.scores), comments: Object.assign({}, state.comments), elapsed: state.elapsed };
  }
  window.addEventListener("online", () => { backoff = 1000; flush(); });
  window.addEventListener("pagehide", () => {
    // Best effort for a closing tab; what does not arrive is sent from the outbox on the next visit.
    const box = loadOutbox();
    Object.values(box).forEach((op) => { send(op, true); });
  });

  // --- what the page shows ----------------------------------------------------------------------------------
  function setSave(kind) {
    const el = $("#save-state");
    if (!el) return;
    el.className = "save-state " + kind;
    el.textContent = kind === "saved" ? T.saved + " ✓" : kind === "saving" ? T.saving : kind === "offline" ? T.offline : T.failed;
  }
  function flash(text) { $("#flash").textContent = text || ""; }
  function showError(res) {
    const message = res.data && res.data.error ? res.data.error.message : "HTTP " + res.status;
    setSave("failed");
    flash(T.failed + ": " + message);
  }
  function showProgress(p) {
    const bar = $("#progress");
    if (bar) { bar.max = p.total; bar.value = p.done; }
  }
  function render() {
    AXES.forEach((key, i) => {
      const el = axisEl(i);
      const score = state.scores[key];
      el.classList.toggle("focus", i === state.focus);
      el.classList.toggle("scored", !!score);
      if (score) el.classList.remove("missing");
      $$(".level", el).forEach((b) => {
        const on = Number(b.dataset.level) === score;
        b.classList.toggle("on", on);
        b.setAttribute("aria-checked", on ? "true" : "false");
      });
      $$(".anchors li", el).forEach((li) => li.classList.toggle("on", Number(li.dataset.level) === score));
    });
  }
  function focusAxis(i) {
    state.focus = Math.max(0, Math.min(AXES.length - 1, i));
    render();
    axisEl(state.focus).scrollIntoView({ block: "nearest" });
  }
  function nextUnscored(from) {
    for (let k = 1; k <= AXES.length; k++) {
      const i = (from + k) % AXES.length;
      if (!state.scores[AXES[i]]) return i;
    }
    return -1;
  }
  function setScore(i, level) {
    if (readOnly) return;
    const key = AXES[i];
    if (level) state.scores[key] = level; else delete state.scores[key];
    flash("");
    autosave();
    if (level) {
      const next = nextUnscored(i);
      if (next === -1) { focusAxis(i); $("#submit").focus(); return; }
      focusAxis(next);
    } else {
      render();
    }
  }

  // --- actions ----------------------------------------------------------------------------------------------
  function goTo(position) {
    window.location.href = cfg.page + (position ? "?i=" + position : "");
  }
  async function leaveTo(position) {
    if (!readOnly && state.dirty) {
      enqueue("draft", POS, draftBody());
      await Promise.race([flush(), new Promise((r) => setTimeout(r, 2000))]);
    }
    goTo(position);
  }
  async function submit() {
    if (readOnly || state.busy) return;
    const missing = AXES.filter((k) => !state.scores[k]);
    if (missing.length) {
      flash(T.missing.replace("{n}", String(missing.length)));
      missing.forEach((k) => document.getElementById("axis-" + k).classList.add("missing"));
      focusAxis(AXES.indexOf(missing[0]));
      return;
    }
    const comments = {};
    Object.keys(state.comments).forEach((k) => { if (state.comments[k].trim()) comments[k] = state.comments[k]; });
    state.busy = true;
    $("#submit").disabled = true;
    clearTimeout(draftTimer);
    const res = await enqueueAndWait("submit", POS, { scores: state.scores, comments: comments, elapsed: state.elapsed });
    state.busy = false;
    $("#submit").disabled = false;
    if (!res.ok) return;
    flash("");
    if (cfg.calibration && res.data.reveal) { showReveal(res.data); return; }
    goTo(res.data.next_position);
  }
  function showReveal(result) {
    const body = $("#reveal-body");
    body.textContent = "";
    const judges = result.reveal || [];
    if (!judges.length) {
      const p = document.createElement("p");
      p.textContent = T.reveal_none;
      body.appendChild(p);
    } else {
      const table = document.createElement("table");
      table.className = "reveal";
      const head = table.insertRow();
      ["", T.reveal_you].concat(judges.map((j) => j.judge)).forEach((label) => {
        const th = document.createElement("th");
        th.textContent = label;
        head.appendChild(th);
      });
      AXES.forEach((key) => {
        const row = table.insertRow();
        row.insertCell().textContent = cfg.axis_titles[key] || key;
        const mine = result.item.scores[key];
        row.insertCell().textContent = mine == null ? "–" : String(mine);
        judges.forEach((j) => {
          const cell = row.insertCell();
          const theirs = j.scores[key];
          cell.textContent = theirs == null ? "–" : String(theirs);
          if (theirs != null && mine != null && Math.abs(theirs - mine) >= 2) cell.className = "diff";
        });
      });
      body.appendChild(table);
    }
    const dialog = $("#reveal-dialog");
    dialog.dataset.next = result.next_position == null ? "" : String(result.next_position);
    dialog.showModal();
    $("#reveal-continue").focus();
  }
  function continueAfterReveal() {
    const next = $("#reveal-dialog").dataset.next;
    goTo(next ? Number(next) : null);
  }
  function openSkip() {
    if (readOnly || cfg.state === "done") return;
    $("#skip-dialog").showModal();
    const first = $("#skip-form input[name=reason]");
    if (first) first.focus();
  }
  async function confirmSkip() {
    const chosen = $("#skip-form input[name=reason]:checked");
    if (!chosen) return;
    const reason = chosen.value === "other" ? $("#skip-other").value.trim() : chosen.value;
    if (!reason) { $("#skip-other").focus(); return; }
    $("#skip-dialog").close();
    const res = await enqueueAndWait("skip", POS, { reason: reason, elapsed: state.elapsed });
    if (res.ok) goTo(res.data.next_position);
  }

  // --- keyboard ---------------------------------------------------------------------------------------------
  document.addEventListener("keydown", (e) => {
    // A Chinese input method is composing: Enter picks a candidate, Esc cancels it; none of them is ours.
    if (e.isComposing || e.keyCode === 229) return;
    const dialog = $("dialog[open]");
    if (dialog) return dialogKeys(dialog, e);
    const target = e.target;
    if (target && target.matches && target.matches("textarea, input")) {
      if (e.key === "Escape") { target.blur(); e.preventDefault(); }
      else if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) { target.blur(); e.preventDefault(); submit(); }
      return;
    }
    if (e.ctrlKey || e.metaKey || e.altKey) return;
    const key = e.key;
    let handled = true;
    if (/^[1-5]$/.test(key)) setScore(state.focus, Number(key));
    else if (key === "0" || key === "Backspace" || key === "Delete") setScore(state.focus, 0);
    else if (key === "ArrowDown" || key === "j" || (key === "Tab" && !e.shiftKey)) focusAxis(state.focus + 1);
    else if (key === "ArrowUp" || key === "k" || (key === "Tab" && e.shiftKey)) focusAxis(state.focus - 1);
    else if (key === "Enter") submit();
    else if (key === "c" || key === "C") { e.preventDefault(); $(".comment", axisEl(state.focus)).focus(); }
    else if (key === "s" || key === "S") openSkip();
    else if ((key === "ArrowLeft" || key === "p") && POS > 1) leaveTo(POS - 1);
    else if ((key === "ArrowRight" || key === "n") && POS < cfg.total) leaveTo(POS + 1);
    else if (key === "a" || key === "A") document.body.classList.toggle("all-anchors");
    else if (key === "?") $("#help-dialog").showModal();
    else handled = false;
    if (handled) e.preventDefault();
  });
  function dialogKeys(dialog, e) {
    if (dialog.id === "reveal-dialog" && e.key === "Enter") { e.preventDefault(); continueAfterReveal(); return; }
    if (dialog.id === "help-dialog" && (e.key === "Enter" || e.key === "?")) { e.preventDefault(); dialog.close(); return; }
    if (dialog.id === "skip-dialog") {
      const inOther = e.target && e.target.id === "skip-other";
      if (!inOther && /^[1-4]$/.test(e.key)) {
        e.preventDefault();
        const radios = $$("#skip-form input[name=reason]");
        radios[Number(e.key) - 1].checked = true;
        radios[Number(e.key) - 1].focus();
        if (e.key === "4") $("#skip-other").focus();
      } else if (e.key === "Enter" && !e.shiftKey) {
        e.preventDefault();
        if (e.target && e.target.id === "skip-cancel") dialog.close();
        else confirmSkip();
      }
    }
  }

  // --- mouse and text ---------------------------------------------------------------------------------------
  AXES.forEach((key, i) => {
    const el = axisEl(i);
    $$(".level", el).forEach((b) => b.addEventListener("click", () => { state.focus = i; setScore(i, Number(b.dataset.level)); }));
    $(".axis-title", el).addEventListener("click", () => focusAxis(i));
    const box = $(".comment", el);
    box.readOnly = readOnly;
    box.addEventListener("focus", () => { state.focus = i; render(); });
    box.addEventListener("input", () => { state.comments[key] = box.value; autosave(); });
  });
  $("#submit").addEventListener("click", submit);
  $("#skip").addEventListener("click", openSkip);
  $("#prev").addEventListener("click", () => leaveTo(POS - 1));
  $("#next").addEventListener("click", () => leaveTo(POS + 1));
  $("#help-button").addEventListener("click", () => $("#help-dialog").showModal());
  $("#help-close").addEventListener("click", () => $("#help-dialog").close());
  $("#skip-cancel").addEventListener("click", () => $("#skip-dialog").close());
  $("#skip-form").addEventListener("submit", (e) => { e.preventDefault(); confirmSkip(); });
  $("#reveal-continue").addEventListener("click", continueAfterReveal);

  // --- time on the item: counted while the page is visible and in use ---------------------------------------
  let lastActivity = Date.now();
  ["keydown", "mousemove", "mousedown", "wheel", "touchstart"].forEach((ev) =>
    document.addEventListener(ev, () => { lastActivity = Date.now(); }, { passive: true }));
  setInterval(() => {
    if (document.visibilityState === "visible" && Date.now() - lastActivity < 120000) state.elapsed += 1;
  }, 1000);

  // --- start: what this computer still holds wins over the server's older copy -------------------------------
  const pending = loadOutbox();
  const mine = pending["submit:" + POS] || pending["draft:" + POS];
  if (mine && mine.body) {
    if (mine.body.scores) state.scores = Object.assign({}, mine.body.scores);
    if (mine.body.comments) {
      state.comments = Object.assign({}, mine.body.comments);
      AXES.forEach((key, i) => { $(".comment", axisEl(i)).value = state.comments[key] || ""; });
    }
    if (mine.body.elapsed > state.elapsed) state.elapsed = mine.body.elapsed;
    setSave("saving");
  }
  const first = nextUnscored(-1);
  focusAxis(first === -1 ? 0 : first);
  if (Object.keys(pending).length) flush();
  document.body.dataset.ready = "1";
})();
