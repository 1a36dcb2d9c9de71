"""Debian ``wrk`` as the load generator: one wrk process per priority, its own connections.

Debian's wrk 4.1 has no ``-R`` (wrk2's constant rate), so a rate is approximated: each of a
priority's ``connections`` waits ``delay()`` = connections / rate seconds before its next
request (a small Lua script, which also sets the ``x-atlas-priority`` header). A connection
waits for its answer before its delay starts, so under overload a slow priority offers less
than asked (coordinated omission): the achieved rate is reported beside the asked one, and a
shed request (429) is answered at once, so the sheddable priorities keep offering their rate.

Figures per priority: p50 / p99 from wrk's ``--latency`` distribution (every response, as wrk
measures it), p99.9 and error counts from the script's ``done()`` summary; errors = non-2xx
responses (wrk counts status > 399) + socket errors (connect, read, write, timeout).
"""

from __future__ import annotations

import asyncio
import json
import math
import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

LUA = """wrk.headers["x-atlas-priority"] = "{prio}"
{delay}
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "WRKJSON {{\\"requests\\":%d,\\"duration_us\\":%d,\\"connect\\":%d,\\"read\\":%d," ..
    "\\"write\\":%d,\\"status\\":%d,\\"timeout\\":%d,\\"p999_us\\":%d,\\"max_us\\":%d}}\\n",
    summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(99.9), latency.max))
end
"""

_UNIT = {"us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
_DIST = re.compile(r"^\s+(\d+(?:\.\d+)?)%\s+(\d+(?:\.\d+)?)(us|ms|s|m|h)\s*$")


@dataclass(frozen=True)
class Phase:
    """One wrk process: ``rate`` req/s (None: as fast as the connections go)."""

    priority: str
    path: str
    connections: int
    rate: float | None = None


@dataclass(frozen=True)
class WrkResult:
    priority: str
    asked_rps: float | None
    requests: int        # responses received (any status)
    seconds: float
    non_2xx: int         # wrk's status errors (status > 399)
    socket_errors: int   # connect + read + write + timeout
    p50: float | None    # seconds
    p99: float | None
    p999: float | None

    @property
    def achieved_rps(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    @property
    def success(self) -> float | None:
        """2xx over everything attempted (responses + socket errors)."""
        tried = self.requests + self.socket_errors
        return None if tried == 0 else (self.requests - self.non_2xx) / tried


def lua_script(priority: str, connections: int, rate: float | None) -> str:
    delay = ""
    if rate:
        delay = f"function delay() return {1000.0 * connections / rate:.3f} end"
    return LUA.format(prio=priority, delay=delay)


def parse_distribution(text: str) -> dict[float, float]:
    """wrk ``--latency`` "Latency Distribution" lines → {percent: seconds}."""
    out: dict[float, float] = {}
    inside = False
    for line in text.splitlines():
        if line.strip().startswith("Latency Distribution"):
            inside = True
            continue
        m = _DIST.match(line) if inside else None
        if m:
            out[float(m.group(1))] = float(m.group(2)) * _UNIT[m.group(3)]
        elif inside and out:
            break
    return out


def parse_output(phase: Phase, text: str) -> WrkResult:
    """A wrk run's stdout → :class:`WrkResult`; ValueError when the summary line is missing."""
    line = next((ln for ln in text.splitlines() if ln.startswith("WRKJSON ")), None)
    if line is None:
        raise ValueError(f"wrk printed no summary for {phase.priority}: {text[-400:]!r}")
    s = json.loads(line[len("WRKJSON "):])
    dist = parse_distribution(text)
    return WrkResult(phase.priority, phase.rate, s["requests"], s["duration_us"] / 1e6,
                     s["status"], s["connect"] + s["read"] + s["write"] + s["timeout"],
                     dist.get(50.0), dist.get(99.0),
                     s["p999_us"] / 1e6 if s["requests"] else None)


def wrk_binary() -> str:
    path = shutil.which("wrk")
    if path is None:
        raise RuntimeError("wrk not found: apt-get install wrk (listed in .ci/apt-packages.txt)")
    return path


async def run_phases(base: str, phases: list[Phase], seconds: float,
                     timeout: float) -> list[WrkResult]:
    """All ``phases`` at once for ``seconds`` against ``base`` (loopback); one result each."""
    wrk = wrk_binary()
    with tempfile.TemporaryDirectory(prefix="atlas-wrk-") as tmp:
        procs = []
        for ph in phases:
            script = Path(tmp) / f"{ph.priority.lower()}.lua"
            script.write_text(lua_script(ph.priority, ph.connections, ph.rate))
            argv = [wrk, "-t", "1", "-c", str(ph.connections), "-d", f"{math.ceil(seconds)}s",
                    "--timeout", f"{max(1, math.ceil(timeout))}s", "--latency",
                    "-s", str(script), base + ph.path]
            procs.append(await asyncio.create_subprocess_exec(
                *argv, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT))
        try:
            outs = [await p.communicate() for p in procs]
        finally:
            for p in procs:
                if p.returncode is None:
                    p.kill()
                    await p.wait()
        return [parse_output(ph, out.decode(errors="replace"))
                for ph, (out, _) in zip(phases, outs)]


def connections_for(rate: float, per_connection_rps: float = 10.0) -> int:
    """Connections that keep each one's delay ~1 / per_connection_rps (>= latency)."""
    return max(1, math.ceil(rate / per_connection_rps))
