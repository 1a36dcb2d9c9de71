"""The evolution controller's candidate processes: each rollout's candidate version runs on an
operator-assigned loopback port (PDEATHSIG, like services), is recorded by identity so a
restarted operator can find and stop one it left behind, is published to the gateway with its
phase's weights, and is sampled by paired synthetic probes against the baseline.

``CandidatePool`` is the one owner of those processes and of the published table
(``ctx.subsystems["rollouts"]``, read by the gateway controller); the evolution controller
decides, the pool carries it out and reports what it sees.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

from autonomous.core.events import EventBus
from autonomous.core.clock import Clock
from autonomous.core.ports import free_port
from autonomous.evolution.probes import paired_round
from autonomous.evolution.resume import find_orphan, stop_orphan
from autonomous.evolution.staged_rollout import RolloutState, weights
from autonomous.evolution.store import CandidateRecord, RolloutStore
from autonomous.resources.kinds.evolution import RolloutSpec
from autonomous.resources.policy.evolution import RolloutPolicy
from autonomous.store import Store
from autonomous.supervisor.probe_client import ProbeClient
from autonomous.supervisor.processes import ProcessSupervisor

__all__ = ["Candidate", "CandidatePool"]


@dataclass
class Candidate:
    service: str
    version: str
    port: int
    weight: int = 0
    device_version: str = ""
    lat: dict[str, list[float]] = field(default_factory=lambda: {"base": [], "cand": []})
    err: dict[str, int] = field(default_factory=lambda: {"base": 0, "cand": 0})
    rounds: list[float] = field(default_factory=list)
    phase_index: int = -1
    ready: bool = False  # answered ready_path once: samples are taken from then on
    last_round: float | None = None  # time.monotonic() of the last paired round

    def reset_samples(self) -> None:
        self.lat, self.err, self.rounds = {"base": [], "cand": []}, {"base": 0, "cand": 0}, []


class CandidatePool:
    def __init__(self, store: Store, bus: EventBus, clock: Clock, rollouts: RolloutStore,
                 log_dir: Path) -> None:
        self.bus, self.clock, self.rollouts = bus, clock, rollouts
        self.procs = ProcessSupervisor(store, bus, clock, log_dir)
        self.candidates: dict[str, Candidate] = {}  # published: the gateway routes to them
        self.retiring: dict[str, Candidate] = {}  # unpublished, stopped once drained
        self.probe = ProbeClient()

    async def close(self) -> None:
        for name in {*self.candidates, *self.retiring}:
            await self.stop(name)
        await self.probe.aclose()

    def running(self, service: str, version: str) -> bool:
        info = self.procs.get(f"{service}@{version}")
        return service in self.candidates and info is not None and info.running

    # -- samples ---------------------------------------------------------------------------------
    async def sample(self, c: Candidate, base_port: int, spec: RolloutSpec,
                     spacing: float) -> None:
        """Paired probes of baseline and candidate once the candidate answered ready, rounds
        at least ``spacing`` seconds apart (real time, like the latencies: rounds a moment
        apart are one contention episode of the host, not independent evidence)."""
        if not (c.ready or await self._ready(c.port, spec.ready_path)):
            return
        if not c.ready:  # warm-up round (first connections, lazy imports): dropped
            await self._pair(c, base_port, spec.probe_path, spec.probes_per_observe)
            c.reset_samples()
        c.ready = True  # from ready on, every failed probe is an error sample
        if c.last_round is None or time.monotonic() - c.last_round >= spacing:
            c.last_round = time.monotonic()
            await self._pair(c, base_port, spec.probe_path, spec.probes_per_observe)

    async def _ready(self, port: int, path: str) -> bool:
        try:
            r = await self.probe.get(f"http://127.0.0.1:{port}{path}", timeout=2.0)
        except Exception:  # noqa: BLE001 - not answering is not ready
            return False
        return bool(200 <= r.status_code < 300)

    async def _pair(self, c: Candidate, base_port: int, path: str, n: int) -> None:
        r = await paired_round(self.probe, f"http://127.0.0.1:{base_port}{path}",
                               f"http://127.0.0.1:{c.port}{path}", n)
        c.lat["base"] += r.base
        c.lat["cand"] += r.cand
        c.err["base"] += r.base_errors
        c.err["cand"] += r.cand_errors
        if r.ratio is not None:
            c.rounds.append(r.ratio)

    async def drained(self, service: str, gateway: Any) -> bool:
        """The retiring candidate of ``service`` is in no service the gateway has loaded
        (Traefik's API; no gateway running: nothing routes to it)."""
        c = self.retiring.get(service)
        if c is None:
            return False
        if gateway is None or gateway.proc is None or gateway.proc.poll() is not None:
            return True
        url = gateway.metrics_url.replace("/metrics", "/api/http/services")
        try:
            r = await self.probe.get(url, timeout=2.0)
            loaded = json.loads(r.content) if r.status_code == 200 else None
        except Exception:  # noqa: BLE001 - not answering (or not JSON): not known drained
            return False
        if not isinstance(loaded, list):
            return False
        mine = f"127.0.0.1:{c.port}"
        return not any(mine in str(x.get("loadBalancer", {}).get("servers", ""))
                       for x in loaded if isinstance(x, dict))

    # -- lifecycle -------------------------------------------------------------------------------
    async def start(self, rid: int, spec: RolloutSpec, state: RolloutState,
                    rp: RolloutPolicy) -> int:
        """Start (or restart) rollout ``rid``'s candidate and publish it with the phase's
        weights; the port it listens on."""
        await self.end_orphan(rid)
        port = free_port()
        argv = [a.replace("{port}", str(port)) for a in spec.command]
        info = await self.procs.start(f"{spec.service}@{spec.to_version}", argv,
                                      env={**spec.env, "PORT": str(port)})
        try:
            ctime = psutil.Process(info.pid).create_time()
        except psutil.Error:  # already gone: the next observe restarts it
            ctime = 0.0
        self.rollouts.record_candidate(CandidateRecord(
            rid, spec.service, spec.to_version, info.pid, ctime, port, tuple(argv),
            os.getpid(), self.clock.now()))
        c = Candidate(spec.service, spec.to_version, port, phase_index=state.phase_index)
        c.weight, c.device_version = weights(state, rp)
        self.candidates[spec.service] = c
        self.bus.publish("evolution.candidate", service=spec.service, port=port)
        return port

    async def stop(self, service: str) -> None:
        c = self.candidates.pop(service, None)
        c = self.retiring.pop(service, None) or c
        if c is not None:
            await self.procs.stop(f"{service}@{c.version}", 5.0)

    async def end_orphan(self, rid: int) -> int | None:
        """Stop the candidate of rollout ``rid`` a previous operator left running (identity
        checked again here); the pid stopped, if any."""
        rec = self.rollouts.candidates().get(rid)
        if rec is None or rec.operator_pid == os.getpid():
            return None
        pid = await asyncio.to_thread(find_orphan, rec)
        if pid is not None:
            await asyncio.to_thread(stop_orphan, pid, 5.0)
        return pid

    def unpublish(self, service: str) -> None:
        """The gateway stops routing to the candidate (its process keeps running until
        drained)."""
        c = self.candidates.pop(service, None)
        if c is not None:
            self.retiring[service] = c
            self.bus.publish("evolution.candidate", service=service, port=c.port,
                             retiring=True)
