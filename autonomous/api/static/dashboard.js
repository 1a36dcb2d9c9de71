/* ATLAS Autonomous dashboards: plain DOM, no build step, only same-origin requests. */
"use strict";
(function () {
  const A = window.Atlas;
  const { el, empty, table, announce, fmtTime, getJSON, send, detail, setBody, failure } = A;
  const PAGE = A.page;
  const limits = A.policy.rows || {};
  const openChains = new Set();  // decisions whose "why" is open survive a live re-render

  const panels = {
    async health() {
      const res = await getJSON("/api/health/comprehensive");
      if (res.status !== 200) return failure("health", res, "Global health");
      const gh = res.body;
      const cls = gh.score >= 80 ? "ok" : gh.score >= 50 ? "warn" : "bad";
      const rows = Object.entries(gh.components || {}).map(([name, c]) =>
        el("tr", {}, el("th", { scope: "row", text: name }),
          el("td", { text: c.score === undefined || c.score === null ? "—" : c.score }),
          el("td", { text: (c.problems || []).map(p => p.metric + " " + p.value).join(", ") ||
            (c.active !== undefined ? c.active + " active" : "") })));
      const recs = (gh.recommendations || []).map(r => el("li", { text: r.text }));
      setBody("health",
        el("p", { class: "score " + cls, id: "health-score" }, String(gh.score)),
        el("p", { class: "muted", text: "score 0-100 at " + fmtTime(gh.ts) }),
        rows.length ? table("Health components", ["Component", "Score", "Problems"], rows)
          : empty("No components reported yet."),
        el("h3", { text: "Recommendations" }),
        recs.length ? el("ul", {}, recs) : empty("No recommendations: nothing needs attention."));
    },
    async services() {
      const res = await getJSON("/api/reconcile/status");
      if (res.status !== 200) return failure("services", res, "Reconcile status");
      const ctl = res.body.controllers || {};
      const byName = {};
      for (const r of (ctl.services && ctl.services.resources) || []) byName[r.name] = { svc: r };
      for (const r of (ctl.healing && ctl.healing.resources) || [])
        if (byName[r.name]) byName[r.name].heal = r;
      const rows = Object.keys(byName).sort().map(name => {
        const { svc, heal } = byName[name];
        const healConds = ((heal && heal.conditions) || []).filter(c => c.status === "True");
        const conds = [...(svc.conditions || []), ...healConds];
        const hc = svc.health === "Healthy" ? "ok" : svc.health === "Unknown" ? "muted" : "bad";
        const d = svc.details || {};
        return el("tr", { "data-service": name },
          el("th", { scope: "row", text: name }),
          el("td", { text: svc.sync }),
          el("td", { class: hc, "data-health": svc.health, text: svc.health }),
          el("td", { "data-pid": d.pid === null || d.pid === undefined ? "" : d.pid,
            text: d.pid === null || d.pid === undefined ? "not running" : d.pid }),
          el("td", { "data-restarts": d.restarts || 0, text: d.restarts || 0 }),
          el("td", {}, conds.length ? conds.map(c => el("span", {
            class: "cond" + ((healConds.includes(c) || c.status === "False") ? " on" : ""),
            title: c.message || c.reason,
            text: c.type + "=" + c.status + (c.reason ? " (" + c.reason + ")" : "") }))
            : el("span", { class: "muted", text: "none set" })));
      });
      const ctlRows = Object.values(ctl).map(c => el("tr", {},
        el("th", { scope: "row", text: c.name }), el("td", { text: c.runs }),
        el("td", { text: c.errors, class: c.errors ? "bad" : null }),
        el("td", { text: fmtTime(c.last_run_at) })));
      setBody("services",
        el("p", { class: "muted", text: "generation " + res.body.generation + ", mode " +
          res.body.mode }),
        rows.length ? table("Services",
          ["Service", "Sync", "Health", "PID", "Restarts", "Conditions"], rows)
          : empty("No services declared: add a kind: Service file to desired_state/."),
        el("h3", { text: "Controllers" }),
        ctlRows.length ? table("Controllers", ["Controller", "Runs", "Errors", "Last run"],
          ctlRows) : empty("No controller has run yet."));
    },
    async alerts() {
      const res = await getJSON("/api/telemetry/alerts?limit=" + limits.alerts);
      if (res.status !== 200) return failure("alerts", res, "Alerts");
      const alertRows = (res.body.active || []).slice(0, limits.alerts).map(a => {
        const acked = a.state === "acknowledged" || !!a.acknowledged_by || !!a.acked_by;
        const name = (a.labels && a.labels.alertname) || a.rule || "alert " + a.id;
        const svc = a.labels && a.labels.service ? " on " + a.labels.service : "";
        return el("tr", { "data-alert": a.id },
          el("th", { scope: "row", text: name + svc }),
          el("td", { text: a.severity || (a.labels && a.labels.severity) || "—" }),
          el("td", { text: a.state || "—" }),
          el("td", { text: a.summary || "" }),
          el("td", {}, acked ? el("span", { class: "muted", text: "acknowledged" }) :
            el("button", { type: "button", "aria-label": "Acknowledge " + name + svc,
              onclick: async ev => {
                ev.target.disabled = true;
                const r = await send("POST", "/api/telemetry/alerts/ack/" + a.id);
                announce(r.status === 200 ? "Alert " + name + " acknowledged"
                  : "Acknowledge failed: " + detail(r));
                ev.target.disabled = false;
                refresh(["alerts"]);
              } }, "Acknowledge")));
      });
      setBody("alerts", alertRows.length ?
        table("Active alerts", ["Alert", "Severity", "State", "Summary", "Action"], alertRows) :
        empty("No active alerts. Alerts appear here when a rule in " +
          "policies/telemetry.yaml fires."));
    },
    async decisions() {
      // one batched read: every controller's latest decision chains, newest first, bounded
      const res = await getJSON("/api/reconcile/why?limit=" + limits.decisions);
      if (res.status !== 200) return failure("decisions", res, "Decisions");
      const items = (res.body.decisions || []).map(d => ({ ctl: d.controller,
        resource: d.resource, chain: d.chain,
        last: [...d.chain].reverse().find(n => n.type === "decision") ||
          d.chain[d.chain.length - 1] }));
      const list = items.slice(0, limits.decisions).map((it, i) => {
        const key = it.ctl + "|" + it.resource + "|" + it.last.id;
        const id = "why-" + i;
        const isOpen = openChains.has(key);
        const chainEl = el("ol", { class: "chain", id, hidden: !isOpen },
          it.chain.map(n => el("li", {}, el("strong", { text: n.type }), " ", n.label,
            el("span", { class: "muted", text: " " + fmtTime(n.ts) }))));
        const btn = el("button", { type: "button", "aria-expanded": String(isOpen),
          "aria-controls": id, "data-key": key, onclick: () => {
            const open = chainEl.hidden;
            chainEl.hidden = !open;
            btn.setAttribute("aria-expanded", String(open));
            if (open) openChains.add(key); else openChains.delete(key);
          } }, "Why: " + it.last.label);
        return el("li", {}, btn, el("span", { class: "muted", text: " " + it.ctl + ", " +
          fmtTime(it.last.ts) }), chainEl);
      });
      setBody("decisions", list.length ? el("ul", {}, list) :
        empty("No decisions recorded yet: they appear after a controller acts."));
    },
  };

  Object.assign(panels, A.panels);
  const active = Object.keys(panels).filter(name => {
    const s = document.getElementById("panel-" + name);
    const on = s && s.dataset.pages.split(" ").includes(PAGE);
    if (on) s.hidden = false;
    return on;
  });

  const running = new Set(), again = new Set();
  async function one(n) {
    if (running.has(n)) { again.add(n); return; }
    running.add(n);
    try { await panels[n](); } catch (e) {
      setBody(n, el("p", { class: "error", text: "Could not load: " + e.message }));
    } finally {
      running.delete(n);
      if (again.delete(n)) one(n);
    }
  }
  /* Panels load side by side: one slow read does not hold the others back. */
  function refresh(names) {
    return Promise.all(names.filter(n => active.includes(n)).map(one));
  }

  A.refresh = refresh;

  /* One stream per page. With authenticated reads EventSource cannot send the bearer token:
     it carries a signed short-lived query token (POST /dashboard/stream-token) and, once the
     server ends or refuses it, reconnects with a fresh one. */
  const live = document.getElementById("live-state");
  const retryMs = A.policy.retry_ms;
  async function streamUrl() {
    if (!A.authReads) return "/dashboard/events";
    const r = await send("POST", "/dashboard/stream-token");
    if (r.status !== 200) throw new Error("stream token: " + detail(r));
    return "/dashboard/events?st=" + encodeURIComponent(r.body.token);
  }
  async function connect() {
    let url;
    try { url = await streamUrl(); } catch (e) {
      live.textContent = "live updates off: " + e.message; live.className = "warn";
      return;
    }
    const es = new EventSource(url);
    es.addEventListener("hello", () => { live.textContent = "live"; live.className = "ok"; });
    es.addEventListener("refresh", ev => refresh(JSON.parse(ev.data).panels));
    es.onerror = () => {
      live.textContent = "reconnecting"; live.className = "warn";
      if (es.readyState === EventSource.CLOSED) setTimeout(connect, retryMs);
      else if (A.authReads) { es.close(); setTimeout(connect, retryMs); }  // token may expire
    };
  }

  function start() {
    refresh(active).then(() => { A.firstLoad = false; });
    connect();
  }
  if (A.authReads && !A.storedToken()) A.askToken(start, () => {
    live.textContent = "reads need the API token"; live.className = "warn";
  });
  else start();
})();
