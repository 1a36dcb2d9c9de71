"""Warm standby run by the operator (``spec.standby``): the services controller (the one owner
of processes) runs ``nexus~standby-1`` on its own backend port, restarts it when it dies and
stops it with the service; the gateway controller lists only ready standby instances in the
front's load balancer. Steady load through the real Traefik front while the active is
SIGKILLed 5 times: no front request fails, the owner restarts the active exactly once per
kill, a SIGKILLed standby is restarted, nothing is left running after the operator stops."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest

from autonomous.gateway.config import static_args
from autonomous.resources.kinds.service import ServiceSpec
from autonomous.resources.loader import load_paths
from autonomous.testing import free_port, make_context
from controllers.gateway import GatewayController, GatewayObserved, fronts_for
from controllers.healing import HealingController
from controllers.services import DesiredService, ObservedService, ServicesController
from controllers.services_standby import base_of, instance_name, is_standby, standby_spec
from tests.autonomous.operator_stack import Stack, service
from tests.conftest import needs_traefik

SB = instance_name("nexus", 1)


# -- pure ----------------------------------------------------------------------------------
def _spec(port: int = 8000, **more: Any) -> ServiceSpec:
    return ServiceSpec(command=["{python}", "-m", "app", "--port", str(port)], port=port,
                       env={"PORT": str(port)}, traffic={"port": 9000},
                       standby={"instances": 1}, **more)


def test_standby_spec_runs_on_its_own_port_without_a_front() -> None:
    sb = standby_spec(_spec(), 8123)
    assert sb.port == 8123 and sb.command[-1] == "8123" and sb.env["PORT"] == "8123"
    assert sb.traffic is None and sb.standby is None
    eq = standby_spec(ServiceSpec(command=["x", "--port=8000"], port=8000,
                                  traffic={"port": 9000}, standby={}), 8124)
    assert eq.command == ["x", "--port=8124"]
    assert instance_name("nexus", 2) == "nexus~standby-2"
    assert is_standby("nexus~standby-2") and not is_standby("nexus")
    assert base_of("nexus~standby-2") == "nexus"


def test_standby_needs_traffic_with_file_line_and_path(tmp_path: Path) -> None:
    f = tmp_path / "x.yaml"
    f.write_text("apiVersion: atlas.autonomous/v1\nkind: Service\nmetadata: {name: x}\n"
                 "spec:\n  command: [a]\n  port: 8000\n  standby: {instances: 1}\n")
    [p] = load_paths([f]).problems
    assert (p.file, p.line, p.path) == (str(f), 7, "spec.standby")
    assert "needs 'traffic'" in p.message
    f.write_text(f.read_text().replace("instances: 1", "instances: 0"))
    [p] = load_paths([f]).problems
    assert p.path == "spec.standby.instances"


def _desired(should_run: bool = True, h: str = "h1") -> dict[str, DesiredService]:
    spec = _spec()
    why = None if should_run else "survival"
    return {"nexus": DesiredService("nexus", spec, h, should_run, why),
            SB: DesiredService(SB, standby_spec(spec, 8123), h, should_run, why,
                               standby_of="nexus")}


def _obs(name: str, running: bool = True, h: str = "h1", **kw: Any) -> ObservedService:
    return ObservedService(name, running, True, h, ready=running, **kw)


def test_diff_starts_restarts_follows_and_stops_standby() -> None:
    diff = ServicesController.diff
    started = diff(_desired(), {})
    assert [(a.kind, a.resource) for a in started] == [
        ("start", "Service/nexus"), ("start", f"Service/{SB}")]
    steady = {"nexus": _obs("nexus"), SB: _obs(SB)}
    assert diff(_desired(), steady) == ()
    # a crashed standby is restarted by its owner (after the back-off), the active untouched
    crashed = {**steady, SB: _obs(SB, running=False, returncode=-9)}
    [a] = diff(_desired(), crashed)
    assert (a.kind, a.resource, a.evidence["returncode"]) == ("restart", f"Service/{SB}", -9)
    assert diff(_desired(), {**steady, SB: _obs(SB, False, returncode=-9,
                                                restart_wait=0.4)}) == ()
    # a new desired revision: the active first; the standby keeps serving the old one until
    # the active runs the new revision and is ready, then follows (never both replaced)
    moved = diff(_desired(h="h2"), steady)
    assert [(a.kind, a.resource) for a in moved] == [("restart", "Service/nexus")]
    half = {**steady, "nexus": _obs("nexus", h="h2")}
    assert [(a.kind, a.resource) for a in diff(_desired(h="h2"), half)] == [
        ("restart", f"Service/{SB}")]
    not_ready = {**half, "nexus": ObservedService("nexus", True, True, "h2", ready=False)}
    assert diff(_desired(h="h2"), not_ready) == ()
    # stopped with the service: kept stopped (survival) or removed from the desired state
    assert [(a.kind, a.resource) for a in diff(_desired(False), steady)] == [
        ("stop", "Service/nexus"), ("stop", f"Service/{SB}")]
    assert [(a.kind, a.resource) for a in diff({}, steady)] == [
        ("stop", "Service/nexus"), ("stop", f"Service/{SB}")]


def test_only_ready_standbys_are_servers_and_a_candidate_gets_none() -> None:
    class Cand:
        version, port, weight, device_version = "2", 8200, 10, None

    spec = _spec(version="1")
    [f] = fronts_for({"nexus": spec}, standbys={"nexus": (8124, 8123)})
    assert f.backends[0].urls() == ["http://127.0.0.1:8000", "http://127.0.0.1:8123",
                                    "http://127.0.0.1:8124"]
    [f] = fronts_for({"nexus": spec}, {"nexus": Cand()}, standbys={"nexus": (8123,)})
    assert [b.standby_ports for b in f.backends] == [(8123,), ()]
    [f] = fronts_for({"nexus": spec}, standbys={})
    assert f.backends[0].standby_ports == ()


def test_default_stack_gives_nexus_a_standby_without_a_heartbeat_agent(tmp_path: Path) -> None:
    ctx = make_context(tmp_path)
    try:
        ctl = ServicesController(ctx)
        desired = ctl.desired()
        spec = desired["nexus"].spec
        assert spec.traffic is not None and spec.standby is not None
        sb = desired[SB]
        assert sb.standby_of == "nexus" and sb.should_run and sb.hash == desired["nexus"].hash
        assert sb.spec.port not in (spec.port, spec.traffic.port)
        assert [n for n, d in desired.items() if d.standby_of] == [SB]  # only NEXUS has one
        env, _ = ctl._launch(sb)
        # the active beats for NEXUS; the standby hands no operator URL to its agent
        assert env["ATLAS_AUTONOMOUS_URL"] == "" and "ATLAS_HEARTBEAT_TOKEN" not in env
        assert "ATLAS_HEARTBEAT_TOKEN" in ctl._launch(desired["nexus"])[0]
    finally:
        ctx.store.close()


def test_gateway_routes_without_approval_in_every_mode(tmp_path: Path) -> None:
    """Routing follows what runs (a standby became ready, a fallback, a weight): its own
    action kind, enforced in every mode, not the software ``update`` governed mode holds."""
    ctx = make_context(tmp_path)
    try:
        for mode in ("governed", "growth", "emergency_stop"):
            assert ctx.governance.action_mode("route", mode) == "enforce", mode
        assert ctx.governance.action_mode("update", "governed") == "require_approval"
        gen = ctx.desired.current
        assert gen is not None
        fronts = fronts_for(gen.services, standbys={"nexus": (8123,)})
        obs = GatewayObserved(fronts, tuple(static_args(list(fronts), tmp_path, 9999)), None,
                              str(tmp_path), 9999)
        [a] = GatewayController.diff(None, obs)
        assert (a.kind, a.resource) == ("route", "Gateway/traefik")
    finally:
        ctx.store.close()


# -- the operator for real -----------------------------------------------------------------
@pytest.fixture
def standby_stack(operator_stack: Callable[..., Any]) -> Callable[..., Any]:
    """``standby_stack(nexus_yaml)``: the operator with healing and the gateway on one Service
    (not waited for: the tests wait for the active and its standby themselves)."""
    def make(text: str) -> Any:
        return operator_stack({"nexus": text}, (ServicesController, HealingController,
                                                GatewayController), wait_healthy=False)
    return make


def _standby(s: Stack) -> dict[str, Any]:
    [i] = s.services.standby_instances("nexus")
    return i


def _lb_has(s: Stack, port: int) -> bool:
    """The standby is a server of the front's load balancer *in force* (Traefik's API, not
    only the document on disk: Traefik applies a written document after its throttle)."""
    gw = s.ctx.subsystems.get("gateway")
    live = gw.live_servers() if gw is not None else None
    version = s.ctx.desired.current.services["nexus"].version if s.ctx.desired.current else ""
    return live is not None and f"http://127.0.0.1:{port}" in live.get(f"nexus-v{version}", [])


def _descendants() -> set[int]:
    return {p.pid for p in psutil.Process(os.getpid()).children(recursive=True)
            if p.is_running() and p.status() != psutil.STATUS_ZOMBIE}


@needs_traefik
@pytest.mark.timeout(150)
async def test_operator_runs_standby_no_front_request_fails_over_5_sigkills(standby_stack):
    before = _descendants()
    p1, front = free_port(), free_port()
    s = await standby_stack(service("nexus", p1, more=f"  traffic: {{port: {front}}}\n"
                                    "  standby: {instances: 1}\n"))
    await s.until(lambda: s.healthy("nexus"), 20, "nexus healthy")
    await s.until(lambda: _standby(s)["ready"], 20, "the standby ready")
    sb = _standby(s)
    assert sb["instance"] == SB and sb["port"] not in (p1, front)
    await s.until(lambda: _lb_has(s, sb["port"]), 10, "the standby in the load balancer")
    front_url = f"http://127.0.0.1:{front}/api/work?ms=0"
    done = asyncio.Event()
    counts = {"ok": 0, "failed": 0}
    failures: list[str] = []
    phase = ["start"]

    async def load() -> None:
        async with httpx.AsyncClient(trust_env=False, timeout=5) as c:
            while not done.is_set():
                try:
                    r = await c.get(front_url)
                    ok = r.status_code == 200
                    if not ok:
                        failures.append(f"{phase[0]}: {r.status_code} {r.text[:80]}")
                except httpx.HTTPError as e:
                    ok = False
                    failures.append(f"{phase[0]}: {e!r}")
                counts["ok" if ok else "failed"] += 1
                await asyncio.sleep(0.005)

    await s.until(lambda: _ok_front(s, front_url), 15, "the front answers")
    task = asyncio.create_task(load())
    try:
        rt = s.ctx.subsystems["services"]._ctl.runtimes["nexus"]
        restarts0 = len(rt.restarts)
        pids = []
        for k in range(5):
            old = s.pid("nexus")
            assert old is not None
            pids.append(old)
            n0 = counts["ok"] + counts["failed"]
            phase[0] = f"kill {k + 1}"
            os.kill(old, signal.SIGKILL)
            await s.until(lambda o=old: s.pid("nexus") not in (None, o), 10,
                          f"kill {k + 1}: active restarted")
            await s.until(lambda: s.healthy("nexus"), 10, f"kill {k + 1}: active healthy")
            # healing closes the crash's incident (it does not restart a second time)
            await s.until(lambda k=k: len([r for r in s.orch.history.list(service="nexus")
                                           if r["state"] in ("healed", "closed")]) >= k + 1,
                          15, f"kill {k + 1}: incident closed")
            await s.until(lambda n0=n0: counts["ok"] + counts["failed"] > n0 + 20, 10,
                          "load went on")
        assert len(rt.restarts) - restarts0 == 5, "the owner restarts once per kill"
        # every incident of the active is closed by healing without a restart of its own (the
        # count above); its rule is "killed", or "default" when a probe's refused connection
        # was seen before the exit (a race of the two detections, not a second fault)
        rows = s.orch.history.list(service="nexus")
        assert {r["rule"] for r in rows} <= {"killed", "default"} and \
            all(r["state"] in ("healed", "closed") for r in rows), [
            (r["rule"], r["state"], r.get("error_signature")) for r in rows]
        assert not s.orch.history.list(service=SB), "a standby is not a service incident"
        # the standby itself SIGKILLed: its owner restarts it, the front keeps answering
        sb_pid, sb_restarts = _standby(s)["pid"], _standby(s)["restarts"]
        assert sb_restarts == 0, "killing the active did not touch the standby"
        pids.append(sb_pid)
        phase[0] = "standby kill"
        os.kill(sb_pid, signal.SIGKILL)
        await s.until(lambda: _standby(s)["pid"] not in (None, sb_pid) and _standby(s)["ready"],
                      15, "the standby restarted and ready")
        assert _standby(s)["restarts"] == 1, _standby(s)
        assert _standby(s)["port"] == sb["port"]
        await s.until(lambda: _lb_has(s, sb["port"]), 10, "the standby back in the balancer")
        n0 = counts["ok"]
        await s.until(lambda: counts["ok"] > n0 + 20, 10, "load went on")
        # a new desired revision under load: the active is replaced first (proved beside),
        # the standby follows once the active serves it; the front never fails meanwhile
        phase[0] = "new revision"
        pids += [s.pid("nexus"), _standby(s)["pid"]]
        f = s.root / "desired_state" / "nexus.yaml"
        f.write_text(f.read_text().replace('version: "1"', 'version: "2"'))
        gen = s.ctx.desired.reload()
        assert gen is not None and gen.services["nexus"].version == "2", s.ctx.desired.error

        def moved() -> bool:
            st = s.ctx.status.resource("services", "Service", "nexus").details
            i = _standby(s)
            return bool(st.get("pid")) and st.get("pid") not in pids and i["ready"] and \
                i["revision"] == st.get("revision") and i["pid"] not in pids
        await s.until(moved, 30, "the active and then the standby on the new revision")
        await s.until(lambda: _lb_has(s, sb["port"]), 10, "the standby back in the balancer")
        n0 = counts["ok"]
        await s.until(lambda: counts["ok"] > n0 + 20, 10, "load went on")
    finally:
        done.set()
        await task
    assert counts["ok"] > 100, counts
    st = s.ctx.status.resource("services", "Service", "nexus").details
    assert [i["role"] for i in st["instances"]] == ["active", "standby"]
    assert not s.ctx.status.controller("services").resources.get(f"Service/{SB}")
    # operator stop: the active, the standby and Traefik are gone, nothing orphaned
    alive = [*pids, s.pid("nexus"), _standby(s)["pid"]]
    await s.manager.stop()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and (_descendants() - before):
        await asyncio.sleep(0.05)
    assert not (_descendants() - before), [psutil.Process(p).cmdline()
                                           for p in _descendants() - before]
    for pid in alive:
        assert pid is None or not psutil.pid_exists(pid) or \
            psutil.Process(pid).status() == psutil.STATUS_ZOMBIE, pid
    assert counts["failed"] == 0, f"front requests failed: {counts} in {sorted(set(failures))}"


async def _ok_front(s: Stack, url: str) -> bool:
    with contextlib.suppress(httpx.HTTPError):
        return (await s.http.get(url, timeout=1)).status_code == 200
    return False
