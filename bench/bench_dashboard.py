"""Dashboard first paint with 30 days of data in the store, beside a static file served by the
same server in the same run.

The store is seeded through the store API the subsystems themselves use (TimeSeriesStore
writes and rollups, KnowledgeGraph chains, HealingHistory incidents) with timestamps spread
over the last 30 days; then a real operator (sample services included) serves it. Headless
Chromium (Debian's binary, driven by Playwright) loads ``/dashboard`` and reports the
browser's own ``first-contentful-paint`` and the time until every panel shows its data; the
peer is the same browser loading ``/dashboard/static/dashboard.css`` from the same server
(its navigation ``responseEnd``: a static file has nothing to paint but its text). Without
Chromium the browser figures are null with the reason; the HTTP figures (the page shell and
every API read the overview makes, against the static file) are measured either way.

    python3 bench/bench_dashboard.py            # 30 days at one sample a minute, 15 loads
    python3 bench/bench_dashboard.py --quick    # 30 days at one sample every 10 min, 5 loads
"""

from __future__ import annotations

import argparse
import html
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._common import free_port, pct, tree_with, wait_http, write_result  # noqa: E402

from autonomous.core.clock import SystemClock  # noqa: E402
from autonomous.learning.knowledge_graph import KnowledgeGraph  # noqa: E402
from autonomous.self_healing.history import HealingHistory  # noqa: E402
from autonomous.store import Store  # noqa: E402
from autonomous.store.timeseries import Point, TimeSeriesStore  # noqa: E402
from autonomous.testing import calm_gates  # noqa: E402

DAYS = 30
TOKEN = "bench-dashboard-token"
BUDGET_MS = 300.0
CHROMIUM = Path("/usr/lib/chromium/chromium")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--no-first-run"]


def overview_reads(c: httpx.Client) -> list[str]:
    """The reads the overview page makes on load (autonomous/api/static/dashboard*.js), with
    the panel sizes the page is handed (policy ``dashboard.rows``)."""
    page = c.get("/dashboard").text
    rows = json.loads(html.unescape(page.split('data-policy="', 1)[1].split('"', 1)[0]))["rows"]
    reads = ["/api/health/comprehensive", "/api/reconcile/status",
             f"/api/telemetry/alerts?limit={rows['alerts']}", "/api/governance/mode",
             "/api/approvals?state=pending", "/dashboard/state", "/api/healing/stats",
             f"/api/healing/history?limit={rows['healing']}", "/api/telemetry/dashboards",
             "/api/telemetry/dashboard/health"]
    reads.append(f"/api/reconcile/why?limit={rows['decisions']}")  # one batched read
    if "evolution" in c.get("/dashboard/state").json()["subsystems"]:
        reads += ["/api/evolution/status", f"/api/evolution/history?limit={rows['rollouts']}"]
    return reads


def seed(db: Path, step_s: float) -> dict[str, int]:
    """30 days of series, decisions and incidents, written through the store API."""
    clock = SystemClock()
    now = clock.now()
    start = now - DAYS * 86400
    store = Store(db).open()
    ts = TimeSeriesStore(store, clock)
    series = [("health.score", {}, 80.0), ("cpu.percent", {}, 30.0), ("ram.percent", {}, 40.0),
              ("disk.percent", {"mount": "/"}, 55.0)]
    for svc in ("nexus", "robot"):
        series += [("service.up", {"service": svc}, 1.0),
                   ("service.probe_latency_ms", {"service": svc}, 4.0)]
    points = 0
    batch: list[Point] = []
    t = start
    i = 0
    while t < now:
        for name, labels, base in series:
            wobble = (i % 97) / 97.0
            value = base if name == "service.up" else base * (0.8 + 0.4 * wobble)
            batch.append(Point(name, value, t, labels))
        if len(batch) >= 20000:
            points += ts.write(batch)
            batch = []
        t += step_s
        i += 1
    points += ts.write(batch)
    ts.rollup(now)
    graph = KnowledgeGraph(store, clock)
    history = HealingHistory(store, clock, lambda: 20000)
    chains = incidents = 0
    for k in range(DAYS * 24):  # one decision chain and one incident an hour
        at = start + k * 3600
        svc = ("nexus", "robot")[k % 2]
        graph.record_chain([("observation", f"{svc} probe failed", {"ts": at}),
                            ("decision", f"restart Service/{svc}", {}),
                            ("action", f"restart {svc}", {}), ("outcome", "healthy", {})],
                           context={"about": graph.ensure("resource", f"Service/{svc}")})
        chains += 1
        history.save({"id": f"bench-{k}", "service": svc, "source": "exit",
                      "error_type": "TRANSIENT", "severity": "moderada", "rule": "exit",
                      "error_signature": f"{svc}:exit:1", "state": "healed",
                      "success": True, "strategy": "RESTART_SERVICE", "gate": "enforce",
                      "message": "exit 1", "detected_at": at, "finished_at": at + 2.0,
                      "mttr_s": 2.0, "attempts": [{"strategy": "RESTART_SERVICE", "ok": True}]})
        incidents += 1
    store.close()
    return {"points": points, "chains": chains, "incidents": incidents}


