"""Vetting as background jobs the evolution controller observes.

A proposal's checks (snapshot → regression suite → sandbox) can take minutes; run inside
``act`` they would block every other rollout's reconcile. So ``act`` only starts a job here
and returns: the proposal is ``vetting``, its row in ``evolution_vetting`` carries the step and
its detail (progress, shown by ``GET /api/evolution/status`` as phase ``VETTING``) and the
process groups the job started. The controller's observe reads :meth:`VettingJobs.observed`
— ``running``, ``done`` (the result waits to be concluded by an action: quarantine, notify,
rolling out or patching, through the Executor) or ``lost``: a job on record that no task of
this operator runs (the operator was SIGKILLed mid-vetting). A lost job is resumed by running
the checks again from the start (a half-run suite proves nothing), after
:func:`~autonomous.evolution.vetting.stop_left_groups` ended what the dead job left (its
suite and sandboxed candidate die with the operator by PDEATHSIG; what they started is
found by process group). :meth:`stop` (operator shutdown) cancels the jobs, which stop their
processes; the rows stay, so the next operator resumes them.
"""

from __future__ import annotations

import asyncio
import os
from dataclasses import dataclass
from typing import Any, Literal

import psutil

from autonomous.evolution.proposals import ProposalRow
from autonomous.evolution.vetting import VettingRow, VettingStore, stop_left_groups
from autonomous.context import OperatorContext
from controllers.evolution_vetting import Vetting, run_checks

__all__ = ["JobObserved", "VettingJobs"]

JobState = Literal["running", "done", "lost"]


@dataclass(frozen=True)
class JobObserved:
    state: JobState
    step: str
    detail: str
    attempt: int
    started_at: float
    ok: bool | None = None  # done: whether the checks passed


class VettingJobs:
    def __init__(self, ctx: OperatorContext) -> None:
        self.ctx = ctx
        self.store = VettingStore(ctx.store)
        self.tasks: dict[int, asyncio.Task[Vetting]] = {}

    def start(self, row: ProposalRow, svc: Any, attempt: int = 1) -> None:
        """Begin the checks of ``row`` in the background (returns at once)."""
        now = self.ctx.clock.now()
        self.store.begin(row.id, attempt, now)

        def progress(step: str, detail: str) -> None:
            self.store.progress(row.id, step, detail, self.ctx.clock.now())

        def spawned(pid: int) -> None:
            try:
                ctime = psutil.Process(pid).create_time()
            except psutil.Error:  # already gone: nothing to find later
                return
            self.store.spawned(row.id, pid, ctime)

        def finished(task: asyncio.Task[Vetting]) -> None:
            """The row says the checks are over (``passed`` / ``failed``: what the proposal
            waits for now is the controller's conclusion, an approval in governed mode), not
            the last step as if it still ran."""
            if not task.cancelled() and task.exception() is None:
                v = task.result()
                progress("passed" if v.ok else "failed", v.summary)
            self.ctx.trigger("evolution")

        self.tasks[row.id] = asyncio.create_task(
            run_checks(self.ctx, row, svc, progress, spawned), name=f"vetting-{row.id}")
        self.tasks[row.id].add_done_callback(finished)

    def observed(self, pid: int) -> JobObserved | None:
        """The job of proposal ``pid`` as seen now (None: none on record)."""
        rec = self.store.get(pid)
        if rec is None:
            return None
        task = self.tasks.get(pid)
        if task is None:
            return JobObserved("lost", rec.step, rec.detail, rec.attempt, rec.started_at)
        if not task.done():
            return JobObserved("running", rec.step, rec.detail, rec.attempt, rec.started_at)
        ok = None if task.cancelled() or task.exception() is not None else task.result().ok
        return JobObserved("done", rec.step, rec.detail, rec.attempt, rec.started_at, ok)

    def result(self, pid: int) -> Vetting | BaseException | None:
        """A finished job's result (or what it raised); None while it runs or without one."""
        task = self.tasks.get(pid)
        if task is None or not task.done():
            return None
        if task.cancelled():
            return asyncio.CancelledError()
        return task.exception() or task.result()

    def end(self, pid: int) -> None:
        """The outcome is recorded on the proposal: forget the job."""
        self.tasks.pop(pid, None)
        self.store.end(pid)

    async def resume(self, row: ProposalRow, svc: Any) -> tuple[VettingRow | None, list[int]]:
        """A lost job: stop what the dead operator's job left, run the checks again."""
        rec = self.store.get(row.id)
        left = (await asyncio.to_thread(stop_left_groups, rec.procs)
                if rec is not None and rec.operator_pid != os.getpid() else [])
        self.start(row, svc, (rec.attempt + 1) if rec is not None else 1)
        return rec, left

    async def stop(self) -> None:
        for task in self.tasks.values():
            task.cancel()
        for task in list(self.tasks.values()):
            try:
                await task
            except BaseException:  # noqa: BLE001 - cancelled or failed: it is stopping
                pass
        self.tasks.clear()
