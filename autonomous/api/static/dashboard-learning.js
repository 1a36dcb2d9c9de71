/* Learning page panels: the learning engine's insights (pattern analyzer, feedback findings,
   action items) and its optimizations (learned changes proposed, applied, baking, kept or
   reverted, with the value in force beside the proposed one, and the optimizer's trials). */
"use strict";
(function (A) {
  const { el, empty, table, fmtTime, getJSON, setBody, failure } = A;

  async function served(name) {
    // ask the API description first: a missing route would log a 404 in the console
    const api = await getJSON("/openapi.json");
    const paths = Object.keys((api.body && api.body.paths) || {});
    if (paths.includes("/api/learning/insights")) return true;
    setBody(name, empty("Learning engine not available: this operator serves no " +
      "/api/learning/* route; enable the learning controller under spec.controllers in " +
      "config/autonomous.yaml."));
    return false;
  }
  function value(v) {
    if (v === null || v === undefined) return "—";
    return typeof v === "object" ? JSON.stringify(v) : String(v);
  }
  function interval(f) {
    return (100 * f.rate).toFixed(1) + " % [" + (100 * f.low).toFixed(1) + ", " +
      (100 * f.high).toFixed(1) + "] vs " + (100 * f.baseline).toFixed(1) + " %";
  }

  A.panels.learning = async function () {
    if (!(await served("learning"))) return;
    const res = await getJSON("/api/learning/insights");
    if (res.status !== 200) return failure("learning", res, "Learning insights");
    const b = res.body;
    const patterns = (b.patterns || []).map(p => el("li", { "data-kind": p.kind },
      el("strong", { text: p.kind }), " ", p.text,
      p.cites.length ? el("span", { class: "muted", text: " (from " +
        p.cites.slice(0, 3).join(", ") + (p.cites.length > 3 ? ", …" : "") + ")" }) : null));
    const findings = [...(b.findings || []), ...(b.improvement_areas || [])]
      .filter((f, i, all) => all.findIndex(g => g.area === f.area) === i)
      .map(f => el("tr", {}, el("th", { scope: "row", text: f.area }),
        el("td", { text: f.verdict, class: f.verdict === "worse" ? "bad" :
          f.verdict === "better" ? "ok" : "muted" }),
        el("td", { text: f.bad + " / " + f.total }), el("td", { text: interval(f) })));
    const actions = (b.action_items || []).map(a => el("li", {}, a.action,
      a.file ? el("span", { class: "muted", text: " — " + a.file + (a.rule ? "#" + a.rule : "") })
        : null));
    const counts = Object.entries(b.proposals || {}).map(([s, n]) => s + " " + n).join(", ");
    setBody("learning",
      el("p", { class: "muted", text: "cycle " + b.cycle + ", mode " + b.mode + "; proposals: " +
        (counts || "none yet") }),
      el("h3", { text: "Usage patterns" }),
      patterns.length ? el("ul", { id: "learning-patterns" }, patterns)
        : empty("No usage pattern stated yet: the pattern analyzer needs more history."),
      el("h3", { text: "Feedback findings" }),
      findings.length ? table("Feedback findings per area",
        ["Area", "Verdict", "Bad / total", "Rate [95 % interval] vs baseline"], findings)
        : empty("No feedback recorded yet (POST /api/learning/feedback or alert acks)."),
      el("h3", { text: "Action items" }),
      actions.length ? el("ul", {}, actions)
        : empty("No action items: no area's interval excludes its baseline."));
  };

  A.panels.optimizations = async function () {
    if (!(await served("optimizations"))) return;
    const res = await getJSON("/api/learning/optimizations");
    if (res.status !== 200) return failure("optimizations", res, "Optimizations");
    const rows = [...res.body.pending, ...res.body.applied].map(p => el("tr",
      { "data-proposal": p.id, "data-state": p.state },
      el("th", { scope: "row", text: p.key }), el("td", { text: value(p.old) }),
      el("td", { text: value(p.new) }),
      el("td", { text: p.state, class: p.state === "reverted" || p.state === "rejected" ? "bad"
        : p.state === "kept" ? "ok" : null }),
      el("td", { text: p.source }),
      el("td", { text: p.bake_until ? "bakes until " + fmtTime(p.bake_until)
        : fmtTime(p.updated_at || p.created_at) }),
      el("td", { text: p.reason || p.title })));
    const trials = res.body.trials || [];
    const safe = trials.filter(t => t.safe).length;
    setBody("optimizations",
      rows.length ? table("Learned changes: value in force and proposed value",
        ["Parameter", "In force", "Proposed", "State", "Source", "When", "Why"], rows)
        : empty("No optimizations yet: the learning controller proposes a change once a " +
          "cycle has evidence for it (atlas-autonomous learning cycle runs one now)."),
      el("p", { class: "muted", id: "optimizer-trials", text: trials.length
        ? "optimizer trials this cycle: " + trials.length + " (" + safe + " within constraints)"
        : "no optimizer trials this cycle" }));
  };
})(window.Atlas);
