/* ATLAS Autonomous dashboards, shared helpers: DOM building, same-origin JSON reads and
   writes with the bearer token (asked once, kept in sessionStorage for this tab only). */
"use strict";
window.Atlas = (function () {
  const TOKEN_KEY = "atlas-autonomous-token";
  const body = document.body;
  const policy = JSON.parse(body.dataset.policy || "{}");
  const authReads = body.dataset.authReads === "true";
  let afterToken = [];  // actions waiting for the token dialog (run once it is saved)

  function el(tag, attrs, ...kids) {
    const n = tag.startsWith("svg:") ?
      document.createElementNS("http://www.w3.org/2000/svg", tag.slice(4)) :
      document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === null || v === undefined || v === false) continue;
      if (k === "text") n.textContent = v;
      else if (k.startsWith("on")) n.addEventListener(k.slice(2), v);
      else n.setAttribute(k, v === true ? "" : v);
    }
    for (const c of kids.flat()) if (c !== null && c !== undefined)
      n.append(c instanceof Node ? c : document.createTextNode(String(c)));
    return n;
  }
  function empty(text) { return el("p", { class: "empty", text }); }
  function table(caption, heads, rows) {
    return el("table", {},
      el("caption", { class: "sr-only", text: caption }),
      el("thead", {}, el("tr", {}, heads.map(h => el("th", { scope: "col", text: h })))),
      el("tbody", {}, rows));
  }
  function announce(msg) { document.getElementById("announce").textContent = msg; }
  function fmtTime(iso) {
    if (!iso) return "—";
    const d = typeof iso === "number" ? new Date(iso * 1000) : new Date(iso);
    return isNaN(d) ? String(iso) : d.toLocaleTimeString();
  }
  function fmtNum(v, unit) {
    if (v === null || v === undefined) return "—";
    const n = Math.abs(v) >= 100 ? v.toFixed(0) : Math.abs(v) >= 10 ? v.toFixed(1) : v.toFixed(2);
    return unit ? n + " " + unit : n;
  }

  function storedToken() { return sessionStorage.getItem(TOKEN_KEY); }
  async function answer(r) {
    let b = null;
    try { b = await r.json(); } catch (e) { b = null; }
    if (r.status === 401) sessionStorage.removeItem(TOKEN_KEY);
    return { status: r.status, body: b };
  }
  const inflight = new Map();  // panels loading side by side share one read of a URL
  function getJSON(url) {
    if (inflight.has(url)) return inflight.get(url);
    const headers = { Accept: "application/json" };
    const t = storedToken();  // needed when authenticated_reads is on
    if (t) headers.Authorization = "Bearer " + t;
    const p = fetch(url, { headers }).then(answer).finally(() => inflight.delete(url));
    inflight.set(url, p);
    return p;
  }
  /* A mutating call: without a token the dialog opens and the call runs once it is saved. */
  function send(method, url, json) {
    return new Promise(resolve => {
      const go = async () => {
        const headers = { Authorization: "Bearer " + storedToken() };
        const init = { method, headers };
        if (json !== undefined) {
          headers["Content-Type"] = "application/json";
          init.body = JSON.stringify(json);
        }
        resolve(await answer(await fetch(url, init)));
      };
      if (storedToken()) go(); else askToken(go, () => resolve(
        { status: 0, body: { detail: "no API token given" } }));
    });
  }
  function detail(res) {
    return res.body && res.body.detail ? res.body.detail : "HTTP " + res.status;
  }

  const dialog = document.getElementById("token-dialog");
  function askToken(then, cancelled) {
    afterToken.push({ then, cancelled });
    if (dialog.open) return;
    document.getElementById("token-input").value = "";
    dialog.showModal();
  }
  document.getElementById("token-btn").addEventListener("click", () => askToken(null, null));
  document.getElementById("token-cancel").addEventListener("click", () => dialog.close());
  dialog.addEventListener("close", () => {
    const waiting = afterToken;
    afterToken = [];
    for (const w of waiting) {
      if (storedToken()) { if (w.then) w.then(); } else if (w.cancelled) w.cancelled();
    }
  });
  document.getElementById("token-form").addEventListener("submit", () => {
    const v = document.getElementById("token-input").value.trim();
    if (v) { sessionStorage.setItem(TOKEN_KEY, v); announce("API token saved for this tab"); }
  });

  function setBody(name, ...nodes) {
    const b = document.querySelector("#panel-" + name + " .body");
    const f = document.activeElement;  // keep keyboard focus across a live re-render
    const sel = f && b.contains(f) ? (f.dataset.key ? '[data-key="' + CSS.escape(f.dataset.key) +
      '"]' : f.getAttribute("aria-label") ? '[aria-label="' +
      CSS.escape(f.getAttribute("aria-label")) + '"]' : null) : null;
    b.replaceChildren(...nodes);
    if (sel) { const again = b.querySelector(sel); if (again) again.focus(); }
  }
  function failure(name, res, what) {
    setBody(name, el("p", { class: "error", text: what + " unavailable: " + detail(res) }));
  }
  /* Subsystems running now: a panel reads a subsystem's routes only when it runs. */
  // as the page was served (null when reads need the token: the shell names no state)
  const served = JSON.parse(body.dataset.subsystems || "null");
  async function subsystems() {
    if (api.firstLoad && served !== null) return served;  // later loads ask again
    const r = await getJSON("/dashboard/state");
    return r.status === 200 ? r.body.subsystems : [];
  }

  const api = { firstLoad: true, el, empty, table, announce, fmtTime, fmtNum, getJSON, send, detail, askToken,
    storedToken, setBody, failure, subsystems, policy, authReads, panels: {},
    page: body.dataset.page };
  return api;
})();
