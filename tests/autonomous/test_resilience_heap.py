"""resilience.heap: with the mmap threshold fixed, a worker thread's burst of 1 MiB buffers
(a backup's chunk reads) leaves no resident heap behind; glibc's own adaptive threshold
leaves it in the thread's arena (the control, so the check can fail). Each case runs in a
fresh interpreter: the allocator setting is process-wide."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

BURST = r"""
import os, sys, threading
from autonomous.resilience import heap
if sys.argv[1] == "fixed":
    assert heap.fix_mmap_threshold()

def anon():
    for line in open("/proc/self/status"):
        if line.startswith("RssAnon:"):
            return int(line.split()[1]) // 1024

keep = []
def burst():
    bufs = []
    for i in range(40):
        bufs.append(os.urandom(16) * 65536)  # 1 MiB, freed a few later
        keep.append(bytearray(200))          # a small block that stays, between them
        if len(bufs) > 16:
            bufs.pop(0)
    bufs.clear()

before = anon()
for _ in range(3):
    t = threading.Thread(target=burst)
    t.start()
    t.join()
after = anon()
heap.trim()
print(after - before, anon() - before)
"""

pytestmark = pytest.mark.skipif(not Path("/proc/self/status").exists()
                                or sys.platform != "linux", reason="glibc / Linux only")


def _grown(mode: str) -> tuple[int, int]:
    out = subprocess.run([sys.executable, "-c", BURST, mode], capture_output=True, text=True,
                         check=True, timeout=60,
                         env={**os.environ, "PYTHONPATH": str(ROOT)}).stdout.split()
    return int(out[0]), int(out[1])


def test_a_fixed_mmap_threshold_leaves_no_resident_heap_after_a_burst() -> None:
    grown, _ = _grown("fixed")
    assert grown <= 3, f"{grown} MiB stayed resident"


def test_the_adaptive_threshold_keeps_the_burst_resident_and_trim_gives_it_back() -> None:
    grown, after_trim = _grown("adaptive")
    assert grown >= 8, f"only {grown} MiB stayed: the control shows nothing"
    assert after_trim <= 3, f"{after_trim} MiB left after malloc_trim"
