"""The dashboards in a real headless Chromium (Debian's binary) driven by Playwright, against
a real operator with sample services on free ports: no console errors, no request leaves
127.0.0.1, live updates after a service is SIGKILLed, Ack / Approve / mode-switch clicks reach
the API (the token asked once), charts are drawn from the dashboard engine's panel data,
axe-core finds no violations, and /docs renders offline."""

from __future__ import annotations

import os
import shutil
import signal
import time
from pathlib import Path
from typing import Any

import pytest

from autonomous.testing import fast_alerting, free_port
from tests.conftest import TOKEN, make_tree, service_yaml

sync_api = pytest.importorskip("playwright.sync_api",
                               reason="python playwright is not installed (test extra)")

VENDOR = Path(__file__).parent / "vendor"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--no-first-run"]


def _chromium() -> str:
    real = Path("/usr/lib/chromium/chromium")
    if real.is_file() and os.access(real, os.X_OK):
        return str(real)
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if not found:
        pytest.skip("no Chromium binary: install the Debian package 'chromium' "
                    "(listed in .ci/apt-packages.txt)")
    return found


def _tree(root: Path) -> Path:
    """web is healthy; broken's probe path answers 404, so service_down fires (the policy
    copy in the temp tree fires it without the 30 s delay and evaluates every second)."""
    web = service_yaml("web", free_port())
    broken = service_yaml("broken", free_port(), core=False).replace(
        "path: /health", "path: /no-such-probe")
    make_tree(root, {"web": web, "broken": broken})
    return fast_alerting(root, window_seconds=5, group_wait_seconds=None)


def _shot(page: Any, tmp_path: Path, name: str) -> None:
    path = tmp_path / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    art = os.environ.get("ATLAS_ARTIFACTS")
    if art:
        Path(art).mkdir(parents=True, exist_ok=True)
        shutil.copy(path, Path(art) / path.name)


def _axe(page: Any) -> list[dict[str, Any]]:
    page.add_script_tag(content=(VENDOR / "axe.min.js").read_text())
    result = page.evaluate("async () => (await axe.run(document)).violations.map("
                           "v => ({id: v.id, impact: v.impact, help: v.help, "
                           "nodes: v.nodes.map(n => n.target.join(' '))}))")
    return list(result)


def _unfocusable_scrollers(page: Any) -> list[str]:
    """Elements that may scroll (overflow auto or scroll) but take no keyboard focus.

    axe only flags a region that overflows with the data of the moment; this holds the
    page to the rule whatever rows it happens to show."""
    return list(page.evaluate(
        "() => [...document.querySelectorAll('#main *')].filter(e => {"
        " const s = getComputedStyle(e);"
        " return /auto|scroll/.test(s.overflowX + s.overflowY) && e.tabIndex < 0"
        " && !e.querySelector('a[href], button, input, select, textarea, [tabindex]');"
        "}).map(e => e.tagName.toLowerCase() + '.' + [...e.classList].join('.'))"))


