"""The scheduled-jobs runner: due on the one clock, trigger makes due now, a failing job is
kept with its error, loop jobs run on the loop; run_forever sleeps on the clock until due."""

from __future__ import annotations

import asyncio
import threading

from autonomous.core.clock import FakeClock
from autonomous.core.jobs import Job, JobScheduler


async def test_jobs_run_when_due_on_the_clock() -> None:
    clock, jobs = FakeClock(), JobScheduler()
    seen: list[str] = []
    threads: list[bool] = []

    def boom() -> None:
        raise RuntimeError("disk gone")

    def on_loop() -> str:
        threads.append(threading.current_thread() is threading.main_thread())
        return "loop"

    jobs.add(Job("a", every=lambda: 10.0, run=lambda: seen.append("a") or len(seen)))
    jobs.add(Job("bad", every=lambda: 5.0, run=boom, next_at=clock.monotonic() + 5))
    jobs.add(Job("loop", every=lambda: 100.0, run=on_loop, thread=False))
    assert set(await jobs.run_due(clock)) == {"a", "loop"} and threads == [True]
    assert await jobs.run_due(clock) == {}  # nothing due until the clock moves
    clock.advance(5)
    assert set(await jobs.run_due(clock)) == {"bad"}
    assert jobs.jobs["bad"].last_error == "RuntimeError: disk gone"
    clock.advance(5)
    assert set(await jobs.run_due(clock)) == {"a", "bad"} and seen == ["a", "a"]
    assert jobs.trigger("loop") and set(await jobs.run_due(clock)) == {"loop"}
    assert not jobs.trigger("missing")
    jobs.remove("bad")
    assert {j["name"] for j in jobs.snapshot()} == {"a", "loop"}


async def test_run_forever_wakes_on_clock_and_trigger() -> None:
    clock, jobs = FakeClock(), JobScheduler()
    ran = asyncio.Event()
    count = [0]

    def tick() -> None:
        count[0] += 1
        ran.set()

    jobs.add(Job("t", every=lambda: 60.0, run=tick))
    task = asyncio.create_task(jobs.run_forever(clock))
    try:
        await asyncio.wait_for(ran.wait(), 5)
        ran.clear()
        assert count[0] == 1
        jobs.trigger("t")  # made due now: runs without the clock moving
        await asyncio.wait_for(ran.wait(), 5)
        ran.clear()
        assert count[0] == 2
        for _ in range(5):
            await asyncio.sleep(0)
        clock.advance(60)
        await asyncio.wait_for(ran.wait(), 5)
        assert count[0] == 3
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
