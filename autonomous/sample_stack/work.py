"""The work the sample services really do: plan moves, read host sensors, detect edges, burn CPU.

Each function takes a decoded JSON body (or a query value) and returns a JSON-able dict, or
raises ``BadRequest`` whose message names the field, the value and what is allowed.
"""

from __future__ import annotations

import math
import os
import threading
import time

from autonomous.sample_stack.errors import BadRequest

__all__ = ["BadRequest", "Motion", "burn_cpu", "detect_edges", "read_sensors"]

_MAX_WAYPOINTS_SHOWN = 50
_DT_S = 0.02
_MAX_SIDE = 512

Point = tuple[float, float, float]


def _number(where: str, v: object, low: float, high: float) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
        raise BadRequest(f"{where}: {v!r} is not a finite number")
    if not low <= v <= high:
        raise BadRequest(f"{where}: {v!r} is out of range; allowed: {low:g} to {high:g}")
    return float(v)


def _only(where: str, body: dict[str, object], allowed: tuple[str, ...]) -> None:
    extra = sorted(set(body) - set(allowed))
    if extra:
        raise BadRequest(f"{where}{', '.join(extra)}: unknown field; allowed: {', '.join(allowed)}")


class Motion:
    """NEXUS's arm: a position, and straight-line or minimum-jerk moves to a target."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.position: Point = (0.0, 0.0, 0.0)
        self.moves = 0

    def move(self, body: object, *, smooth: bool) -> dict[str, object]:
        """Plan a move to ``body["target"]`` at ``body["speed"]`` m/s (peak) and take it."""
        if not isinstance(body, dict):
            raise BadRequest('body: expected {"target": {"x": 0.1, "y": 0.2, "z": 0.3}, '
                             '"speed": 0.5}')
        _only("", body, ("target", "speed"))
        target = body.get("target")
        if not isinstance(target, dict):
            raise BadRequest(f"target: {target!r} must be an object with x, y, z (metres)")
        _only("target.", target, ("x", "y", "z"))
        x, y, z = (_number(f"target.{k}", target.get(k), -100, 100) for k in ("x", "y", "z"))
        speed = _number("speed", body.get("speed", 0.5), 0.001, 10)
        with self._lock:
            start, self.position = self.position, (x, y, z)
            self.moves += 1
        return _trajectory(start, (x, y, z), speed, smooth)


def _trajectory(a: Point, b: Point, speed: float,
                smooth: bool) -> dict[str, object]:
    dist = math.dist(a, b)
    if smooth:  # minimum jerk: s = 10t^3 - 15t^4 + 6t^5, peak speed 1.875 D / T at t = 1/2
        duration = 1.875 * dist / speed
        n = max(2, min(5000, int(duration / _DT_S) + 1))
        taus = [i / (n - 1) for i in range(n)]
        shape = [10 * t**3 - 15 * t**4 + 6 * t**5 for t in taus]
    else:
        duration, n = dist / speed, 2
        taus, shape = [0.0, 1.0], [0.0, 1.0]
    pts = [tuple(p + (q - p) * s for p, q in zip(a, b, strict=True)) for s in shape]
    dt = duration / (n - 1) if n > 1 else 0.0
    speeds = [math.dist(pts[i], pts[i + 1]) / dt for i in range(n - 1)] if dt else [0.0]
    accel = max((abs(speeds[i + 1] - speeds[i]) / dt for i in range(len(speeds) - 1)),
                default=0.0)
    stride = max(1, n // _MAX_WAYPOINTS_SHOWN)
    shown = pts[::stride] if (n - 1) % stride == 0 else [*pts[::stride], pts[-1]]
    return {"planner": "minimum_jerk" if smooth else "linear", "from": list(a), "to": list(b),
            "distance_m": round(dist, 6), "duration_s": round(duration, 6),
            "waypoint_count": n, "peak_speed_m_s": round(max(speeds), 6),
            "peak_accel_m_s2": round(accel, 6),
            "waypoints": [[round(c, 6) for c in p] for p in shown]}


def _read(path: str) -> str | None:
    try:
        with open(path, encoding="ascii") as f:
            return f.read()
    except OSError:
        return None


def _meminfo() -> dict[str, object]:
    text = _read("/proc/meminfo")
    if text is None:
        return {"total_bytes": None, "available_bytes": None, "reason": "no /proc/meminfo"}
    kv = {ln.split(":")[0]: int(ln.split()[1]) * 1024 for ln in text.splitlines() if ln.strip()}
    return {"total_bytes": kv.get("MemTotal"), "available_bytes": kv.get("MemAvailable")}


def _temperature() -> dict[str, object]:
    raw = _read("/sys/class/thermal/thermal_zone0/temp")
    if raw is None or not raw.strip().lstrip("-").isdigit():
        return {"celsius": None, "reason": "no thermal zone exposed by this host"}
    return {"celsius": int(raw) / 1000.0, "zone": "thermal_zone0"}


def read_sensors() -> dict[str, object]:
    """Real host readings: load average, CPUs, memory, root disk, temperature, uptime."""
    try:
        load: list[float] | None = [round(x, 3) for x in os.getloadavg()]
    except OSError:
        load = None
    st = os.statvfs("/")
    up = _read("/proc/uptime")
    return {"ts": time.time(), "load_avg": load, "cpu_count": os.cpu_count(),
            "memory": _meminfo(),
            "disk_root": {"total_bytes": st.f_blocks * st.f_frsize,
                          "free_bytes": st.f_bavail * st.f_frsize},
            "temperature": _temperature(),
            "host_uptime_s": float(up.split()[0]) if up else None}


def _image(body: object) -> tuple[list[list[float]], float | None]:
    if not isinstance(body, dict):
        raise BadRequest('body: expected {"image": [[0, 1, ...], ...], "threshold": 2.0}')
    _only("", body, ("image", "threshold"))
    img = body.get("image")
    if not isinstance(img, list) or not 3 <= len(img) <= _MAX_SIDE:
        raise BadRequest(f"image: must be a list of 3 to {_MAX_SIDE} rows of numbers")
    width = len(img[0]) if isinstance(img[0], list) else -1
    if not 3 <= width <= _MAX_SIDE:
        raise BadRequest(f"image[0]: must be a list of 3 to {_MAX_SIDE} numbers")
    for r, row in enumerate(img):
        if not isinstance(row, list) or len(row) != width:
            raise BadRequest(f"image[{r}]: every row must be a list of {width} numbers")
        for c, v in enumerate(row):
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
                raise BadRequest(f"image[{r}][{c}]: {v!r} is not a finite number")
    thr = body.get("threshold")
    return img, None if thr is None else _number("threshold", thr, 0, 1e12)


def _sobel(img: list[list[float]]) -> list[list[float]]:
    h, w = len(img), len(img[0])
    mag = [[0.0] * w for _ in range(h)]
    for y in range(1, h - 1):
        up, mid, dn = img[y - 1], img[y], img[y + 1]
        for x in range(1, w - 1):
            gx = (up[x + 1] + 2 * mid[x + 1] + dn[x + 1]) - (up[x - 1] + 2 * mid[x - 1] + dn[x - 1])
            gy = (dn[x - 1] + 2 * dn[x] + dn[x + 1]) - (up[x - 1] + 2 * up[x] + up[x + 1])
            mag[y][x] = math.hypot(gx, gy)
    return mag


def _components(edge: list[list[bool]]) -> list[dict[str, int]]:
    h, w = len(edge), len(edge[0])
    seen = [[False] * w for _ in range(h)]
    boxes = []
    for y0 in range(h):
        for x0 in range(w):
            if not edge[y0][x0] or seen[y0][x0]:
                continue
            stack, seen[y0][x0] = [(y0, x0)], True
            box = [x0, y0, x0, y0, 0]
            while stack:
                y, x = stack.pop()
                box = [min(box[0], x), min(box[1], y), max(box[2], x), max(box[3], y), box[4] + 1]
                for ny, nx in ((y + 1, x), (y - 1, x), (y, x + 1), (y, x - 1)):
                    if 0 <= ny < h and 0 <= nx < w and edge[ny][nx] and not seen[ny][nx]:
                        seen[ny][nx] = True
                        stack.append((ny, nx))
            boxes.append(dict(zip(("x0", "y0", "x1", "y1", "pixels"), box, strict=True)))
    return sorted(boxes, key=lambda b: -b["pixels"])


def detect_edges(body: object) -> dict[str, object]:
    """Sobel edges of ``body["image"]``, their connected regions, and a SHA-256 of the input.

    The threshold defaults to mean + 1 standard deviation of the gradient magnitude.
    """
    import hashlib  # only here: keeps service start-up free of it

    img, thr = _image(body)
    t0 = time.perf_counter()
    mag = _sobel(img)
    flat = [v for row in mag for v in row]
    mean = sum(flat) / len(flat)
    std = math.sqrt(sum((v - mean) ** 2 for v in flat) / len(flat))
    cut = thr if thr is not None else mean + std
    edge = [[v > cut and v > 0 for v in row] for row in mag]
    regions = _components(edge)
    digest = hashlib.sha256(repr(img).encode()).hexdigest()
    return {"width": len(img[0]), "height": len(img), "threshold": round(cut, 6),
            "edge_pixels": sum(map(sum, edge)), "max_gradient": round(max(flat), 6),
            "regions": len(regions), "detections": regions[:20], "sha256": digest,
            "compute_ms": round((time.perf_counter() - t0) * 1000, 3)}


def burn_cpu(ms_text: str | None) -> dict[str, object]:
    """Spin the CPU for ``ms`` milliseconds (0 to 10000) doing arithmetic; report what was done."""
    try:
        ms = int(ms_text if ms_text is not None else "")
    except ValueError:
        raise BadRequest(f"ms: {ms_text!r} must be an integer number of milliseconds "
                         "(0 to 10000), e.g. /api/work?ms=50") from None
    if not 0 <= ms <= 10_000:
        raise BadRequest(f"ms: {ms} is out of range; allowed: 0 to 10000")
    start = time.perf_counter()
    end, iterations, acc = start + ms / 1000.0, 0, 0
    while time.perf_counter() < end:
        for i in range(1000):
            acc = (acc * 31 + i) % 1_000_003
        iterations += 1000
    return {"requested_ms": ms, "elapsed_ms": round((time.perf_counter() - start) * 1000, 3),
            "iterations": iterations, "result": acc, "cpu_s": round(sum(os.times()[:2]), 3)}
