"""Fault campaign: inject each fault class N times into the real sample stack run by the real
operator, and print per class what happened, beside supervisord for crash and hang.

    python3 bench/fault_campaign.py              # 3 injections per class
    python3 bench/fault_campaign.py --quick      # 1 injection per class
    python3 bench/fault_campaign.py --only crash,hang-sigstop --n 5

Each class gets a fresh operator (``atlas-autonomous run``) on a copy of the default tree
(default policies and governance mode, free ports, a temp data dir), so one class's restart
budget or isolation never leaks into the next. Everything is observed from outside, over
HTTP, the way a person would: the service's own answers (a steady 20 req/s client on its
``/api/work``), the operator's incidents (``/api/healing/history``), alerts
(``/api/telemetry/alerts``), approvals and service status.

Per class: detected (and the time to detect: injection → first incident, alert or status
change), the outcome — **healed** (the service answers normally again without a human),
**contained** (the fault is still there but fenced: features degraded, the old process kept,
the service isolated, the bad data flagged — and a human told), **escalated** (only a human
was told), **missed** — MTTR median and max (injection → answering normally), strategies
the healer used, restarts used, whether an alert fired and resolved, and requests lost by
the steady client. A restart storm is more restarts in any 60 s than the policy's restart
budget allows.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import (ROOT, free_port, start_supervisord, stop_group, tree_with,  # noqa: E402
                     write_result)

from autonomous.testing import terminate  # noqa: E402

TOKEN = "fault-campaign-token"
CLASSES = ["crash", "hang-sigstop", "hang-handler", "slow", "5xx", "crash-loop", "bad-config",
           "dependency-down", "memory", "disk-filling", "corrupted-backup"]


@dataclass
class Result:
    detected_s: float | None = None
    outcome: str = "missed"
    mttr_s: float | None = None
    strategies: list[str] = field(default_factory=list)
    restarts: int = 0
    alert_fired: bool = False
    alert_resolved: bool = False
    lost: int = 0
    sent: int = 0
    note: str = ""


class Stack:
    """A real operator with the sample stack, on free ports in a temp dir."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.ports = {"nexus": free_port(), "robot": free_port()}
        self.api_port = free_port()
        self.root = tree_with(tmp / "root", self.ports, self.api_port)
        self.data = tmp / "data"
        self.api = httpx.Client(base_url=f"http://127.0.0.1:{self.api_port}", timeout=5,
                                headers={"Authorization": f"Bearer {TOKEN}"}, trust_env=False)
        self.http = httpx.Client(timeout=1.0, trust_env=False)
        self.proc: subprocess.Popen[bytes] | None = None

    def url(self, svc: str, path: str) -> str:
        return f"http://127.0.0.1:{self.ports[svc]}{path}"

    def start(self) -> None:
        self.data.mkdir(parents=True, exist_ok=True)
        log = open(self.tmp / "operator.log", "ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "controllers.cli", "run", "--root", str(self.root),
             "--data-dir", str(self.data), "--port", str(self.api_port)],
            stdout=log, stderr=log, cwd=ROOT,
            env={**os.environ, "ATLAS_AUTONOMOUS_TOKEN": TOKEN})
        log.close()
        wait_until(lambda: self.ok("nexus") and self.ok("robot"), 30, "stack healthy")
        wait_until(self._api_up, 30, "operator API up")

    def _api_up(self) -> bool:
        try:
            return self.api.get("/healthz").status_code == 200
        except httpx.HTTPError:
            return False

    def stop(self) -> None:
        if self.proc:
            terminate(self.proc, 30)
        self.api.close()
        self.http.close()

    # -- what a person sees -----------------------------------------------------------------
    def ok(self, svc: str, *, max_ms: float = 250.0) -> bool:
        try:
            t0 = time.perf_counter()
            r = self.http.get(self.url(svc, "/api/work?ms=1"))
            return r.status_code == 200 and (time.perf_counter() - t0) * 1000 < max_ms
        except httpx.HTTPError:
            return False

    def pid(self, svc: str) -> int | None:
        try:
            r = self.http.get(self.url(svc, "/health"), timeout=0.5)
            return r.json().get("pid") if r.status_code == 200 else None
        except (httpx.HTTPError, ValueError):
            return None

    def features_degraded(self, svc: str) -> bool:
        try:
            feats = self.http.get(self.url(svc, "/features"), timeout=0.5).json()["features"]
            return any(v is False for v in feats.values())
        except (httpx.HTTPError, ValueError, KeyError):
            return False

    def status(self, svc: str) -> dict[str, Any]:
        try:
            data = self.api.get("/api/reconcile/status").json()
            for r in data["controllers"]["services"]["resources"]:
                if r["name"] == svc:
                    return r
        except (httpx.HTTPError, ValueError, KeyError):
            pass
        return {}

    def restarts(self, svc: str) -> int:
        return int(self.status(svc).get("details", {}).get("restarts") or 0)

    def incidents(self, since_wall: float) -> list[dict[str, Any]]:
        try:
            rows = self.api.get("/api/healing/history", params={"limit": 200}).json()
        except (httpx.HTTPError, ValueError):
            return []
        return [r for r in rows if isinstance(r, dict) and r.get("service") in self.ports
                and _ts(r.get("detected_at")) >= since_wall]

    def alerts(self, since_wall: float) -> list[dict[str, Any]]:
        try:
            data = self.api.get("/api/telemetry/alerts", params={"limit": 500}).json()
        except (httpx.HTTPError, ValueError):
            return []
        seen: dict[int, dict[str, Any]] = {}
        for a in [*data.get("history", []), *data.get("active", [])]:
            seen[a["id"]] = a  # active last: its state is the current one
        return [a for a in seen.values() if a.get("fired_at") is not None
                and _ts(a.get("fired_at")) >= since_wall]

    def post_fault(self, svc: str, body: dict[str, Any] | None, clear: bool = False) -> None:
        try:
            if clear:
                self.http.post(self.url(svc, "/fault/clear"), timeout=2)
            else:
                self.http.post(self.url(svc, "/fault"), json=body, timeout=2)
        except httpx.HTTPError:
            pass


