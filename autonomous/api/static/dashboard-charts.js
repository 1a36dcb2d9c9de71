/* Every panel of a dashboard from the dashboard engine's panel data (GET
   /api/telemetry/dashboard/{name}): series as inline SVG, stats, tables, log lines, traces and
   alerts; no chart library, nothing fetched from elsewhere. */
"use strict";
(function (A) {
  const W = 360, H = 90, PAD = 4;
  const COLORS = ["#0550ae", "#a40e26", "#116329", "#7d4e00", "#6639ba", "#1b7c83"];

  function thin(points, max) {
    if (points.length <= max) return points;
    const step = points.length / max, out = [];
    for (let i = 0; i < max; i++) out.push(points[Math.floor(i * step)]);
    out.push(points[points.length - 1]);
    return out;
  }
  function seriesName(labels) {
    const parts = Object.entries(labels || {}).map(([k, v]) => k + "=" + v);
    return parts.length ? parts.join(", ") : "all";
  }

  /* One timeseries panel as a figure: an SVG line per series, its range in words. */
  function timeseries(p, maxPoints, start, end) {
    const series = (p.series || []).filter(s => (s.points || []).some(pt => pt[1] !== null))
      .slice(0, COLORS.length);
    const title = A.el("figcaption", {}, A.el("strong", { text: p.title }),
      p.unit ? " (" + p.unit + ")" : "");
    if (!series.length) return A.el("figure", { class: "chart" }, title,
      A.empty(p.reason || "no data in this range"));
    let lo = Infinity, hi = -Infinity;
    for (const s of series) for (const pt of s.points) {
      if (pt[1] === null) continue;
      lo = Math.min(lo, pt[1]); hi = Math.max(hi, pt[1]);
    }
    let first = end;  // the x axis spans the data, not an empty hour before it
    for (const s of series) first = Math.min(first, s.points[0][0]);
    start = Math.max(start, first);
    const vlo = lo, vhi = hi;  // the values; the drawing scale widens a flat line
    if (lo === hi) { lo -= 1; hi += 1; }
    const x = t => PAD + (W - 2 * PAD) * (t - start) / Math.max(1e-9, end - start);
    const y = v => H - PAD - (H - 2 * PAD) * (v - lo) / (hi - lo);
    const words = [];
    const lines = series.map((s, i) => {
      const pts = thin(s.points, maxPoints).filter(pt => pt[1] !== null);
      const last = pts[pts.length - 1];
      words.push(seriesName(s.labels) + " last " + A.fmtNum(last[1], p.unit));
      return A.el("svg:g", {},
        A.el("svg:polyline", { fill: "none", stroke: COLORS[i], "stroke-width": "1.5",
          points: pts.map(pt => x(pt[0]).toFixed(1) + "," + y(pt[1]).toFixed(1)).join(" ") }),
        // the newest point marked: a series of one point is still seen
        A.el("svg:circle", { cx: x(last[0]).toFixed(1), cy: y(last[1]).toFixed(1), r: "2.5",
          fill: COLORS[i] }));
    });
    const label = p.title + ": " + series.length + " series from " + A.fmtTime(start) +
      " to " + A.fmtTime(end) + ", range " + A.fmtNum(vlo, p.unit) + " to " +
      A.fmtNum(vhi, p.unit) + "; " + words.join("; ");
    const svg = A.el("svg:svg", { viewBox: "0 0 " + W + " " + H, role: "img",
      "aria-label": label, preserveAspectRatio: "none", class: "spark",
      "data-metric": p.metric, "data-series": series.length },
      A.el("svg:rect", { x: 0, y: 0, width: W, height: H, fill: "#fff", stroke: "#d0d7de" }),
      lines);
    const legend = A.el("ul", { class: "legend" }, series.map((s, i) => A.el("li", {},
      A.el("span", { class: "swatch", style: "background:" + COLORS[i] }), words[i])));
    return A.el("figure", { class: "chart" }, title, svg,
      A.el("p", { class: "muted", text: "min " + A.fmtNum(vlo, p.unit) + ", max " +
        A.fmtNum(vhi, p.unit) }), legend);
  }

  function stat(p) {
    const vals = (p.values || []).filter(v => v.value !== null && v.value !== undefined);
    return A.el("figure", { class: "chart stat" },
      A.el("figcaption", {}, A.el("strong", { text: p.title }),
        " (" + p.aggregation + ")"),
      vals.length ? A.el("ul", {}, vals.map(v => A.el("li", {},
        A.el("span", { class: "big", text: A.fmtNum(v.value, p.unit) }), " ",
        seriesName(v.labels)))) : A.empty(p.reason || "no data in this range"));
  }

  /* A value in a table cell: times and durations by their key, lists joined, a nested
     record by its name. */
  function cell(key, v) {
    if (v === null || v === undefined) return "—";
    if (Array.isArray(v)) return v.join(", ");
    if (typeof v === "object") return v.name !== undefined ? String(v.name) : JSON.stringify(v);
    if (typeof v === "number" && /^(ts|start)$|_at$/.test(key)) return A.fmtTime(v);
    if (typeof v === "number" && /_ms$/.test(key)) return A.fmtNum(v, "ms");
    if (typeof v === "number") return Number.isInteger(v) ? String(v) : A.fmtNum(v, "");
    return String(v);
  }
  /* Rows as a table: ``cols`` [key, heading] pairs, the first row's keys when not given.
     A wide figure scrolls sideways when its rows do not fit, so it takes keyboard focus
     (tabindex 0): the arrow keys scroll it. */
  function rows(p, list, cols, none) {
    const cap = A.el("figcaption", {}, A.el("strong", { text: p.title }));
    if (!list.length) return A.el("figure", { class: "chart wide" }, cap, A.empty(none));
    cols = cols || Object.keys(list[0]).filter(k => !/_id$|^id$/.test(k)).slice(0, 8)
      .map(k => [k, k.replace(/_/g, " ")]);
    const body = list.map(r => A.el("tr", {}, cols.map(([k]) => A.el("td", {
      text: cell(k, r[k]) }))));
    return A.el("figure", { class: "chart wide scroll", tabindex: 0, "data-panel": p.type,
      "data-rows": list.length }, cap, A.table(p.title, cols.map(c => c[1]), body));
  }
  const LOG_COLS = [["ts", "Time"], ["level", "Level"], ["service", "Service"],
    ["message", "Message"]];
  const TRACE_COLS = [["name", "Root span"], ["service", "Service"], ["start", "Start"],
    ["duration_ms", "Duration"], ["status", "Status"]];
  const ALERT_COLS = [["severity", "Severity"], ["rule", "Rule"], ["summary", "Summary"],
    ["state", "State"], ["fired_at", "Since"]];
  function other(p) {
    if (p.type === "table") return rows(p, p.rows || [], null, "No rows in this range.");
    if (p.type === "logs") return rows(p, p.lines || [], LOG_COLS,
      "No log lines match in this range.");
    if (p.type === "traces") return rows(p, p.traces || [], TRACE_COLS,
      "No traces in this range.");
    if (p.type === "alerts") return rows(p, p.alerts || [], ALERT_COLS, "No active alerts.");
    return null;
  }

  A.charts = function (data) {
    const max = A.policy.chart_points;
    return (data.panels || []).map(p => p.type === "timeseries" ?
      timeseries(p, max, data.start, data.end) : p.type === "stat" ? stat(p) : other(p))
      .filter(n => n !== null);
  };
})(window.Atlas);
