"""Request metrics and the Prometheus text exposition format (version 0.0.4), written by hand.

``RequestMetrics`` counts requests by (path, code) and keeps a latency histogram per path;
``render`` writes them with process gauges read from ``/proc`` (RSS, start time, CPU, fds) and
whatever service gauges the caller passes. A process value this platform cannot give is left
out with a comment saying why, never written as a made-up number.
"""

from __future__ import annotations

import os
import threading

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable

__all__ = [
    "BUCKETS", "PROCESS_START", "Gauge", "RequestMetrics", "process_metrics", "render",
    "rss_bytes",
]

BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

# (name, help, [(labels, value)])
Gauge = tuple[str, str, list[tuple[dict[str, str], float]]]


def _escape(v: str) -> str:
    return v.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _labels(labels: dict[str, str]) -> str:
    if not labels:
        return ""
    return "{" + ",".join(f'{k}="{_escape(str(v))}"' for k, v in labels.items()) + "}"


def _num(v: float) -> str:
    if v == float("inf"):
        return "+Inf"
    return repr(float(v)) if isinstance(v, float) else str(v)


class RequestMetrics:
    """Thread-safe counters and histograms of served requests."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: dict[tuple[str, str], int] = {}
        self._hist: dict[str, list[float]] = {}  # path -> per-bucket counts + [sum, count]

    def observe(self, path: str, code: int, seconds: float) -> None:
        """Record one request on ``path`` answered with ``code`` after ``seconds``."""
        with self._lock:
            key = (path, str(code))
            self._counts[key] = self._counts.get(key, 0) + 1
            h = self._hist.setdefault(path, [0.0] * (len(BUCKETS) + 2))
            for i, bound in enumerate(BUCKETS):
                if seconds <= bound:
                    h[i] += 1
            h[-2] += seconds
            h[-1] += 1

    def count(self, path: str, code: int) -> int:
        """Requests seen on ``path`` with ``code`` so far."""
        with self._lock:
            return self._counts.get((path, str(code)), 0)

    def lines(self) -> list[str]:
        """The request counter and duration histogram in exposition format."""
        with self._lock:
            counts = sorted(self._counts.items())
            hist = {p: list(h) for p, h in sorted(self._hist.items())}
        out = ["# HELP sample_http_requests_total HTTP requests served, by path and status code.",
               "# TYPE sample_http_requests_total counter"]
        out += [f"sample_http_requests_total{_labels({'path': p, 'code': c})} {n}"
                for (p, c), n in counts]
        name = "sample_http_request_duration_seconds"
        out += [f"# HELP {name} Time from request parsed to answer ready (faults included).",
                f"# TYPE {name} histogram"]
        for path, h in hist.items():
            for bound, n in zip(BUCKETS, h[:-2], strict=True):
                out.append(f"{name}_bucket{_labels({'path': path, 'le': _num(bound)})} {int(n)}")
            out.append(f"{name}_bucket{_labels({'path': path, 'le': '+Inf'})} {int(h[-1])}")
            out.append(f"{name}_sum{_labels({'path': path})} {h[-2]!r}")
            out.append(f"{name}_count{_labels({'path': path})} {int(h[-1])}")
        return out


def rss_bytes() -> int | None:
    """Resident set size of this process from /proc/self/statm, or None where there is none."""
    try:
        with open("/proc/self/statm", "rb") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return None


def _start_time() -> float | None:
    """Process start (Unix seconds) from /proc/self/stat field 22 and the boot time."""
    try:
        with open("/proc/self/stat", "rb") as f:
            ticks = int(f.read().rsplit(b")", 1)[1].split()[19])
        with open("/proc/stat", "rb") as f:
            btime = next(int(ln.split()[1]) for ln in f if ln.startswith(b"btime"))
        return btime + ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError, StopIteration):
        return None


PROCESS_START = _start_time()


def process_metrics() -> list[str]:
    """The standard ``process_*`` gauges that this platform can give."""
    out: list[str] = []
    rss = rss_bytes()
    _gauge(out, "process_resident_memory_bytes", "Resident memory size in bytes.", rss)
    _gauge(out, "process_start_time_seconds", "Start time of the process since unix epoch.",
           PROCESS_START)
    t = os.times()
    out += ["# HELP process_cpu_seconds_total Total user and system CPU time spent in seconds.",
            "# TYPE process_cpu_seconds_total counter",
            f"process_cpu_seconds_total {t.user + t.system!r}"]
    try:
        fds: float | None = len(os.listdir("/proc/self/fd"))
    except OSError:
        fds = None
    _gauge(out, "process_open_fds", "Number of open file descriptors.", fds)
    return out


def _gauge(out: list[str], name: str, help_: str, value: float | None) -> None:
    if value is None:
        out.append(f"# {name} unavailable: this platform has no /proc to read it from")
        return
    out += [f"# HELP {name} {help_}", f"# TYPE {name} gauge", f"{name} {_num(value)}"]


def render(requests: RequestMetrics, gauges: Iterable[Gauge]) -> str:
    """The full exposition: request metrics, process metrics, then the service's gauges."""
    out = requests.lines() + process_metrics()
    for name, help_, samples in gauges:
        out += [f"# HELP {name} {help_}", f"# TYPE {name} gauge"]
        out += [f"{name}{_labels(lab)} {_num(v)}" for lab, v in samples]
    return "\n".join(out) + "\n"