class SteadyClient:
    """20 requests per second to one URL; counts failures (the requests a user lost)."""

    def __init__(self, url: str, rate: float = 20.0) -> None:
        self.url, self.period = url, 1.0 / rate
        self.sent = self.failed = 0
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> SteadyClient:
        self._t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._t.join(5)

    def _run(self) -> None:
        with httpx.Client(timeout=1.0, trust_env=False) as c:
            while not self._stop.wait(self.period):
                self.sent += 1
                try:
                    if c.get(self.url).status_code >= 500:
                        self.failed += 1
                except httpx.HTTPError:
                    self.failed += 1


def wait_until(pred: Callable[[], bool], timeout: float, what: str = "") -> float | None:
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < timeout:
        if pred():
            return time.perf_counter() - t0
        time.sleep(0.02)
    if what:
        raise TimeoutError(what)
    return None


def _ts(value: Any) -> float:
    if value is None:
        return 0.0
    if isinstance(value, (int, float)):
        return float(value)
    from datetime import datetime
    try:
        return datetime.fromisoformat(str(value).replace("Z", "+00:00")).timestamp()
    except ValueError:
        return 0.0


# -- one injection ---------------------------------------------------------------------------
def edit_service(stack: Stack, svc: str, change: Callable[[dict[str, Any]], None]) -> str:
    """Rewrite desired_state/<svc>.yaml with ``change`` applied; return the old text."""
    f = stack.root / "desired_state" / f"{svc}.yaml"
    old = f.read_text()
    doc = yaml.safe_load(old)
    change(doc["spec"])
    tmp = f.with_suffix(".yaml.tmp")
    tmp.write_text(yaml.safe_dump(doc, sort_keys=False))
    os.replace(tmp, f)
    return old


def restore_file(stack: Stack, svc: str, text: str) -> None:
    f = stack.root / "desired_state" / f"{svc}.yaml"
    tmp = f.with_suffix(".yaml.tmp")
    tmp.write_text(text)
    os.replace(tmp, f)


