"""Structured logs: FTS search by word, level and trace id; redaction; error aggregation;
export; service output tailing; retention; file rotation."""

from __future__ import annotations

import json
import logging

import pytest

from autonomous.core.clock import FakeClock
from autonomous.core.errors import ValidationFailed
from autonomous.store import Store
from autonomous.telemetry.log_tail import ServiceLogTailer
from autonomous.telemetry.logs_collector import OPERATOR_LOG, LogsCollector, error_signature
from autonomous.telemetry.tracing_system import TracingSystem


@pytest.fixture()
def env(tmp_path):
    store = Store(tmp_path / "db.sqlite").open()
    clock = FakeClock()
    tracing = TracingSystem(store, clock)
    logs = LogsCollector(store, clock, tmp_path / "logs", max_bytes=4000, backup_count=2,
                         batch_size=50, trace_ids=tracing.current_ids)
    logger = logging.getLogger("atlas.test.logs")
    logger.propagate = False
    logs.install(logger, level="DEBUG")
    yield logs, logger, tracing, tmp_path / "logs"
    logs.uninstall()
    store.close()


def test_search_by_word_level_and_trace_id(env):
    logs, logger, tracing, _ = env
    logger.info("probe ok for nexus", extra={"service": "nexus"})
    with tracing.span("heal nexus") as span:
        logger.error("restart of nexus failed: port busy", extra={"service": "nexus"})
    logger.warning("disk almost full", extra={"service": "robot"})
    hits = logs.search_logs("nexus")
    assert [h["message"] for h in hits] == ["restart of nexus failed: port busy",
                                           "probe ok for nexus"]
    assert [h["message"] for h in logs.search_logs("nexus", level="error")] == \
        ["restart of nexus failed: port busy"]
    by_trace = logs.search_logs(trace_id=span.trace_id)
    assert len(by_trace) == 1 and by_trace[0]["span_id"] == span.span_id
    assert logs.search_logs(span.trace_id)[0]["trace_id"] == span.trace_id  # full text too
    assert [h["service"] for h in logs.search_logs(level="WARNING", service="robot")] == ["robot"]
    assert logs.search_logs("full*")[0]["message"] == "disk almost full"
    with pytest.raises(ValidationFailed, match="'loud' is not one of"):
        logs.search_logs(level="loud")


def test_secrets_are_redacted_in_index_and_file(env):
    logs, logger, _, log_dir = env
    logger.warning("call failed Authorization: Bearer sk-live-123456 password=hunter2",
                   extra={"headers": {"Authorization": "Bearer abcdef123"}, "api_token": "tok"})
    logs.flush()
    (line,) = logs.search_logs("call")
    text = json.dumps(line) + (log_dir / OPERATOR_LOG).read_text()
    for secret in ("sk-live-123456", "hunter2", "abcdef123", '"tok"'):
        assert secret not in text
    assert line["api_token"] == "[REDACTED]" and "[REDACTED]" in line["message"]


def test_aggregate_errors_groups_by_signature(env):
    logs, logger, _, _ = env
    for i in range(5):
        logger.error("timeout after %d ms calling 10.0.0.%d:8000", 100 + i, i,
                     extra={"service": "nexus"})
    logger.error("unknown failure", extra={"service": "robot"})
    groups = logs.aggregate_errors()
    assert groups[0]["count"] == 5 and groups[0]["service"] == "nexus"
    assert groups[0]["signature"] == "atlas.test.logs: timeout after <n> ms calling <ip>"
    assert groups[1]["count"] == 1
    assert error_signature("x", 'open "/a/b/c" failed') == "x: open <str> failed"


def test_export_ndjson(env, tmp_path):
    logs, logger, _, _ = env
    logger.info("one")
    logger.info("two")
    out = tmp_path / "out.ndjson"
    assert logs.export_logs(out) == 2
    assert [json.loads(x)["message"] for x in out.read_text().splitlines()] == ["one", "two"]


def test_service_output_is_tailed_once_with_spans(env):
    logs, _, tracing, log_dir = env
    path = log_dir / "nexus.log"
    req = {"ts": "2023-11-14T22:13:20.000Z", "level": "INFO", "logger": "sample_stack.http",
           "message": "GET /work 200", "service": "nexus", "trace_id": "a" * 32,
           "span_id": "b" * 16, "parent_span_id": "c" * 16, "method": "GET", "path": "/work",
           "status": 200, "duration_ms": 12.5}
    path.write_text(json.dumps(req) + "\nTraceback (most recent call last):\npartial")
    tail = ServiceLogTailer(logs.store, logs.clock, log_dir,
                            lambda ls: (logs.ingest(ls, write_file=False), logs.flush()),
                            on_span=tracing.add_span_from_log)
    assert tail.collect() == 2
    assert tail.collect() == 0  # offsets persisted: nothing read twice
    with path.open("a") as fh:
        fh.write(" line\n")
    assert tail.collect() == 1
    assert logs.search_logs("partial")[0]["message"] == "partial line"
    assert logs.search_logs(level="ERROR", service="nexus")[0]["message"].startswith("Traceback")
    span = tracing.get_trace("a" * 32)["spans"][0]
    assert (span["service"], span["kind"]) == ("nexus", "server")
    assert span["duration_ms"] == pytest.approx(12.5, abs=1e-3)
    path.write_text("fresh start\n")  # truncated / replaced: read from the start
    assert tail.collect() == 1


def test_retention_and_rotation(env):
    logs, logger, _, log_dir = env
    logger.info("old line")
    logs.clock.advance(100)
    logger.info("new line")
    assert logs.apply_retention(50) == 1
    assert [h["message"] for h in logs.search_logs("line")] == ["new line"]
    for i in range(200):
        logger.info("filler %d %s", i, "x" * 40)
    assert (log_dir / f"{OPERATOR_LOG}.1").exists()
    assert not (log_dir / f"{OPERATOR_LOG}.3").exists()  # backup_count = 2
