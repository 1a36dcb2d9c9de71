"""The HTTP side of a sample service: routing, JSON in and out, faults and metrics per request.

``Service`` holds one service's state (features, faults, metrics, readiness); ``make_server``
binds a ``ThreadingHTTPServer`` (one thread per connection) whose handler runs every request
through the same steps: trace context → fault gate (hang / slow / error) → route → metrics and
one JSON log line → JSON answer with a ``traceparent`` child header. Successful untraced
``GET``s of ``/health``, ``/ready`` and ``/metrics`` are counted but not logged unless
``--log-probes`` is given (most access logs leave probes out; failed or traced ones stay).
"""

from __future__ import annotations

import json
import math
import os
import sys
import threading
import time
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

from autonomous.sample_stack import routes, variant
from autonomous.sample_stack.faults import Faults
from autonomous.sample_stack.features import Features
from autonomous.sample_stack.logs import JsonLogger, new_trace, parse_traceparent
from autonomous.sample_stack.metrics import RequestMetrics
from autonomous.sample_stack.readiness import Readiness
from autonomous.sample_stack.tools import BUILTIN, ToolsRegistry

TYPE_CHECKING = False
if TYPE_CHECKING:
    from urllib.parse import SplitResult

    from autonomous.resilience.admission import Admission
    from autonomous.sample_stack.logs import TraceContext
    from autonomous.sample_stack.routes import After, Full, Route
    from autonomous.sample_stack.work import Motion

__all__ = ["MAX_BODY_BYTES", "Service", "make_server"]

MAX_BODY_BYTES = 8 * 1024 * 1024
Headers = tuple[tuple[str, str], ...]


PROBE_PATHS = frozenset({"/health", "/ready", "/metrics"})


def _quiet_probe(method: str, path: str, status: int, headers: Message) -> bool:
    """A successful, untraced probe or scrape: counted in /metrics, not written to the log
    (the supervisor's probes and scrapes would otherwise be most of it)."""
    return (method == "GET" and path in PROBE_PATHS and status < 400
            and headers.get("traceparent") is None)


class Service:
    """Everything one running sample service knows about itself."""

    def __init__(self, name: str, *, version: str, features: Features,
                 depends_on: list[str] | None = None, ready_delay_s: float = 0.0,
                 log: JsonLogger | None = None, admission: Admission | None = None,
                 log_probes: bool = False, variant_name: str | None = None) -> None:
        self.name = name
        self.version = version
        self.features = features
        self.faults = Faults()
        self.variant = (variant.from_env() if variant_name is None else variant.Variant(
            variant_name, variant.from_env().slow_min_s * 1000.0))
        self.metrics = RequestMetrics()
        self._motion: Motion | None = None
        self.log = log or JsonLogger(name)
        self.tools = ToolsRegistry(BUILTIN, log_error=self.log.error)
        self.started_mono = time.monotonic()
        self.readiness = Readiness(depends_on or [], ready_delay_s=ready_delay_s)
        self.heartbeats = 0
        self.admission = admission  # opt-in (--admission-policy): admit, queue or shed
        self.log_probes = log_probes
        self._inflight = 0
        self._inflight_lock = threading.Lock()

    def uptime_s(self) -> float:
        """Seconds since this service object was made (at process start)."""
        return round(time.monotonic() - self.started_mono, 3)

    def motion(self) -> Motion:
        """NEXUS's arm state, made on first use (``work`` is not imported at start-up)."""
        if self._motion is None:
            from autonomous.sample_stack.work import Motion

            with self._inflight_lock:
                if self._motion is None:
                    self._motion = Motion()
        return self._motion

    def enter(self) -> None:
        """Count a request in flight."""
        with self._inflight_lock:
            self._inflight += 1

    def leave(self) -> None:
        """Count a request done."""
        with self._inflight_lock:
            self._inflight -= 1

    def inflight(self) -> int:
        """Requests being handled now (hung ones included)."""
        with self._inflight_lock:
            return self._inflight


