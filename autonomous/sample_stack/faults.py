"""Fault injection for a sample service: break it on purpose, from outside, over HTTP.

``POST /fault`` bodies (unknown fields or bad values → 400 naming the field and allowed values):

- ``{"kind": "crash", "exit_code": 1}``: answer, then exit at once with ``exit_code`` (0-255).
- ``{"kind": "hang", "duration_s": null}``: every request blocks (the service stops answering)
  until ``POST /fault/clear`` (which is never blocked) or ``duration_s`` elapses.
- ``{"kind": "slow", "delay_ms": 300}``: every request waits ``delay_ms`` before it is handled.
- ``{"kind": "error", "status": 500, "rate": 1.0}``: that share of requests answers ``status``
  (spread evenly: rate 0.5 fails exactly every other request, so tests are deterministic).
- ``{"kind": "memory", "mb_per_s": 20, "max_mb": 512}``: a background thread really grows the
  resident memory by ``mb_per_s`` until ``max_mb`` is held.

hang/slow/error take an optional ``"paths": ["/api/", ...]`` (path prefixes they apply to). By
default they apply to every path except ``/fault...``; slow and error also spare ``/metrics``,
so a scrape still shows the errors and latencies they cause. A crash loop at start is declared
with ``--crash-on-start`` or ``ATLAS_SAMPLE_FAULT=crash_on_start`` (see ``cli``).
"""

from __future__ import annotations

import threading
import time

from autonomous.sample_stack.errors import BadRequest

__all__ = ["KINDS", "FaultError", "Faults", "num", "validate"]

KINDS = ("crash", "hang", "slow", "error", "memory")

# kind -> {field: (required, low, high, integer)}
_FIELDS: dict[str, dict[str, tuple[bool, float, float, bool]]] = {
    "crash": {"exit_code": (False, 0, 255, True)},
    "hang": {"duration_s": (False, 0.001, 86400, False)},
    "slow": {"delay_ms": (True, 0, 600_000, False)},
    "error": {"status": (False, 400, 599, True), "rate": (False, 0, 1, False)},
    "memory": {"mb_per_s": (True, 0.001, 4096, False), "max_mb": (False, 1, 65536, False)},
}
_DEFAULTS: dict[str, dict[str, object]] = {
    "crash": {"exit_code": 1}, "hang": {"duration_s": None}, "slow": {},
    "error": {"status": 500, "rate": 1.0}, "memory": {"max_mb": 512},
}
_PATHS_KINDS = ("hang", "slow", "error")
_TICK_S = 0.1


class FaultError(BadRequest):
    """A bad fault body; the message names the field and the allowed values."""


def _check_number(kind: str, name: str, value: object) -> str | None:
    _, low, high, integer = _FIELDS[kind][name]
    if value is None and name == "duration_s":
        return None
    ok_type = isinstance(value, int) if integer else isinstance(value, (int, float))
    if isinstance(value, bool) or not ok_type or not isinstance(value, (int, float)):
        return f"{name}: {value!r} is not {'an integer' if integer else 'a number'}"
    if not low <= value <= high:
        return f"{name}: {value!r} is out of range; allowed: {low:g} to {high:g}"
    return None


def _check_paths(value: object) -> str | None:
    if not isinstance(value, list) or not value or not all(
            isinstance(p, str) and p.startswith("/") for p in value):
        return f"paths: {value!r} must be a non-empty list of path prefixes such as \"/api/\""
    return None


def validate(body: object) -> dict[str, object]:
    """The fault a ``POST /fault`` body asks for, with defaults filled in, or FaultError."""
    if not isinstance(body, dict):
        raise FaultError('body: expected a JSON object such as {"kind": "slow", "delay_ms": 200}')
    kind = body.get("kind")
    if kind in ("exit_on_start", "crash_on_start"):
        raise FaultError(f"kind: {kind!r} is set at start: use --crash-on-start or "
                         "ATLAS_SAMPLE_FAULT=crash_on_start")
    if kind not in KINDS:
        raise FaultError(f"kind: {kind!r} is not one of {', '.join(KINDS)}")
    fields = _FIELDS[kind]
    allowed = {"kind", *fields, *(("paths",) if kind in _PATHS_KINDS else ())}
    problems = [f"{k}: unknown field for kind {kind!r}; allowed: {', '.join(sorted(allowed))}"
                for k in sorted(set(body) - allowed)]
    problems += [f"{k}: required for kind {kind!r}" for k, (req, *_) in fields.items()
                 if req and k not in body]
    problems += [_check_number(kind, k, body[k]) or "" for k in fields if k in body]
    if "paths" in body:
        problems.append(_check_paths(body["paths"]) or "")
    problems = [p for p in problems if p]
    if problems:
        raise FaultError("; ".join(problems))
    return {**_DEFAULTS[kind], **body}