def inject_once(stack: Stack, kind: str, window: float) -> Result:
    svc = "robot" if kind == "dependency-down" else "nexus"
    res = Result()
    wall0 = time.time()
    restarts0 = stack.restarts(svc) + (stack.restarts("nexus") if svc == "robot" else 0)
    pid0 = stack.pid("nexus")
    undo: Callable[[], None] = lambda: None  # noqa: E731
    healed_pred: Callable[[], bool] = lambda: stack.ok(svc)  # noqa: E731
    with SteadyClient(stack.url(svc, "/api/work?ms=1")) as load:
        t0 = time.perf_counter()
        if kind == "crash" and pid0:
            os.kill(pid0, signal.SIGKILL)
            healed_pred = lambda: stack.pid("nexus") not in (None, pid0) and stack.ok(svc)  # noqa: E731,E501
        elif kind == "hang-sigstop" and pid0:
            os.kill(pid0, signal.SIGSTOP)
            undo = lambda: _cont(pid0)  # noqa: E731
            healed_pred = lambda: stack.pid("nexus") not in (None, pid0) and stack.ok(svc)  # noqa: E731,E501
        elif kind == "hang-handler":
            stack.post_fault(svc, {"kind": "hang"})
            undo = lambda: stack.post_fault(svc, None, clear=True)  # noqa: E731
        elif kind == "slow":
            stack.post_fault(svc, {"kind": "slow", "delay_ms": 600})
            undo = lambda: stack.post_fault(svc, None, clear=True)  # noqa: E731
        elif kind == "5xx":
            stack.post_fault(svc, {"kind": "error", "status": 500, "rate": 1.0})
            undo = lambda: stack.post_fault(svc, None, clear=True)  # noqa: E731
        elif kind == "memory":
            stack.post_fault(svc, {"kind": "memory", "mb_per_s": 200, "max_mb": 700})
            undo = lambda: stack.post_fault(svc, None, clear=True)  # noqa: E731
        elif kind in ("crash-loop", "bad-config"):
            def change(spec: dict[str, Any]) -> None:
                if kind == "crash-loop":
                    spec["command"] = [*spec["command"], "--crash-on-start"]
                else:
                    spec["command"] = ["{python}", "-m", "autonomous.no_such_module"]
            old = edit_service(stack, svc, change)
            undo = lambda: restore_file(stack, svc, old)  # noqa: E731
        elif kind == "dependency-down" and pid0:
            os.kill(pid0, signal.SIGSTOP)  # NEXUS hangs; Robot's dependency is down
            undo = lambda: _cont(pid0)  # noqa: E731
        desired_fault = kind in ("crash-loop", "bad-config")
        detected = healed = None
        contained = served = False
        ok_samples = samples = 0
        while time.perf_counter() - t0 < window:
            now = time.perf_counter() - t0
            if detected is None and (stack.incidents(wall0) or stack.alerts(wall0)
                                     or stack.status(svc).get("health") not in
                                     (None, "Healthy")
                                     or stack.status(svc).get("sync") == "OutOfSync"):
                detected = now
            if desired_fault:
                # healed is not possible while the edit is broken: contained means the
                # service kept serving (old process kept, or rolled back) through the window
                samples += 1
                ok_samples += stack.ok(svc)
                if now > min(window, 15.0):
                    break
            elif healed is None and now > 0.05 and healed_pred():
                healed = now
                break
            if stack.features_degraded(svc):
                contained = True
            time.sleep(0.05)
        if detected is None and healed is not None:
            detected = healed  # recovered before a poll saw it: detected by then at the latest
        if desired_fault:
            served = samples > 0 and ok_samples >= 0.95 * samples
            undo()
            t_fix = time.perf_counter()
            got = wait_until(lambda: stack.ok(svc) and stack.status(svc).get("sync")
                             == "Synced", 60)
            healed = None if got is None else time.perf_counter() - t_fix
            undo = lambda: None  # noqa: E731
        res.sent, res.lost = load.sent, load.failed
    # for desired-state faults, "healed" means the old process kept serving (contained) until
    # the edit is fixed; then fixing it must bring the new generation up
    undo()
    res.detected_s = detected
    incidents = stack.incidents(wall0)
    alerts = stack.alerts(wall0)
    res.strategies = sorted({str(s) for i in incidents for s in
                             (i.get("strategies") or [i.get("strategy")]) if s})
    res.alert_fired = bool(alerts)
    if desired_fault:
        res.mttr_s = healed  # from the fixed edit to the new generation serving
        res.outcome = "contained" if served and detected is not None else \
            "escalated" if res.alert_fired or incidents else "missed"
        res.note = f"served {ok_samples}/{samples} probes while broken; MTTR = fix → serving"
    elif healed is not None:
        res.outcome, res.mttr_s = "healed", healed
    elif contained and res.alert_fired:
        res.outcome = "contained"
    elif res.alert_fired or incidents:
        res.outcome = "escalated"
    wait_until(lambda: stack.ok(svc) and stack.ok("nexus"), 60)
    res.restarts = stack.restarts(svc) + (stack.restarts("nexus") if svc == "robot" else 0) \
        - restarts0
    if alerts:
        wait_until(lambda: all(a.get("state") == "resolved" for a in stack.alerts(wall0)), 45)
        res.alert_resolved = all(a.get("state") == "resolved" for a in stack.alerts(wall0))
    return res