def test_dashboard_in_real_browser(tmp_path: Path, operator_factory: Any) -> None:
    executable = _chromium()
    op = operator_factory(_tree(tmp_path / "tree")).start(40)
    op.wait_for(lambda: op.services()["web"]["health"] == "Healthy", 30, "web healthy")

    console: list[str] = []
    requests: list[str] = []
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=executable, args=ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.on("console", lambda m: console.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: console.append(f"pageerror: {e}"))
            page.on("request", lambda r: requests.append(r.url))
            page.set_default_timeout(30_000)

            page.goto(op.url + "/dashboard")
            row = page.locator('#panel-services tr[data-service="web"]')
            row.wait_for()
            assert row.locator("[data-health]").inner_text() == "Healthy"
            page.locator("#health-score").wait_for()
            page.locator("#live-state", has_text="live").wait_for()

            # keyboard: a decision's "why" opens its chain back to the observation
            # (web's decision, stable until the crash below; broken's change as it restarts)
            first = page.locator('#panel-decisions button[data-key^="services|Service/web|"]')
            first.wait_for()
            key = first.get_attribute("data-key") or ""
            why = page.locator(f'#panel-decisions button[data-key="{key}"]')
            why.focus()
            page.keyboard.press("Enter")
            page.wait_for_function(  # stays open (and focused) across live re-renders
                "k => { const b = document.querySelector("
                "`#panel-decisions button[data-key=\"${k}\"]`);"
                " return b && b.getAttribute('aria-expanded') === 'true'"
                " && document.activeElement === b; }", arg=key)
            chain = why.locator("xpath=following-sibling::ol")
            chain.locator("li", has_text="observation").first.wait_for()

            # crash the service: the page changes without a reload (SSE → re-fetch)
            pid = int(row.locator("[data-pid]").get_attribute("data-pid") or 0)
            assert pid > 0
            nav_count = len([u for u in requests if u.endswith("/dashboard")])
            os.kill(pid, signal.SIGKILL)
            page.wait_for_function(
                "pid => { const c = document.querySelector("
                "'#panel-services tr[data-service=\"web\"] [data-pid]');"
                " return c && c.dataset.pid !== String(pid); }", arg=pid)
            assert len([u for u in requests if u.endswith("/dashboard")]) == nav_count

            # an alert fires for 'broken'; Ack in the page asks for the token once, keeps it
            # for the tab and then sends the ack it was asked for
            ack = page.get_by_role("button", name="Acknowledge service_down on broken")
            ack.wait_for(timeout=60_000)
            alert_id = int(page.locator("#panel-alerts tr[data-alert]").filter(
                has_text="broken").first.get_attribute("data-alert") or 0)
            ack.click()
            page.locator("#token-input").fill(TOKEN)
            page.keyboard.press("Enter")
            with op.client() as c:
                op.wait_for(lambda: c.get(f"/api/telemetry/alerts/{alert_id}").json()
                            ["acked_by"] == "api-token", 15, "alert acknowledged by the page")
            assert page.evaluate("sessionStorage.getItem('atlas-autonomous-token')") == TOKEN
            page.locator("#announce", has_text="acknowledged").wait_for()

            # governed mode: a forced RESTART_ALL waits for approval; the page lists it (live,
            # from approval.requested), shows the incident and its Approve click reaches the API
            with op.client() as c:
                def heal() -> Any:  # skipped (records nothing) while the crash's heal runs
                    r = c.post("/api/healing/trigger", json={
                        "service": "web", "strategy": "RESTART_ALL", "reason": "browser test"})
                    return r if r.json()["state"] != "skipped" else None
                inc = op.wait_for(heal, 30, "a heal of web not already in progress")
                assert inc.status_code == 200 and inc.json()["state"] == "awaiting_approval"
                [pending] = c.get("/api/approvals?state=pending").json()["approvals"]
            approve = page.get_by_role("button", name="Approve restart_all on Service/web")
            approve.wait_for()
            page.locator(f'#panel-healing tr[data-incident="{inc.json()["id"]}"]').wait_for()
            approve.click()
            with op.client() as c:
                op.wait_for(lambda: c.get("/api/approvals").json()["approvals"][0]["state"]
                            in ("approved", "executed"), 15, "approval decided by the page")
                decided = next(a for a in c.get("/api/approvals").json()["approvals"]
                               if a["id"] == pending["id"])
            assert decided["decided_by"] == "api-token"
            page.locator("#announce", has_text=f"Approval {pending['id']}").wait_for()

            # the mode switch in the page reaches the API with its reason
            page.locator("#mode-select").select_option("growth")
            page.locator("#mode-reason").fill("browser says grow")
            page.get_by_role("button", name="Switch mode").click()
            page.locator("#gov-mode", has_text="growth").wait_for()
            with op.client() as c:
                mode = c.get("/api/governance/mode").json()
            assert mode["mode"] == "growth"
            assert mode["history"][0]["reason"] == "browser says grow"
            page.locator("#panel-governance li", has_text="governed → growth by api-token").wait_for()
            page.locator("#panel-healing #healing-total").wait_for()
            assert page.locator("#panel-rollouts .body > *").count() > 0
            _shot(page, tmp_path, "dashboard-overview")
            assert _unfocusable_scrollers(page) == [], "overview"
            violations = _axe(page)
            assert violations == [], violations

            # charts: SVG drawn from the telemetry dashboard engine's panel data
            page.goto(f"{op.url}/dashboard/telemetry")
            spark = page.locator('#panel-charts svg[data-metric="service.probe_latency_ms"]')
            spark.wait_for()
            with op.client() as c:
                engine = c.get("/api/telemetry/dashboard/services").json()
            latency = next(p for p in engine["panels"] if p["title"] == "Probe latency")
            drawn = int(spark.get_attribute("data-series") or 0)
            assert 0 < drawn <= len([s for s in latency["series"] if s["points"]])
            assert "Probe latency" in (spark.get_attribute("aria-label") or "")
            # every panel type, not only series: the Services table has a row per service
            services = page.locator('#panel-charts figure[data-panel="table"]',
                                    has_text="Services")
            services.wait_for()
            table = next(p for p in engine["panels"] if p["title"] == "Services")
            assert services.get_attribute("data-rows") == str(len(table["rows"])) != "0"
            # any dashboard of the desired state, picked and linked (#dashboard=<name>)
            page.select_option("#dashboard-pick", "tools")
            page.locator('#panel-charts .charts[data-dashboard="tools"]').wait_for()
            assert page.url.endswith("#dashboard=tools")
            traces = page.locator('#panel-charts figure[data-panel="traces"]')
            traces.wait_for()  # the operator traces its own requests: this page's among them
            assert int(traces.get_attribute("data-rows") or 0) > 0
            with op.client() as c:
                listed = c.get("/api/telemetry/dashboards").json()
            assert page.locator("#dashboard-pick option").count() == len(listed) > 1

            with op.client() as c:  # feedback the learning page must show as a finding
                for i in range(12):
                    r = c.post("/api/learning/feedback", json={
                        "area": "alert:browser_test", "kind": "alert_label", "bad": i % 3 == 0})
                    assert r.status_code < 300, r.text
            for name in ("health", "telemetry", "learning"):
                page.goto(f"{op.url}/dashboard/{name}")
                page.locator("#main section:not([hidden]) .body > *").first.wait_for()
                page.locator("#panel-charts .body > *").first.wait_for()
                assert page.locator("#main .error").count() == 0, page.locator(
                    "#main .error").all_inner_texts()
                if name == "health":  # the host's resources, and what is not measured
                    page.locator("#panel-resources th", has_text="CPU").wait_for()
                    with op.client() as c:
                        sysm = c.get("/api/health/metrics/system").json()
                    for disk in sysm["disks"]:
                        page.locator("#panel-resources th", has_text=f"Disk {disk}").wait_for()
                    for key, why in sysm["unavailable"].items():  # each with its reason
                        page.locator("#resources-missing li",  # (the panel re-reads: 10 s)
                                     has_text=f"{key}: {why}").wait_for()
                if name == "learning":  # the panels show what the learning API holds
                    page.locator("#panel-optimizations #optimizer-trials").wait_for()
                    page.locator("#panel-learning .body h3").first.wait_for()
                    with op.client() as c:
                        opt = c.get("/api/learning/optimizations").json()
                        ins = c.get("/api/learning/insights").json()
                    shown = page.locator("#panel-optimizations tr[data-proposal]")
                    assert shown.count() == len(opt["pending"]) + len(opt["applied"])
                    trials = page.locator("#optimizer-trials").inner_text()
                    assert (str(len(opt["trials"])) in trials) if opt["trials"] else \
                        trials == "no optimizer trials this cycle"
                    assert page.locator("#learning-patterns li").count() == len(
                        ins["patterns"])
                    assert f"cycle {ins['cycle']}, mode {ins['mode']}" in page.locator(
                        "#panel-learning .body").inner_text()
                    areas = {f["area"] for f in ins["findings"] + ins["improvement_areas"]}
                    assert "alert:browser_test" in areas, areas
                    for area in areas:
                        page.locator("#panel-learning th", has_text=area).wait_for()
                _shot(page, tmp_path, f"dashboard-{name}")
                assert _unfocusable_scrollers(page) == [], name
                violations = _axe(page)
                assert violations == [], (name, violations)

            # a running rollout in the shape GET /api/evolution/status gives (served here, as
            # this tree runs none): the panel names the phase, its weight and why it holds
            live = {"rollouts": [{"id": 7, "service": "web", "from_version": "1.0.0",
                                  "to_version": "2.0.0", "phase_index": 0,
                                  "phase_started_at": time.time(), "status": "running",
                                  "phase": "CANARY", "weight": 10, "verdict": "insufficient",
                                  "decision": "CANARY: baking 12/60s"}],
                    "quarantined": [], "vetting": [], "sets": [], "awaiting_approval": []}
            page.route("**/api/evolution/status", lambda route: route.fulfill(json=live))
            page.goto(op.url + "/dashboard")
            row = page.locator("#panel-rollouts tr[data-rollout='7']")
            row.wait_for()
            shown = row.inner_text()
            assert "CANARY (10 %)" in shown and "running, judge: insufficient" in shown, shown
            assert "CANARY: baking 12/60s" in shown, shown
            page.unroute("**/api/evolution/status")

            page.goto(op.url + "/docs")
            page.locator(".swagger-ui .opblock").first.wait_for()
            assert page.locator(".swagger-ui .info .title").inner_text().startswith(
                "ATLAS Autonomous")
            _shot(page, tmp_path, "docs")
        finally:
            browser.close()

    assert console == [], console
    outside = [u for u in requests if not u.startswith("http://127.0.0.1:")]
    assert outside == [], outside