def num(fault: dict[str, object], key: str) -> float:
    """A numeric parameter of a validated fault."""
    value = fault[key]
    if not isinstance(value, (int, float)):
        raise TypeError(f"{key}: {value!r} is not a number (was the fault validated?)")
    return float(value)


class Faults:
    """The faults active in one service, applied to each request by ``before_request``."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._active: dict[str, dict[str, object]] = {}
        self._unhung = threading.Event()
        self._unhung.set()
        self._error_debt = 0.0
        self._ballast: list[bytes] = []
        self._mem_stop = threading.Event()

    def activate(self, fault: dict[str, object]) -> None:
        """Start a validated fault (crash is the server's job: it must answer first)."""
        kind = str(fault["kind"])
        with self._lock:
            self._active[kind] = dict(fault, since=time.time())
        if kind == "hang":
            self._unhung.clear()
            if fault.get("duration_s"):
                t = threading.Timer(num(fault, "duration_s"), self.clear, ("hang",))
                t.daemon = True
                t.start()
        elif kind == "memory":
            self._start_memory(num(fault, "mb_per_s"), num(fault, "max_mb"))
        elif kind == "error":
            self._error_debt = 0.0

    def clear(self, kind: str | None = None) -> list[str]:
        """Stop one fault kind, or all; return the kinds that were stopped."""
        with self._lock:
            kinds = [k for k in self._active if kind in (None, k)]
            for k in kinds:
                del self._active[k]
        if "hang" in kinds:
            self._unhung.set()
        if "memory" in kinds:
            self._mem_stop.set()
            self._ballast = []
        return kinds

    def snapshot(self) -> dict[str, dict[str, object]]:
        """The active faults with their parameters (and ``since``, Unix seconds)."""
        with self._lock:
            return {k: dict(v) for k, v in self._active.items()}

    def active(self, kind: str) -> bool:
        """Whether a fault of ``kind`` is in force."""
        with self._lock:
            return kind in self._active

    def ballast_bytes(self) -> int:
        """Bytes held by the memory fault."""
        return sum(len(b) for b in list(self._ballast))

    def _applies(self, kind: str, path: str) -> dict[str, object] | None:
        with self._lock:
            f = self._active.get(kind)
        if f is None or path.startswith("/fault"):
            return None
        prefixes = f.get("paths")
        if not isinstance(prefixes, list):
            return None if (kind != "hang" and path == "/metrics") else f
        return f if any(path.startswith(p) for p in prefixes) else None

    def before_request(self, path: str) -> int | None:
        """Block (hang), wait (slow), and return an error status to answer with, or None."""
        if self._applies("hang", path):
            self._unhung.wait()
        slow = self._applies("slow", path)
        if slow:
            time.sleep(num(slow, "delay_ms") / 1000.0)
        err = self._applies("error", path)
        if err:
            with self._lock:
                self._error_debt += num(err, "rate")
                if self._error_debt >= 1.0 - 1e-9:
                    self._error_debt -= 1.0
                    return int(num(err, "status"))
        return None

    def _start_memory(self, mb_per_s: float, max_mb: float) -> None:
        self._mem_stop.set()  # a second memory fault replaces the first one's thread
        stop = self._mem_stop = threading.Event()
        threading.Thread(target=self._grow, args=(stop, mb_per_s, max_mb),
                         name="memory-fault", daemon=True).start()

    def _grow(self, stop: threading.Event, mb_per_s: float, max_mb: float) -> None:
        step = max(1, int(mb_per_s * 1024 * 1024 * _TICK_S))
        cap = int(max_mb * 1024 * 1024)
        while not stop.wait(_TICK_S):
            held = self.ballast_bytes()
            if held < cap:
                # bytes filled with a non-zero pattern: every page is written, so RSS really grows
                self._ballast.append(b"\xa5" * min(step, cap - held))