def http_figures(url: str, loads: int) -> dict[str, Any]:
    """Page shell plus every overview read (one keep-alive client, in sequence) against one
    GET of the static file, per load."""
    page, static = [], []
    per_read: dict[str, list[float]] = {}
    with httpx.Client(base_url=url, trust_env=False, timeout=30) as c:
        reads = overview_reads(c)
        for n in range(loads + 1):  # the first load warms caches; not counted
            t0 = time.perf_counter()
            c.get("/dashboard").raise_for_status()
            for path in reads:
                r0 = time.perf_counter()
                c.get(path).raise_for_status()
                if n:
                    per_read.setdefault(path, []).append((time.perf_counter() - r0) * 1e3)
            t1 = time.perf_counter()
            c.get("/dashboard/static/dashboard.css").raise_for_status()
            t2 = time.perf_counter()
            page.append((t1 - t0) * 1e3)
            static.append((t2 - t1) * 1e3)
    slowest = sorted(per_read.items(), key=lambda kv: -statistics.median(kv[1]))
    return {"overview_http_ms": _stats(page[1:]), "static_http_ms": _stats(static[1:]),
            "read_median_ms": {p: round(statistics.median(v), 2) for p, v in slowest}}


def browser_figures(url: str, loads: int) -> dict[str, Any]:
    try:
        from playwright import sync_api
    except ImportError:
        return {"reason": "python playwright is not installed (pip install -e '.[test]')"}
    if not (CHROMIUM.is_file() and os.access(CHROMIUM, os.X_OK)):
        return {"reason": f"no Chromium at {CHROMIUM} (apt-get install -y chromium)"}
    fcp, done, static = [], [], []
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        try:
            for n in range(loads + 1):
                page = browser.new_page()
                page.goto(url + "/dashboard")
                page.wait_for_function(  # every shown panel has its data (or says why not)
                    "() => [...document.querySelectorAll('#main section:not([hidden]) .body')]"
                    ".every(b => b.children.length > 0)")
                t_done = page.evaluate("performance.now()")
                paint = page.evaluate("(performance.getEntriesByName('first-contentful-paint')"
                                      "[0] || {}).startTime ?? null")
                page.goto(url + "/dashboard/static/dashboard.css")
                end = page.evaluate("performance.getEntriesByType('navigation')[0].responseEnd")
                page.close()
                if n == 0:
                    continue  # warm-up
                if paint is not None:
                    fcp.append(float(paint))
                done.append(float(t_done))
                static.append(float(end))
        finally:
            browser.close()
    out: dict[str, Any] = {"first_contentful_paint_ms": _stats(fcp) if fcp else None,
                           "all_panels_filled_ms": _stats(done),
                           "static_file_response_end_ms": _stats(static)}
    if not fcp:
        out["reason"] = "Chromium reported no first-contentful-paint entry"
    return out