def _cont(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGCONT)
    except ProcessLookupError:
        pass


# -- classes that are not a service fault -------------------------------------------------------
def disk_filling(tmp: Path) -> Result:
    """The data dir's filesystem over the policy threshold: the threshold is lowered below the
    usage measured now in a temp tree (the real disk is never filled)."""
    usage = shutil.disk_usage(tmp)
    percent = 100.0 * usage.used / usage.total
    threshold = max(1, int(percent) - 1)
    stack = Stack(tmp)
    health = stack.root / "policies" / "health.yaml"
    health.write_text(health.read_text().replace("disk_percent: 90",
                                                 f"disk_percent: {threshold}"))
    res = Result(note=f"threshold {threshold} % < usage {percent:.0f} %")
    wall0 = time.time()
    try:
        stack.start()
        t0 = time.perf_counter()
        # the default rule holds a threshold finding for_seconds (60 s) before it fires, after
        # the first system sample that sees it: wait for both, with room for a loaded host
        got = wait_until(lambda: any("disk" in str(a.get("labels", {})) + str(a.get("summary"))
                                     for a in stack.alerts(wall0 - 60)), 120)
        if got is not None:
            res.detected_s, res.alert_fired, res.outcome = got, True, "contained"
        else:
            res.note += "; no disk alert within 120 s"
        del t0
    except (TimeoutError, httpx.HTTPError) as exc:
        res.note += f"; {exc}"
    finally:
        stack.stop()
    return res


