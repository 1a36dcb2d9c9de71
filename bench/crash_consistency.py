"""Crash consistency: 100 runs of SIGKILL at a random moment of reconcile, backup, restore,
alert delivery or a staged rollout, then a restart on the same data dir (see
``tests/autonomous/crash_harness.py``, the harness the test suite runs a few times).

    python3 bench/crash_consistency.py            # 100 runs
    python3 bench/crash_consistency.py --runs 10 --seed 7

Prints, per operation: runs, integrity_check failures, orphan processes, lost acknowledged
writes, duplicate notifications, half-applied restores or rollouts, runs with other problems.
"""

from __future__ import annotations

import argparse
import random
import shutil
import sys
import tempfile
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import write_result  # noqa: E402  (importing it puts the checkout on sys.path)

from tests.autonomous.crash_harness import OPERATIONS, RunResult, crash_run  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=100)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--operations", default=",".join(OPERATIONS),
                    help=f"comma-separated subset of {', '.join(OPERATIONS)}")
    args = ap.parse_args()
    operations = [o for o in args.operations.split(",") if o]
    unknown = sorted(set(operations) - set(OPERATIONS))
    if unknown:
        ap.error(f"unknown operation(s) {', '.join(unknown)}; choose from {', '.join(OPERATIONS)}")
    rng = random.Random(args.seed)
    by_op: dict[str, list[RunResult]] = defaultdict(list)
    not_run: list[str] = []  # runs whose set-up timed out before the kill: not a verdict
    from rich.progress import Progress
    with Progress() as progress:
        task = progress.add_task("kill / restart runs", total=args.runs)
        for i in range(args.runs):
            operation = operations[i % len(operations)]
            tmp = Path(tempfile.mkdtemp(prefix="crash-consistency-"))
            try:
                by_op[operation].append(crash_run(tmp, operation, rng))
            except AssertionError as exc:  # the run never reached its kill (a busy host)
                not_run.append(f"{operation}: {exc}")
            finally:
                shutil.rmtree(tmp, ignore_errors=True)
            progress.advance(task)
    print(f"\n{'operation':10s} {'runs':>5s} {'integrity':>10s} {'orphans':>8s} "
          f"{'lost':>5s} {'dup':>5s} {'half':>5s} {'other':>6s}  kill after (s)")
    total_bad = 0
    for op, rs in by_op.items():
        bad = sum(not r.ok for r in rs)
        total_bad += bad
        print(f"{op:10s} {len(rs):5d} {sum(r.integrity != 'ok' for r in rs):10d} "
              f"{sum(len(r.orphans) for r in rs):8d} {sum(len(r.lost_writes) for r in rs):5d} "
              f"{sum(len(r.duplicates) for r in rs):5d} {sum(bool(r.half_applied) for r in rs):5d} "
              f"{sum(bool(r.problems) for r in rs):6d}"
              f"  {min(r.kill_after_s for r in rs):.2f}-{max(r.kill_after_s for r in rs):.2f}")
        for r in rs:
            for p in r.problems + r.half_applied:
                print(f"    {op}: {p}")
    done = args.runs - len(not_run)
    for why in not_run:
        print(f"    not run: {why}")
    print(f"\n{done - total_bad} of {done} runs consistent"
          + (f" ({len(not_run)} not run: set-up timed out before the kill)" if not_run else ""))
    figures: dict[str, float | None] = {"runs": done, "consistent_runs": done - total_bad,
                                        "not_run": len(not_run)}
    for op, rs in by_op.items():
        figures[f"{op}_inconsistent"] = sum(not r.ok for r in rs)
    write_result("crash_consistency", figures, {},
                 {"seed": args.seed, "operations": operations,
                  "peer": "none: a kill/restart consistency check of our own store"})


if __name__ == "__main__":
    main()
