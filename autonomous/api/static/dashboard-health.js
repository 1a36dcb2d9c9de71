/* The Health page's resources panel: the latest system sample (CPU, memory, GPU, disks,
   network probes) with what the platform could not measure and why, and the predicted
   threshold crossings (GET /api/health/metrics/system, /api/health/predictions). */
"use strict";
(function (A) {
  const { el, empty, table, fmtTime, fmtNum, getJSON, setBody, failure } = A;

  function row(name, value, detail) {
    return el("tr", {}, el("th", { scope: "row", text: name }),
      el("td", { text: value }), el("td", { class: "muted", text: detail || "" }));
  }
  const pct = v => v === null || v === undefined ? "—" : fmtNum(v, "%");
  function rows(s) {
    const out = [], c = s.cpu || {}, m = (s.memory || {}).ram || {}, sw = (s.memory || {}).swap;
    const load = c.load || {};
    out.push(row("CPU", pct(c.percent), (c.per_core || []).length + " cores: " +
      (c.per_core || []).map(pct).join(", ") + "; load " + [load["1m"], load["5m"],
      load["15m"]].map(v => fmtNum(v)).join(" / ")));
    out.push(row("RAM", pct(m.percent), fmtNum(m.used_mb) + " of " + fmtNum(m.total_mb) +
      " MiB used"));
    if (sw) out.push(row("Swap", pct(sw.percent), fmtNum(sw.used_mb) + " of " +
      fmtNum(sw.total_mb) + " MiB"));
    const g = s.gpu || {};
    if (g.devices && g.devices.length) for (const d of g.devices)
      out.push(row("GPU " + d.index, pct(d.utilization_percent), d.name + ", VRAM " +
        pct(d.vram_percent) + " (" + fmtNum(d.memory_used_mb) + " of " +
        fmtNum(d.memory_total_mb) + " MiB)" + (d.temperature_c === null ? "" : ", " +
        fmtNum(d.temperature_c) + " °C")));
    else out.push(row("GPU", "—", (g.reason || "not reported") + (g.detail ? " (" + g.detail +
      ")" : "")));
    for (const [mount, d] of Object.entries(s.disks || {}))
      out.push(row("Disk " + mount, pct(d.percent), fmtNum(d.free_gb) + " of " +
        fmtNum(d.total_gb) + " GiB free"));
    for (const [target, t] of Object.entries((s.network_probe || {}).targets || {}))
      out.push(row("TCP " + target, t.error ? "—" : fmtNum(t.latency_ms, "ms"),
        t.error ? t.error : "loss " + pct(t.loss_percent)));
    return out;
  }
  function eta(p) {
    const h = p.eta_high_seconds === null ? "later" : fmtNum(p.eta_high_seconds / 3600, "h");
    return fmtNum(p.eta_seconds / 3600, "h") + " (" + fmtNum(p.eta_low_seconds / 3600, "h") +
      " to " + h + ")";
  }

  let timer = null;
  A.panels.resources = async function () {
    const [sys, pred] = await Promise.all([getJSON("/api/health/metrics/system"),
      getJSON("/api/health/predictions")]);
    if (sys.status !== 200) return failure("resources", sys, "System metrics");
    const s = sys.body;
    const missing = Object.entries(s.unavailable || {}).map(([k, why]) =>
      el("li", {}, el("code", { text: k }), ": " + why));
    const preds = pred.status === 200 ? (pred.body.predictions || []) : [];
    const predRows = preds.map(p => el("tr", {}, el("th", { scope: "row", text: p.metric }),
      el("td", { text: fmtNum(p.level) + " → " + fmtNum(p.threshold) }),
      el("td", { text: fmtNum(p.slope_per_hour) + " per hour" }), el("td", { text: eta(p) })));
    setBody("resources",
      el("p", { class: "muted", text: "sampled at " + fmtTime(s.ts) }),
      table("Host resources", ["Resource", "Use", "Detail"], rows(s)),
      el("h3", { text: "Not measured here" }),
      missing.length ? el("ul", { id: "resources-missing" }, missing)
        : empty("Every metric is measured on this host."),
      el("h3", { text: "Predicted threshold crossings" }),
      pred.status !== 200 ? el("p", { class: "error", text: "Predictions unavailable: " +
        A.detail(pred) }) : predRows.length ? table("Predicted threshold crossings",
        ["Metric", "Level → threshold", "Trend", "In (interval)"], predRows)
        : empty("No metric is heading for its threshold."));
    if (timer === null) timer = setInterval(() => A.refresh(["resources"]),
      A.policy.resources_refresh_seconds * 1000);
  };
})(window.Atlas);