def test_pages_and_assets_answer_clear_errors(ctx: Any) -> None:
    from fastapi.testclient import TestClient

    from autonomous.api.app import create_app
    from autonomous.api.routes.pages import panels_for

    with TestClient(create_app(ctx)) as c:
        r = c.get("/dashboard/nope")
        assert r.status_code == 404 and "health, telemetry, learning" in r.json()["detail"]
        assert c.get("/dashboard/static/pages.py").status_code == 404
        html = c.get("/docs").text
        assert "/dashboard/static/swagger-ui-bundle.js" in html and "cdn." not in html
        page = c.get("/dashboard/health").text
        assert 'data-page="health"' in page and 'aria-current="page">Health' in page
    assert panels_for("service.probe") == ()
    assert "alerts" in panels_for("alert.human")


def test_dashboard_with_authenticated_reads(tmp_path: Path, operator_factory: Any) -> None:
    """Reads need the token: the page asks for it before any read, sends it on every fetch,
    and its event stream (EventSource sends no headers) opens with a signed stream token."""
    executable = _chromium()
    root = make_tree(tmp_path / "tree", {"web": service_yaml("web", free_port())})
    cfg = root / "config" / "autonomous.yaml"
    text = cfg.read_text()
    old = "authenticated_reads: false,\n          public_paths: [/healthz]"
    assert old in text, "the default api settings changed: update this test"
    cfg.write_text(text.replace(old, "authenticated_reads: true,\n"
                                     "          public_paths: [/healthz, /dashboard]"))
    op = operator_factory(root).start(40)
    op.wait_for(lambda: op.services()["web"]["health"] == "Healthy", 30, "web healthy")
    with op.client(token=False) as c:
        assert c.get("/api/reconcile/status").status_code == 401
        assert c.get("/dashboard/state").status_code == 401
        assert c.get("/dashboard/events").status_code == 401
        assert 'data-subsystems="null"' in c.get("/dashboard").text
    console: list[str] = []
    urls: list[str] = []
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=executable, args=ARGS)
        try:
            page = browser.new_page()
            page.on("console", lambda m: console.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: console.append(f"pageerror: {e}"))
            page.on("request", lambda r: urls.append(r.url))
            page.set_default_timeout(30_000)
            page.goto(op.url + "/dashboard")
            page.locator("#token-input").wait_for()  # asked before any read
            assert not [u for u in urls if "/api/" in u]
            page.locator("#token-input").fill(TOKEN)
            page.keyboard.press("Enter")
            page.locator('#panel-services tr[data-service="web"] [data-health]',
                         has_text="Healthy").wait_for()
            page.locator("#live-state", has_text="live").wait_for()
            page.locator("#panel-healing #healing-total").wait_for()
        finally:
            browser.close()
    assert console == [], console
    streams = [u for u in urls if "/dashboard/events" in u]
    assert streams and all("?st=" in u for u in streams)
