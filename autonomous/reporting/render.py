"""The report as Markdown and as a self-contained HTML page (no external asset)."""

from __future__ import annotations

import html
from typing import Any

from autonomous.reporting.collect import Check, Metric, Report

__all__ = ["html_page", "markdown"]

_MARK = {"done": "✅ done", "partial": "🟡 partial", "missing": "❌ missing"}


def _sections(r: Report) -> list[tuple[str, list[str], list[list[str]]] | tuple[str, str]]:
    """(title, header, rows) tables or (title, paragraph) in report order."""
    op = r.operator
    out: list[Any] = [("Operator", f"{op['url']}: generation {op['generation']}, mode "
                       f"{op['mode']}, version {op['version']}, data dir {op['data_dir']}; "
                       f"report generated {r.generated_at}.")]
    out.append(("Files and subsystems", ["folder", "Python files", "lines", "running now"],
                [[s["folder"], str(s["files"]), str(s["lines"]),
                  "—" if s["running"] is None else ("yes" if s["running"] else "no")]
                 for s in r.subsystems]))
    out.append(("Controllers", ["controller", "runs", "errors"],
                [[c["name"], str(c["runs"]), str(c["errors"])] for c in r.controllers]))
    out.append(("Feature checklist", ["feature", "status", "evidence"], _checks(r.checklist)))
    out.append(("Integration points", ["integration", "status", "evidence"],
                _checks(r.integrations)))
    if r.tests is None:
        out.append(("Tests", r.tests_reason or "no test results"))
    else:
        t = r.tests
        out.append(("Tests", f"{t['tests']} tests from {t['file']}: {t['passed']} passed, "
                    f"{t['failed']} failed, {t['skipped']} skipped in {t['time_s']} s."))
        if t["failures"]:
            out.append(("Failing tests", ["test", "message"],
                        [[f["name"], f["message"]] for f in t["failures"]]))
        out.append(("Slowest tests", ["test", "seconds"],
                    [[s["name"], str(s["time_s"])] for s in t["slowest"]]))
    out.append(("Baseline metrics (this machine)", ["figure", "value", "source"],
                [_metric(m) for m in r.metrics]))
    out.append(("Next steps", ["step"], [[s] for s in r.next_steps] or [["nothing open"]]))
    return out


def _checks(checks: list[Check]) -> list[list[str]]:
    return [[c.name, _MARK[c.status], c.evidence] for c in checks]


def _metric(m: Metric) -> list[str]:
    value = "null" if m.value is None else f"{m.value:g} {m.unit}"
    return [m.name, value, m.source]


def markdown(r: Report) -> str:
    lines = ["# ATLAS Autonomous report", ""]
    for sec in _sections(r):
        lines += [f"## {sec[0]}", ""]
        if len(sec) == 2:
            lines += [str(sec[1]), ""]
            continue
        _, head, rows = sec
        esc = [[c.replace("|", "\\|").replace("\n", " ") for c in row] for row in rows]
        lines += ["| " + " | ".join(head) + " |", "|" + " --- |" * len(head)]
        lines += ["| " + " | ".join(row) + " |" for row in esc]
        lines.append("")
    return "\n".join(lines)


def html_page(r: Report) -> str:
    e = html.escape
    body = ["<h1>ATLAS Autonomous report</h1>"]
    for sec in _sections(r):
        body.append(f"<h2>{e(sec[0])}</h2>")
        if len(sec) == 2:
            body.append(f"<p>{e(str(sec[1]))}</p>")
            continue
        _, head, rows = sec
        body.append("<table><thead><tr>" + "".join(f'<th scope="col">{e(h)}</th>' for h in head)
                    + "</tr></thead><tbody>")
        for row in rows:
            body.append("<tr>" + "".join(f"<td>{e(c)}</td>" for c in row) + "</tr>")
        body.append("</tbody></table>")
    style = ("body{font:15px/1.45 system-ui,sans-serif;margin:1.5rem;color:#1b1f24}"
             "table{border-collapse:collapse;margin:.4rem 0 1rem}th,td{border:1px solid #d0d7de;"
             "padding:.25rem .5rem;text-align:left;vertical-align:top}th{background:#f6f8fa}")
    return ("<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            "<title>ATLAS Autonomous report</title>"
            f"<style>{style}</style></head><body>\n" + "\n".join(body) + "\n</body></html>\n")