class Handler(BaseHTTPRequestHandler):
    """One connection; ``self.server.service`` is the Service it serves."""

    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # no 40 ms delayed-ACK stall on a response's last segment
    # buffered: headers and body leave in one send (``_send`` flushes once), so a process
    # SIGKILLed between them never leaves a client, or a gateway that cannot retry a response
    # it began forwarding, with headers and no body
    wbufsize = -1
    server_version = "atlas-sample/1"
    server: SampleHTTPServer

    def log_message(self, format: str, *args: object) -> None:
        """Silence the stdlib's stderr access log: ``_finish`` writes a JSON line instead."""

    def do_GET(self) -> None:
        """Serve a GET."""
        self._serve("GET")

    def do_POST(self) -> None:
        """Serve a POST."""
        self._serve("POST")

    def do_PUT(self) -> None:
        """Serve a PUT."""
        self._serve("PUT")

    def do_DELETE(self) -> None:
        """Serve a DELETE."""
        self._serve("DELETE")

    def _serve(self, method: str) -> None:
        svc = self.server.service
        t0 = time.perf_counter()
        trace = parse_traceparent(self.headers.get("traceparent")) or new_trace()
        url = urlsplit(self.path)
        route, label = routes.find(method, url.path)
        extra: Headers = ()
        svc.enter()
        try:
            if svc.admission is None:
                status, payload, after = self._answer(svc, method, url, route)
            else:
                status, payload, after, extra = self._admitted(svc, method, url, route)
        finally:
            svc.leave()
        # counted and logged before the answer leaves, so whoever got it can already see both
        elapsed = time.perf_counter() - t0
        svc.metrics.observe(label, status, elapsed)
        if svc.log_probes or not _quiet_probe(method, url.path, status, self.headers):
            svc.log.log("INFO" if status < 500 else "ERROR", f"{method} {url.path} {status}",
                        trace=trace, logger="sample_stack.http", method=method, path=url.path,
                        status=status, duration_ms=round(elapsed * 1000, 3))
        self._send(status, payload, trace, extra)
        if after is not None:
            after()

    def _admitted(self, svc: Service, method: str, url: SplitResult, route: Route | None
                  ) -> tuple[int, object, After | None, Headers]:
        """``_answer`` inside an admission slot; a shed request gets 429 + Retry-After."""
        from autonomous.core.errors import Throttled

        adm = svc.admission
        assert adm is not None
        headers = {k.lower(): v for k, v in self.headers.items()}
        try:
            ticket = adm.acquire_blocking(adm.classify(url.path, headers), url.path)
        except Throttled as exc:
            self._read_body()  # drain it, so the connection stays usable
            retry = (("Retry-After", str(max(1, math.ceil(exc.retry_after)))),)
            return 429, {"status": "throttled", "name": svc.name, "error": str(exc),
                         "retry_after_seconds": round(exc.retry_after, 3)}, None, retry
        try:
            return (*self._answer(svc, method, url, route), ())
        finally:
            adm.release(ticket)

    def _answer(self, svc: Service, method: str, url: SplitResult, route: Route | None) -> Full:
        started = time.monotonic()
        try:
            return self._answer_inner(svc, method, url, route)
        finally:
            svc.variant.after(started)

    def _answer_inner(self, svc: Service, method: str, url: SplitResult, route: Route | None
                      ) -> Full:
        injected = svc.faults.before_request(url.path) or svc.variant.status_for(url.path)
        body = self._read_body()  # always drain it, so the connection stays usable
        if injected is not None:
            return injected, {"status": "error", "name": svc.name,
                              "error": f"injected fault: error {injected}"}, None
        if isinstance(body, routes.Reply):
            return body.status, body.payload, None
        if route is None:
            return routes.not_found(svc, method, url.path)
        query = {k: v[-1] for k, v in parse_qs(url.query).items()}
        return routes.call(route, svc, body, query)

    def _read_body(self) -> object:
        length_text = self.headers.get("Content-Length")
        if not length_text:
            return None
        try:
            length = int(length_text)
        except ValueError:
            return routes.Reply(400, {"error": f"Content-Length: {length_text!r} is not a number"})
        if length > MAX_BODY_BYTES:
            self.close_connection = True
            return routes.Reply(413, {"error": f"body: {length} bytes is over the limit of "
                                               f"{MAX_BODY_BYTES} bytes"})
        raw = self.rfile.read(length)
        if not raw.strip():
            return None
        try:
            return json.loads(raw)
        except ValueError as e:
            return routes.Reply(400, {"error": f"body: not valid JSON ({e})"})

    def _send(self, status: int, payload: object, trace: TraceContext,
              extra: Headers = ()) -> None:
        if isinstance(payload, str):
            data, ctype = payload.encode(), "text/plain; version=0.0.4; charset=utf-8"
        else:
            data, ctype = json.dumps(payload, default=str).encode(), "application/json"
        try:
            self.send_response(status)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(data)))
            self.send_header("traceparent", trace.header())
            self.send_header("X-Service-Name", self.server.service.name)
            for name, value in extra:
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(data)
            self.wfile.flush()
        except OSError:  # the client went away: nothing to answer to
            self.close_connection = True


class SampleHTTPServer(ThreadingHTTPServer):
    """ThreadingHTTPServer with a deeper accept queue, carrying its Service."""

    request_queue_size = 128
    daemon_threads = True

    def __init__(self, addr: tuple[str, int], service: Service) -> None:
        self.service = service
        super().__init__(addr, Handler)

    def handle_error(self, request: object, client_address: object) -> None:
        """Log a handler crash as one JSON line instead of a stderr traceback."""
        exc = sys.exc_info()[1]
        if not isinstance(exc, (ConnectionError, TimeoutError)):
            self.service.log.error("handler failed", error=repr(exc), pid=os.getpid())


def make_server(service: Service, host: str, port: int) -> SampleHTTPServer:
    """Bind ``host:port`` (OSError if taken) for ``service``; call ``serve_forever`` next."""
    return SampleHTTPServer((host, port), service)
