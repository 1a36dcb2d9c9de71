"""Memory debug hook (off unless ``ATLAS_MEMDEBUG_DIR`` names a directory): what grows in
the operator under load.

With the variable set, ``install_from_env()`` starts ``tracemalloc`` and a daemon thread that,
every ``ATLAS_MEMDEBUG_EVERY`` seconds (default 10), writes into that directory one tracemalloc
snapshot (``snap-NNN.tm``) and one JSON line in ``samples.jsonl``: the time, the traced Python
heap (current / peak), the process's RSS and anonymous RSS (``/proc/self/status``), glibc's
arena figures (``mallinfo2``: heap bytes in use vs free in the arenas — the fragmentation
the traced figure cannot see) and the collector's object counts by type (the top 40).
``python3 -m autonomous.api.memdebug DIR`` prints the growth between the first and the last
snapshot after warm-up (by source line) and the sample series. A bench turns it on by setting
the variable for the operator it starts (``bench/load_with_faults.py --memdebug DIR``).
"""

from __future__ import annotations

import ctypes
import gc
import json
import os
import sys
import threading
import time
import tracemalloc
from collections import Counter
from pathlib import Path
from typing import Any

from autonomous.resilience.heap import libc_function

__all__ = ["install_from_env", "sample"]

_started = False


class _Mallinfo2(ctypes.Structure):
    _fields_ = [(n, ctypes.c_size_t) for n in (
        "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks",
        "fordblks", "keepcost")]


def _mallinfo() -> dict[str, float] | None:
    """glibc's arena totals in MiB: ``arena`` (sbrk heap + arenas), ``in_use`` (uordblks),
    ``free`` (fordblks, held but unused), ``mmapped`` (hblkhd); None off glibc."""
    fn = libc_function("mallinfo2")
    if fn is None:
        return None
    fn.restype = _Mallinfo2
    m = fn()
    mib = 2.0 ** 20
    return {"arena": m.arena / mib, "in_use": m.uordblks / mib, "free": m.fordblks / mib,
            "mmapped": m.hblkhd / mib}


def _status_mib(field: str) -> float | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def _anon_regions() -> dict[str, float]:
    """Resident MiB of the process's anonymous mappings by kind (``/proc/self/smaps``):
    ``heap`` (the main arena's brk heap), ``pymalloc`` (1 MiB mappings: CPython's object
    arenas), ``stack`` (8 MiB thread stacks), ``arena`` (glibc's per-thread arena heaps,
    inside 64 MiB reservations), ``big`` (other mappings over 1 MiB: large mallocs, numpy),
    ``small`` (the rest)."""
    out: dict[str, float] = {}
    kind, size = "", 0
    try:
        text = Path("/proc/self/smaps").read_text()
    except OSError:
        return out
    for line in text.splitlines():
        head = line.split()
        if "-" in head[0] and len(head) >= 5 and ":" not in head[0]:
            lo, hi = (int(x, 16) for x in head[0].split("-"))
            size = hi - lo
            name = head[5] if len(head) > 5 else ""
            if name == "[heap]":
                kind = "heap"
            elif name.startswith("[stack"):
                kind = "stack"
            elif name:
                kind = ""  # file-backed
            elif size == 2**20:
                kind = "pymalloc"
            elif size in (8 * 2**20, 8 * 2**20 + 4096):
                kind = "stack"
            elif size > 2**20 and lo % (64 * 2**20) == 0:
                kind = "arena"
            elif size > 2**20:
                kind = "big"
            else:
                kind = "small"
        elif head[0] == "Rss:" and kind:
            out[kind] = out.get(kind, 0.0) + int(head[1]) / 1024
    return {k: round(v, 1) for k, v in sorted(out.items())}


def sample(top: int = 40) -> dict[str, Any]:
    cur, peak = tracemalloc.get_traced_memory() if tracemalloc.is_tracing() else (0, 0)
    counts = Counter(type(o).__name__ for o in gc.get_objects())
    return {"t": time.time(), "traced_mib": cur / 2**20, "traced_peak_mib": peak / 2**20,
            "rss_mib": _status_mib("VmRSS"), "anon_mib": _status_mib("RssAnon"),
            "malloc": _mallinfo(), "regions": _anon_regions(),
            "threads": threading.active_count(), "gc_objects": sum(counts.values()),
            "gc_frozen": gc.get_freeze_count(), "types": dict(counts.most_common(top))}


