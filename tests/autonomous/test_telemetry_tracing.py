"""Span persistence off the hot path, probe sampling, the lean probe client, event counters."""

from __future__ import annotations

import asyncio
import random
import threading
import time
from http.server import BaseHTTPRequestHandler

import pytest

from autonomous.supervisor.probe_client import ProbeClient
from autonomous.supervisor.probes import http_probe
from autonomous.telemetry.httpx_hooks import traced_client
from autonomous.telemetry.hub import TelemetryHub
from autonomous.telemetry.tracing_system import TracingSystem
from autonomous.testing import free_port, make_context, serve_http


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    seen: list[tuple[str, str | None, int]] = []  # noqa: RUF012 - per-server, reset in fixture
    release = threading.Event()  # set when the server stops (ends a /hang)

    def log_message(self, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        _Handler.seen.append((self.path, self.headers.get("traceparent"),
                              id(self.connection)))
        if self.path == "/hang":  # never answers while the test runs
            _Handler.release.wait(30)
            self.close_connection = True
            return
        if self.path == "/chunked":
            self.send_response(200)
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for part in (b"hel", b"lo"):
                self.wfile.write(b"%x\r\n%s\r\n" % (len(part), part))
            self.wfile.write(b"0\r\n\r\n")
            return
        body = b"ok" if self.path != "/missing" else b"no"
        self.send_response(200 if self.path != "/missing" else 404)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture
def server():
    _Handler.seen = []
    _Handler.release = threading.Event()
    with serve_http(_Handler) as srv:
        try:
            yield f"http://127.0.0.1:{srv.server_address[1]}"
        finally:
            _Handler.release.set()  # a /hang request still waiting ends without an answer


def test_ending_spans_buffers_and_a_background_thread_writes(tmp_path):
    ctx = make_context(tmp_path)
    tracing = TracingSystem(ctx.store, ctx.clock, batch_size=4)
    writers: list[str] = []
    real = ctx.store.transaction

    def spy():
        writers.append(threading.current_thread().name)
        return real()

    ctx.store.transaction = spy
    try:
        with tracing.span("root") as root:
            for i in range(3):
                with tracing.span(f"child {i}"):
                    pass
        assert writers == []  # 4 rows: the writer thread was woken, the caller wrote nothing
        for _ in range(200):
            if tracing.recorded == 4:
                break
            time.sleep(0.01)
        assert tracing.recorded == 4 and writers == ["atlas-span-writer"]
        trace = tracing.get_trace(root.trace_id)
        assert trace["root"] == root.span_id and len(trace["spans"]) == 4
        # the summary row follows the root even though its children were buffered first
        (summary,) = tracing.list_traces()
        assert summary["root_span_id"] == root.span_id and summary["name"] == "root"
    finally:
        tracing.close()
        ctx.store.transaction = real
        ctx.store.close()
    assert tracing._writer is None


async def test_probe_client_keeps_one_connection_and_reads_bodies(server):
    client = ProbeClient()
    try:
        results = [await http_probe(client, server + "/health", 2.0, 0.0) for _ in range(3)]
        assert all(r.ok and r.status_code == 200 for r in results)
        assert len({conn for _, _, conn in _Handler.seen}) == 1  # keep-alive reused
        assert (await client.get(server + "/chunked", timeout=2.0)).content == b"hello"
        missing = await http_probe(client, server + "/missing", 2.0, 0.0)
        assert (missing.ok, missing.status_code, missing.error) == (False, 404, "HTTP 404")
        hang = await http_probe(client, server + "/hang", 0.2, 0.0)
        assert (hang.ok, hang.error) == (False, "timeout after 0.2s")
        refused = await http_probe(client, f"http://127.0.0.1:{free_port()}/health", 1.0, 0.0)
        assert refused.error.startswith("ConnectError: ")
        assert client.lean_requests == 5
        assert all(tp is None for _, tp, _ in _Handler.seen)  # untraced: no header
    finally:
        await client.aclose()


async def test_probes_are_traced_only_inside_a_trace_or_when_sampled(tmp_path, server):
    ctx = make_context(tmp_path)
    tracing = TracingSystem(ctx.store, ctx.clock)
    client = ProbeClient(lambda: traced_client(tracing, trust_env=False), tracing, root_ratio=0.0)
    try:
        await client.get(server + "/health", timeout=2.0)
        with tracing.span("heal nexus") as root:
            await client.get(server + "/health", timeout=2.0)
        sampled = ProbeClient(lambda: traced_client(tracing, trust_env=False), tracing,
                              root_ratio=1.0)
        await sampled.get(server + "/ready", timeout=2.0)
        await sampled.aclose()
        headers = [tp for _, tp, _ in _Handler.seen]
        assert headers[0] is None and headers[1] is not None and headers[2] is not None
        assert headers[1].split("-")[1] == root.trace_id
        assert len(tracing.list_traces()) == 2  # the heal and the sampled probe
        assert client.lean_requests == 1
    finally:
        await client.aclose()
        tracing.close()
        ctx.store.close()


async def test_traced_client_root_ratio(tmp_path, server):
    ctx = make_context(tmp_path)
    tracing = TracingSystem(ctx.store, ctx.clock)
    try:
        async with traced_client(tracing, root_ratio=0.0) as c:
            await c.get(server + "/a")
            with tracing.span("outer"):
                await c.get(server + "/b")
        kinds = [s["kind"] for t in tracing.list_traces()
                 for s in tracing.get_trace(t["trace_id"])["spans"]]
        assert sorted(kinds) == ["client", "internal"]
        assert _Handler.seen[0][1] is None and _Handler.seen[1][1] is not None
    finally:
        tracing.close()
        ctx.store.close()


def test_event_counters_are_written_once_per_cycle(tmp_path):
    ctx = make_context(tmp_path)
    hub = TelemetryHub.from_context(ctx)
    try:
        for i in range(50):
            hub.record_event("service.probe", {"service": "nexus", "ok": True,
                                               "latency_ms": float(i)})
        hub.record_event("service.healthy", {"service": "nexus"})
        assert hub.ts.latest("events_total") == []
        hub.cycle()
        latest = {lab["topic"]: v for lab, _, v in hub.ts.latest("events_total")}
        assert latest == {"service.probe": 50.0, "service.healthy": 1.0}
        hub.cycle()  # nothing new counted: nothing new written
        assert {lab["topic"]: v for lab, _, v in hub.ts.latest("events_total")} == latest
    finally:
        hub.close()
        ctx.store.close()


def test_alerting_policy_is_cached_until_it_changes(tmp_path):
    ctx = make_context(tmp_path)
    hub = TelemetryHub.from_context(ctx)
    try:
        first = hub.alerts.alerting()
        assert hub.alerts.alerting() is first
        pol = ctx.policy()["telemetry"]["alerting"]
        pol_copy = {**pol, "rules": list(pol["rules"])[:1]}
        hub.alerts.policy = lambda: {"telemetry": {"alerting": pol_copy}}
        assert len(hub.alerts.alerting().rules) == 1
    finally:
        hub.close()
        ctx.store.close()


def test_rng_is_used_for_probe_sampling():
    client = ProbeClient(None, object(), root_ratio=0.5,
                         rng=random.Random(7))
    picks = [client._traced() for _ in range(1000)]
    assert 400 < sum(picks) < 600
    asyncio.run(client.aclose())
