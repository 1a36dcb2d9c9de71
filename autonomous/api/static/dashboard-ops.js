/* Panels that act or show what the operator did: self-healing (attempts, MTTR), rollouts,
   governance (mode switch, pending approvals with Approve / Reject) and the dashboards
   (every Dashboard of the desired state, one at a time: the page's own, or the one picked). */
"use strict";
(function (A) {
  const { el, empty, table, fmtTime, fmtNum, getJSON, send, detail, setBody, failure } = A;
  const limits = A.policy.rows || {};
  const CHARTS = { overview: "health", health: "health", telemetry: "services",
    learning: "neural-router" };

  function notRunning(name, what, sub) {
    setBody(name, empty(what + " not running on this operator: enable the " + sub +
      " controller under spec.controllers in config/autonomous.yaml."));
  }

  A.panels.healing = async function () {
    if (!(await A.subsystems()).includes("healing"))
      return notRunning("healing", "Self-healing is", "healing");
    const [st, hist] = await Promise.all([getJSON("/api/healing/stats"),
      getJSON("/api/healing/history?limit=" + limits.healing)]);
    if (st.status !== 200) return failure("healing", st, "Healing stats");
    const t = st.body.total || {};
    const byType = Object.entries(st.body.by_type || {}).map(([type, s]) => el("tr", {},
      el("th", { scope: "row", text: type }), el("td", { text: s.incidents }),
      el("td", { text: s.attempts }), el("td", { text: s.healed }),
      el("td", { text: s.failed + s.escalated, class: s.failed + s.escalated ? "bad" : null }),
      el("td", { text: s.mttr_s ? fmtNum(s.mttr_s.median, "s") + " / " +
        fmtNum(s.mttr_s.max, "s") : "—" })));
    const incidents = (hist.status === 200 ? hist.body : []).map(i => el("tr",
      { "data-incident": i.id },
      el("th", { scope: "row", text: i.service }), el("td", { text: i.error_type || "—" }),
      el("td", { text: i.strategy || "—" }),
      el("td", { class: i.state === "healed" ? "ok" : i.state === "escalated" ||
        i.state === "failed" ? "bad" : "warn", text: i.state }),
      el("td", { text: (i.attempts || []).length }),
      el("td", { text: i.mttr_s === null || i.mttr_s === undefined ? "—" :
        fmtNum(i.mttr_s, "s") }),
      el("td", { text: fmtTime(i.detected_at) })));
    setBody("healing",
      el("p", { id: "healing-total" }, el("strong", { text: t.incidents || 0 }), " incidents, ",
        el("strong", { text: t.attempts || 0 }), " attempts, ",
        el("strong", { class: "ok", text: t.healed || 0 }), " healed, ",
        el("strong", { class: (t.failed || t.escalated) ? "bad" : null,
          text: (t.failed || 0) + (t.escalated || 0) }), " failed or escalated"),
      byType.length ? table("Healing by error type", ["Error type", "Incidents", "Attempts",
        "Healed", "Failed", "MTTR median / max"], byType)
        : empty("No incidents yet: healing acts when a service fails."),
      el("h3", { text: "Latest incidents" }),
      incidents.length ? table("Latest healing incidents", ["Service", "Error type",
        "Strategy", "State", "Attempts", "MTTR", "Detected"], incidents)
        : empty("No healing incidents recorded."));
  };

  A.panels.rollouts = async function () {
    if (!(await A.subsystems()).includes("evolution"))
      return notRunning("rollouts", "Evolution is", "gateway or evolution");
    const [st, hist] = await Promise.all([getJSON("/api/evolution/status"),
      getJSON("/api/evolution/history?limit=" + limits.rollouts)]);
    if (st.status !== 200) return failure("rollouts", st, "Rollout status");
    const running = (st.body.rollouts || []).map(r => el("tr", { "data-rollout": r.id },
      el("th", { scope: "row", text: r.service }),
      el("td", { text: r.from_version + " → " + r.to_version }),
      el("td", { text: r.phase ? r.phase + " (" + r.weight + " %)" : "phase " + r.phase_index }),
      el("td", { text: r.verdict ? r.status + ", judge: " + r.verdict : r.status }),
      el("td", { text: r.decision || "—" }),  // the controller's last word: why it holds
      el("td", { text: fmtTime(r.phase_started_at) })));
    const quarantined = (st.body.quarantined || []).map(q =>
      el("li", { text: q.service + " " + q.version }));
    const events = (hist.status === 200 ? hist.body : []).map(e => el("tr", {},
      el("th", { scope: "row", text: e.service + " " + e.from_version + " → " + e.to_version }),
      el("td", { text: e.action }), el("td", { text: e.reason }),
      el("td", { text: fmtTime(e.ts) })));
    setBody("rollouts",
      running.length ? table("Running rollouts", ["Service", "Versions", "Phase", "Status",
        "Why", "Phase since"], running) : empty("No rollout running."),
      el("h3", { text: "Quarantined versions" }),
      quarantined.length ? el("ul", {}, quarantined) : empty("None quarantined."),
      el("h3", { text: "Rollout history" }),
      events.length ? table("Rollout history", ["Rollout", "Action", "Reason", "When"], events)
        : empty("No rollout events yet: they appear when a service's version changes."));
  };

  async function decide(a, verb, button) {
    button.disabled = true;
    const r = await send("POST", "/api/approvals/" + encodeURIComponent(a.id) + "/" + verb,
      { reason: verb + "d in the dashboard" });
    A.announce(r.status === 200 ? "Approval " + a.id + " " + r.body.state
      : verb + " failed: " + detail(r));
    button.disabled = false;
    A.refresh(["governance", "healing"]);
  }

  function modeControls(current) {
    const box = document.querySelector("#panel-governance .controls");
    if (!box.firstChild) {
      const select = el("select", { id: "mode-select" }, ["governed", "growth",
        "emergency_stop"].map(m => el("option", { value: m, text: m })));
      const reason = el("input", { id: "mode-reason", type: "text", maxlength: "2000",
        placeholder: "why (kept in the audit log)" });
      const form = el("form", { class: "mode-form", onsubmit: async ev => {
        ev.preventDefault();
        const btn = form.querySelector("button");
        btn.disabled = true;
        const r = await send("PUT", "/api/governance/mode",
          { mode: select.value, reason: reason.value.trim() || "switched in the dashboard" });
        A.announce(r.status === 200 ? "Mode is now " + r.body.mode
          : "Mode switch failed: " + detail(r));
        btn.disabled = false;
        if (r.status === 200) reason.value = "";
        A.refresh(["governance", "services"]);
      } },
        el("label", { for: "mode-select", text: "Switch mode to" }), select,
        el("label", { for: "mode-reason", text: "Reason" }), reason,
        el("button", { type: "submit" }, "Switch mode"));
      box.append(form);
    }
    const select = document.getElementById("mode-select");
    if (select.dataset.current !== current) {  // keep a choice being made across re-renders
      select.dataset.current = current;
      select.value = current;
    }
  }

  A.panels.governance = async function () {
    const [mode, appr] = await Promise.all([getJSON("/api/governance/mode"),
      getJSON("/api/approvals?state=pending")]);
    if (mode.status !== 200) return failure("governance", mode, "Governance mode");
    const hist = (mode.body.history || []).slice(0, limits.mode_history).map(h => el("li", {
      text: fmtTime(h.ts) + ": " + h.old_mode + " → " + h.new_mode +
        (h.actor ? " by " + h.actor : "") +
        (h.reason ? " (" + h.reason + ")" : "") }));
    const pend = appr.status === 200 ? appr.body.approvals || [] : [];
    const pendRows = pend.map(a => {
      const what = a.action_kind + " on " + a.resource;
      const approve = el("button", { type: "button", "aria-label": "Approve " + what,
        "data-key": "approve|" + a.id, onclick: () => decide(a, "approve", approve) }, "Approve");
      const reject = el("button", { type: "button", "aria-label": "Reject " + what,
        "data-key": "reject|" + a.id, onclick: () => decide(a, "reject", reject) }, "Reject");
      return el("tr", { "data-approval": a.id },
        el("th", { scope: "row", text: what }), el("td", { text: a.controller }),
        el("td", { text: (a.action && (a.action.strategy || a.action.reason)) || "" }),
        el("td", { text: fmtTime(a.expires_at) }), el("td", { class: "actions" }, approve, reject));
    });
    modeControls(mode.body.mode);
    setBody("governance",
      el("p", {}, "Mode: ", el("strong", { id: "gov-mode", text: mode.body.mode })),
      hist.length ? el("ul", {}, hist) : empty("No mode switches recorded yet."),
      el("h3", { text: "Pending approvals" }),
      pendRows.length ? table("Pending approvals", ["Action", "Controller", "Detail",
        "Expires", "Decision"], pendRows)
        : empty("No approvals pending. Actions gated by governed mode wait here."));
  };

  /* The dashboard shown: ``#dashboard=<name>`` in the address (a link to it), else the
     page's own. */
  function chosen(list) {
    const m = /(?:^|&)dashboard=([^&]+)/.exec(location.hash.slice(1));
    const want = m ? decodeURIComponent(m[1]) : null;
    return list.some(d => d.name === want) ? want : CHARTS[A.page];
  }
  function picker(list, name) {
    const sel = el("select", { id: "dashboard-pick", "data-key": "dashboard-pick",
      onchange: () => { location.hash = "dashboard=" + encodeURIComponent(sel.value); } },
    list.map(d => el("option", { value: d.name, selected: d.name === name,
      text: d.title || d.name })));
    return el("p", { class: "controls" }, el("label", { for: "dashboard-pick",
      text: "Dashboard " }), sel);
  }
  window.addEventListener("hashchange", () => A.refresh(["charts"]));

  let chartTimer = null;
  A.panels.charts = async function () {
    if (!(await A.subsystems()).includes("telemetry"))
      return notRunning("charts", "Telemetry is", "telemetry");
    const list = await getJSON("/api/telemetry/dashboards");
    if (list.status !== 200) return failure("charts", list, "Dashboards");
    const name = chosen(list.body);
    const known = list.body.find(d => d.name === name);
    if (!known) return setBody("charts", picker(list.body, name), empty("No Dashboard named " +
      name + " in the desired state (desired_state/dashboards.yaml)."));
    const res = await getJSON("/api/telemetry/dashboard/" + encodeURIComponent(name));
    if (res.status !== 200) return failure("charts", res, "Dashboard " + name);
    const figures = A.charts(res.body);
    setBody("charts", picker(list.body, name), el("p", { class: "muted", text:
      res.body.title + " dashboard, " + fmtTime(res.body.start) + " to " +
      fmtTime(res.body.end) + " (refreshed every " + res.body.refresh_seconds + " s)" }),
      figures.length ? el("div", { class: "charts", "data-dashboard": name }, figures) :
        empty("This dashboard has no panel."));
    if (chartTimer === null && res.body.refresh_seconds) chartTimer = setInterval(
      () => A.refresh(["charts"]), res.body.refresh_seconds * 1000);
  };
})(window.Atlas);
