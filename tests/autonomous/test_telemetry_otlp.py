"""OTLP/HTTP export of finished spans to a local receiver (skipped without the package)."""

from __future__ import annotations

import gzip
import zlib
from http.server import BaseHTTPRequestHandler

import pytest

from autonomous.telemetry.otlp_export import make_exporter, otlp_available
from autonomous.telemetry.tracing_system import TracingSystem
from autonomous.testing import make_context, serve_http

pytestmark = pytest.mark.skipif(otlp_available() is not None,
                                reason=f"OTLP export not testable: {otlp_available()}")


class _Receiver(BaseHTTPRequestHandler):
    bodies: list[tuple[str, str, bytes]] = []  # noqa: RUF012 - reset by the fixture

    def log_message(self, *args: object) -> None:
        pass

    def do_POST(self) -> None:
        raw = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        enc = self.headers.get("Content-Encoding", "")
        if enc == "gzip":
            raw = gzip.decompress(raw)
        elif enc == "deflate":
            raw = zlib.decompress(raw)
        _Receiver.bodies.append((self.path, self.headers.get("Content-Type", ""), raw))
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", "0")
        self.end_headers()


@pytest.fixture
def receiver():
    _Receiver.bodies = []
    with serve_http(_Receiver) as srv:
        yield f"http://127.0.0.1:{srv.server_address[1]}"


def test_finished_spans_are_posted_as_otlp_protobuf(tmp_path, receiver):
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
        ExportTraceServiceRequest,
    )

    ctx = make_context(tmp_path)
    tracing = TracingSystem(ctx.store, ctx.clock)
    exporter = make_exporter(receiver)
    tracing.exporters.append(exporter)
    try:
        root = tracing.start_trace("heal nexus",
                                   attributes={"service": "nexus", "token": "s3cret"})
        with tracing.span("restart", kind="client", parent=root) as child:
            child.set_status("error", "exit 1")
        root.end()
        assert tracing.flush() == 2
        assert exporter.wait_idle(10)
    finally:
        exporter.close()
        ctx.store.close()
    assert exporter.exported == 2 and exporter.failed == 0
    ((path, ctype, body),) = _Receiver.bodies
    assert path == "/v1/traces" and ctype == "application/x-protobuf"
    req = ExportTraceServiceRequest.FromString(body)
    (rs,) = req.resource_spans
    assert {a.key: a.value.string_value for a in rs.resource.attributes}["service.name"] == \
        "operator"
    spans = {s.name: s for ss in rs.scope_spans for s in ss.spans}
    assert spans["heal nexus"].trace_id.hex() == root.trace_id
    assert spans["restart"].parent_span_id.hex() == root.span_id
    assert spans["restart"].status.code == 2  # STATUS_CODE_ERROR
    attrs = {a.key: a.value.string_value for a in spans["heal nexus"].attributes}
    assert attrs["service"] == "nexus" and attrs["token"] != "s3cret"  # redacted


def test_no_endpoint_no_exporter():
    assert make_exporter(None) is None


def test_hub_exports_when_the_endpoint_is_configured(tmp_path, receiver):
    from autonomous.telemetry.hub import TelemetryHub, settings_from_context

    ctx = make_context(tmp_path)
    base = settings_from_context(ctx)
    settings = base.model_copy(update={"tracing": base.tracing.model_copy(
        update={"otlp_endpoint": receiver + "/"})})
    hub = TelemetryHub(store=ctx.store, clock=ctx.clock, log_dir=tmp_path / "logs",
                       settings=settings, policy=ctx.policy, dashboards=dict)
    try:
        assert hub.otlp is not None and hub.otlp.url == receiver + "/v1/traces"
        with hub.tracing.span("rollback robot"):
            pass
        hub.close()  # writes the buffered span, then drains the export queue
        assert hub.otlp.exported == 1 and len(_Receiver.bodies) == 1
        assert hub.stats()["spans_exported_total"] == 1
    finally:
        hub.close()
        ctx.store.close()