def corrupted_backup(tmp: Path) -> Result:
    """A backup whose chunk has one byte flipped: verify must see it; a new backup must not
    reuse the damaged chunk."""
    stack = Stack(tmp)
    res = Result()
    try:
        stack.start()
        b1 = stack.api.post("/api/resilience/backup", json={"plan": "operator", "kind": "full"},
                            timeout=120)
        if b1.status_code >= 300:
            res.note = f"backup answered {b1.status_code}: {b1.text[:120]}"
            return res
        bid = b1.json()["id"]
        # a chunk of a file that does not change between backups (a policy file), so the
        # next backup references the very same chunk
        manifest = json.loads((stack.data / "backups" / "snapshots" / f"{bid}.json")
                              .read_text())
        static = [c for e in manifest["entries"] if "policies" in e["path"]
                  for c in e.get("chunks", [])]
        found = [p for c in static for p in (stack.data / "backups").rglob(f"*{c}*")
                 if p.is_file()]
        if not found:
            res.note = "no chunk file of a policy file found in the repository"
            return res
        victim = found[0]
        raw = bytearray(victim.read_bytes())
        raw[len(raw) // 2] ^= 0xFF
        victim.write_bytes(bytes(raw))
        t0 = time.perf_counter()
        v = stack.api.post(f"/api/resilience/backups/{bid}/verify", timeout=120).json()
        res.detected_s = time.perf_counter() - t0 if not v.get("ok", True) else None
        b2 = stack.api.post("/api/resilience/backup", json={"plan": "operator", "kind": "full"},
                            timeout=120)
        if b2.status_code < 300:
            v2 = stack.api.post(f"/api/resilience/backups/{b2.json()['id']}/verify",
                                timeout=120).json()
            if v2.get("ok"):
                res.outcome, res.mttr_s = "healed", time.perf_counter() - t0
                res.note = "new full backup verified clean (damaged chunk rewritten)"
            elif res.detected_s is not None:
                res.outcome = "escalated"
                res.note = "detected, but the new backup reuses the damaged chunk"
        res.alert_fired = bool(stack.alerts(time.time() - 300))
    except (TimeoutError, httpx.HTTPError, KeyError, ValueError) as exc:
        res.note += f" {type(exc).__name__}: {exc}"
    finally:
        stack.stop()
    return res


# -- supervisord, the same service, the same injections -------------------------------------------
def supervisord(kind: str, n: int, window: float) -> list[float | None] | str:
    tmp = Path(tempfile.mkdtemp(prefix="campaign-supervisord-"))
    port = free_port()
    proc = start_supervisord(tmp, port)
    if isinstance(proc, str):
        shutil.rmtree(tmp, ignore_errors=True)
        return proc
    base = f"http://127.0.0.1:{port}"
    out: list[float | None] = []
    try:
        with httpx.Client(timeout=0.5, trust_env=False) as c:
            def pid() -> int | None:
                try:
                    r = c.get(base + "/health")
                    return r.json().get("pid") if r.status_code == 200 else None
                except (httpx.HTTPError, ValueError):
                    return None
            for _ in range(n):
                wait_until(lambda: pid() is not None, 20, "supervisord service up")
                time.sleep(1.2)  # startsecs
                p0 = pid()
                assert p0 is not None
                os.kill(p0, signal.SIGKILL if kind == "crash" else signal.SIGSTOP)
                took = wait_until(lambda: pid() not in (None, p0), window)
                out.append(took)
                if took is None:
                    _cont(p0)
    finally:
        stop_group(proc)
        shutil.rmtree(tmp, ignore_errors=True)
    return out


# -- the campaign --------------------------------------------------------------------------------
def restart_budget() -> tuple[int, float]:
    pol = yaml.safe_load((ROOT / "policies" / "healing.yaml").read_text())
    budget = pol["spec"]["policy"]["healing"]["restart_budget"]
    return int(budget["max_restarts"]), float(budget["window_seconds"])


def run_class(kind: str, n: int, window: float) -> list[Result]:
    tmp = Path(tempfile.mkdtemp(prefix=f"campaign-{kind}-"))
    try:
        if kind == "disk-filling":
            return [disk_filling(tmp)]
        if kind == "corrupted-backup":
            return [corrupted_backup(tmp)]
        stack = Stack(tmp)
        results = []
        try:
            stack.start()
            for _ in range(n):
                time.sleep(2.0)  # proven health between injections
                results.append(inject_once(stack, kind, window))
        finally:
            stack.stop()
        return results
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def fmt(x: float | None) -> str:
    return "—" if x is None else f"{x * 1000:.0f} ms" if x < 10 else f"{x:.1f} s"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=3, help="injections per class")
    ap.add_argument("--quick", action="store_true", help="1 injection per class")
    ap.add_argument("--only", default="", help="comma-separated classes: " + ", ".join(CLASSES))
    ap.add_argument("--window", type=float, default=30.0, help="seconds to wait per injection")
    args = ap.parse_args()
    n = 1 if args.quick else args.n
    kinds = [k for k in (args.only.split(",") if args.only else CLASSES) if k]
    unknown = set(kinds) - set(CLASSES)
    if unknown:
        ap.error(f"unknown classes {sorted(unknown)}; choose from {', '.join(CLASSES)}")
    max_r, win = restart_budget()
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} cpu(s); {n} injection(s) per "
          f"class; restart budget {max_r} per {win:.0f} s\n")
    rows: dict[str, list[Result]] = {}
    try:
        from rich.progress import Progress
        with Progress() as progress:
            task = progress.add_task("fault campaign", total=len(kinds))
            for kind in kinds:
                progress.update(task, description=f"injecting {kind}")
                rows[kind] = run_class(kind, n, args.window)
                progress.advance(task)
    except KeyboardInterrupt:
        print("interrupted: partial results")
    head = (f"{'class':17s} {'detected':>9s} {'t-detect':>9s} {'outcome':>26s} "
            f"{'MTTR med':>9s} {'MTTR max':>9s} {'restarts':>8s} {'alert':>12s} "
            f"{'lost':>9s}  strategies / note")
    print(head)
    print("-" * len(head))
    ok_classes = 0
    storms = 0
    figures: dict[str, float | None] = {}
    for kind, results in rows.items():
        det = [r.detected_s for r in results if r.detected_s is not None]
        mttr = [r.mttr_s for r in results if r.mttr_s is not None]
        outcomes = sorted({r.outcome for r in results})
        counts = ", ".join(f"{sum(r.outcome == o for r in results)} {o}" for o in outcomes)
        fired = sum(r.alert_fired for r in results)
        resolved = sum(r.alert_resolved for r in results)
        restarts = sum(r.restarts for r in results)
        storms += sum(r.restarts > max_r for r in results)
        lost = sum(r.lost for r in results)
        sent = sum(r.sent for r in results)
        strategies = sorted({s for r in results for s in r.strategies})
        note = "; ".join(sorted({r.note for r in results if r.note}))
        if all(r.outcome in ("healed", "contained") for r in results) and results:
            ok_classes += 1
        figures[f"{kind}_detected"] = len(det)
        figures[f"{kind}_mttr_median_s"] = round(statistics.median(mttr), 3) if mttr else None
        figures[f"{kind}_lost_requests"] = lost
        print(f"{kind:17s} {len(det):>4d}/{len(results):<4d} "
              f"{fmt(statistics.median(det)) if det else '—':>9s} {counts:>26s} "
              f"{fmt(statistics.median(mttr)) if mttr else '—':>9s} "
              f"{fmt(max(mttr)) if mttr else '—':>9s} {restarts:>8d} "
              f"{f'{fired} fired {resolved} res':>12s} {f'{lost}/{sent}':>9s}  "
              f"{', '.join(strategies)} {note}")
    print(f"\n{ok_classes} of {len(rows)} classes healed or contained with no human "
          f"(goal ≥ 9 of 10); restart storms (restarts in one injection > budget "
          f"{max_r}): {storms}")
    figures.update(classes=len(rows), classes_healed_or_contained=ok_classes,
                   restart_storms=storms)
    peers: dict[str, float | None] = {}
    peer_notes: dict[str, str] = {}
    print("\nsupervisord, the same sample service (no health checks):")
    for kind in ("crash", "hang"):
        sup = supervisord(kind, n, args.window)
        if isinstance(sup, str):
            print(f"  {kind:6s} {sup}")
            peers[f"supervisord_{kind}_recovered"] = None
            peer_notes[kind] = sup
            continue
        got = [x for x in sup if x is not None]
        peers[f"supervisord_{kind}_recovered"] = len(got)
        peers[f"supervisord_{kind}_mttr_median_s"] = (round(statistics.median(got), 3)
                                                       if got else None)
        print(f"  {kind:6s} recovered {len(got)}/{len(sup)}"
              + (f", MTTR median {fmt(statistics.median(got))} max {fmt(max(got))}"
                 if got else f": not detected within {args.window:.0f} s"))
    write_result("fault_campaign", figures, peers,
                 {"injections_per_class": n, "window_s": args.window, "classes": list(rows),
                  "complete": len(rows) == len(kinds), "supervisord": peer_notes})


if __name__ == "__main__":
    main()