def _loop(out: Path, every: float, spike_mib: float) -> None:
    """A sample every ``every`` s; between them, the traced heap checked every 20 ms: one
    above the last sample's by ``spike_mib`` is a transient allocation (freed before the next
    sample, it leaves only fragmentation behind): snapshot it while it is live
    (``spike-NNN.tm``)."""
    n = spikes = 0
    base = tracemalloc.get_traced_memory()[0]
    next_at = time.monotonic() + every
    while True:
        time.sleep(0.02)
        cur = tracemalloc.get_traced_memory()[0]
        if cur > base + spike_mib * 2**20 and spikes < 20:
            tracemalloc.take_snapshot().dump(str(out / f"spike-{spikes:03d}.tm"))
            spikes += 1
            base = cur
        if time.monotonic() < next_at:
            continue
        next_at += every
        tracemalloc.take_snapshot().dump(str(out / f"snap-{n:03d}.tm"))
        with open(out / "samples.jsonl", "a", encoding="utf-8") as f:
            f.write(json.dumps(sample()) + "\n")
        tracemalloc.reset_peak()
        base = tracemalloc.get_traced_memory()[0]
        n += 1


def install_from_env() -> bool:
    """Start the hook when ``ATLAS_MEMDEBUG_DIR`` is set (once per process)."""
    global _started
    where = os.environ.get("ATLAS_MEMDEBUG_DIR")
    if not where or _started:
        return False
    _started = True
    out = Path(where)
    out.mkdir(parents=True, exist_ok=True)
    tracemalloc.start(int(os.environ.get("ATLAS_MEMDEBUG_FRAMES", "12")))
    every = float(os.environ.get("ATLAS_MEMDEBUG_EVERY", "10"))
    spike = float(os.environ.get("ATLAS_MEMDEBUG_SPIKE_MIB", "4"))
    threading.Thread(target=_loop, args=(out, every, spike), name="memdebug",
                     daemon=True).start()
    return True


def _report(where: Path, skip: int, limit: int) -> None:
    snaps = sorted(where.glob("snap-*.tm"))
    rows = [json.loads(line) for line in (where / "samples.jsonl").read_text().splitlines()]
    for r in rows:
        m = r.get("malloc") or {}
        print(f"t {r['t'] - rows[0]['t']:6.0f}s traced {r['traced_mib']:7.1f} rss "
              f"{r['rss_mib']:7.1f} anon {r['anon_mib']:7.1f} arena {m.get('arena', 0):7.1f} "
              f"in_use {m.get('in_use', 0):7.1f} free {m.get('free', 0):7.1f} mmapped "
              f"{m.get('mmapped', 0):6.1f} gc {r['gc_objects']} threads {r.get('threads')} "
              f"{r.get('regions')}")
    if len(rows) > skip + 1:
        a, b = rows[skip]["types"], rows[-1]["types"]
        grow = sorted(((b.get(k, 0) - a.get(k, 0), k) for k in set(a) | set(b)), reverse=True)
        print("gc object types grown:", [(k, d) for d, k in grow[:15] if d > 0])
    for sp in sorted(where.glob("spike-*.tm")):
        print(f"\n== {sp.name}: largest live allocations by traceback")
        for st in tracemalloc.Snapshot.load(str(sp)).statistics("traceback")[:3]:
            print(f"  {st.size / 2**20:.1f} MiB in {st.count} blocks")
            for line in st.traceback.format()[-limit:]:
                print("   ", line)
    if len(snaps) <= skip + 1:
        return
    first = tracemalloc.Snapshot.load(str(snaps[skip]))
    last = tracemalloc.Snapshot.load(str(snaps[-1]))
    flt = [tracemalloc.Filter(False, tracemalloc.__file__)]
    diff = last.filter_traces(flt).compare_to(
        first.filter_traces(flt), "traceback")
    for d in diff[:limit]:
        print(f"\n+{d.size_diff / 1024:.0f} KiB (+{d.count_diff} blocks) now "
              f"{d.size / 1024:.0f} KiB")
        for line in d.traceback.format()[-16:]:
            print("   ", line)


if __name__ == "__main__":
    _report(Path(sys.argv[1]), int(sys.argv[2]) if len(sys.argv) > 2 else 1,
            int(sys.argv[3]) if len(sys.argv) > 3 else 12)