def _stats(v: list[float]) -> dict[str, float]:
    return {"median": round(statistics.median(v), 1), "p95": round(pct(v, 95), 1),
            "min": round(min(v), 1), "max": round(max(v), 1), "n": len(v)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="coarser seed and fewer loads")
    args = ap.parse_args()
    step, loads = (600.0, 5) if args.quick else (60.0, 15)
    with tempfile.TemporaryDirectory(prefix="bench-dashboard-") as tmp_s:
        tmp = Path(tmp_s)
        api = free_port()
        root = calm_gates(tree_with(tmp / "tree", {"nexus": free_port(), "robot": free_port()},
                                    api))
        data = tmp / "data"
        data.mkdir()
        t0 = time.perf_counter()
        seeded = seed(data / "atlas.db", step)
        seed_s = time.perf_counter() - t0
        size_mb = (data / "atlas.db").stat().st_size / 1e6
        print(f"seeded {DAYS} days: {seeded['points']} points, {seeded['chains']} decision "
              f"chains, {seeded['incidents']} incidents ({size_mb:.1f} MB) in {seed_s:.1f} s")
        log = open(tmp / "operator.log", "ab")  # noqa: SIM115 - closed below
        proc = subprocess.Popen([sys.executable, "-m", "controllers.cli", "run", "--root",
                                 str(root), "--data-dir", str(data), "--port", str(api)],
                                env={**os.environ, "ATLAS_AUTONOMOUS_TOKEN": TOKEN},
                                stdout=log, stderr=log, start_new_session=True)
        url = f"http://127.0.0.1:{api}"
        try:
            wait_http(url + "/healthz", timeout=60)
            _wait_services(url)
            result: dict[str, Any] = {"days": DAYS, "seed": seeded, "db_mb": round(size_mb, 1),
                                      "quick": args.quick, "budget_ms": BUDGET_MS}
            result |= http_figures(url, loads)
            result["browser"] = browser_figures(url, loads)
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(5)
            log.close()
    _print(result)
    b = result["browser"]

    def med(stats: dict[str, float] | None, key: str = "median") -> float | None:
        return None if stats is None else stats[key]
    write_result("bench_dashboard", {
        "first_contentful_paint_median_ms": med(b.get("first_contentful_paint_ms")),
        "first_contentful_paint_p95_ms": med(b.get("first_contentful_paint_ms"), "p95"),
        "all_panels_filled_median_ms": med(b.get("all_panels_filled_ms")),
        "overview_http_median_ms": med(result["overview_http_ms"]),
    }, {"static_file_response_end_median_ms": med(b.get("static_file_response_end_ms")),
        "static_http_median_ms": med(result["static_http_ms"])},
        {**result, "peer": "a static file from the same server"})
    fcp = (result["browser"].get("first_contentful_paint_ms") or {}).get("median")
    return 0 if fcp is None or fcp <= BUDGET_MS else 1


def _wait_services(url: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    with httpx.Client(base_url=url, trust_env=False, timeout=5) as c:
        while time.monotonic() < deadline:
            res = c.get("/api/reconcile/status").json()["controllers"].get("services", {})
            health = [r["health"] for r in res.get("resources", [])]
            if health and all(h == "Healthy" for h in health):
                return
            time.sleep(0.2)
    raise TimeoutError("sample services not healthy within 60 s")


def _print(r: dict[str, Any]) -> None:
    def fmt(s: dict[str, float] | None) -> str:
        return "null" if s is None else f"median {s['median']} ms, p95 {s['p95']} ms (n={s['n']})"
    b = r["browser"]
    print(f"{'figure':44} {'ours':38} peer (static file, same server)")
    if "all_panels_filled_ms" in b:
        print(f"{'browser first contentful paint /dashboard':44} "
              f"{fmt(b['first_contentful_paint_ms']):38} {fmt(b['static_file_response_end_ms'])}"
              " (response end)")
        print(f"{'browser every panel filled':44} {fmt(b['all_panels_filled_ms']):38}")
    if b.get("reason"):
        print(f"browser figures: {b['reason']}")
    print(f"{'HTTP shell + all overview reads':44} {fmt(r['overview_http_ms']):38} "
          f"{fmt(r['static_http_ms'])}")
    print("slowest overview reads (median ms): " + ", ".join(
        f"{p} {ms}" for p, ms in list(r["read_median_ms"].items())[:5]))
    for what, key in (("first paint", "first_contentful_paint_ms"),
                      ("every panel filled", "all_panels_filled_ms")):
        med = (b.get(key) or {}).get("median")
        verdict = ("null (no browser figure)" if med is None else
                   f"{'within' if med <= BUDGET_MS else 'OVER'} the {BUDGET_MS:g} ms budget")
        print(f"{what}: {verdict}")


if __name__ == "__main__":
    sys.exit(main())
