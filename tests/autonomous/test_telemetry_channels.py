"""Real notification channels: webhook to a local HTTP server (down → retries with backoff →
nothing lost once back), email to a local SMTP server (aiosmtpd)."""

from __future__ import annotations

import copy
import json
from email import message_from_bytes
from email.policy import default as email_policy
from http.server import BaseHTTPRequestHandler

import pytest

from autonomous.store.timeseries import TimeSeriesStore
from autonomous.telemetry.alert_channels import (
    EmailChannel,
    LogbookChannel,
    WebhookChannel,
    build_payload,
)
from autonomous.telemetry.alert_manager import AlertManager
from autonomous.testing import free_port, make_context, serve_http


class _Receiver(BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.server.received.append(json.loads(body))
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture()
def ctx(tmp_path):
    c = make_context(tmp_path)
    yield c
    c.store.close()


def _manager(ctx, channels):
    policy = copy.deepcopy(ctx.policy())
    policy["telemetry"]["alerting"]["group_wait_seconds"] = 0
    return AlertManager(ctx.store, ctx.clock, TimeSeriesStore(ctx.store, ctx.clock),
                        lambda: policy, channels)


async def test_webhook_retries_while_down_and_delivers_everything_once_back(ctx):
    port = free_port()
    am = _manager(ctx, {"hook": WebhookChannel("hook", f"http://127.0.0.1:{port}/alerts")})
    for svc in ("nexus", "robot", "push"):
        am.trigger_alert("healing_gave_up", {"service": svc}, severity="warning")
    am.evaluate_rules()
    outbox = [n for n in reversed(am.notifications()) if n["receiver"] == "hook"]
    assert len(outbox) == 3
    first = await am.dispatch()
    assert first["waiting"] == 3  # (the logbook copies are delivered: first["sent"] == 3)
    row = next(n for n in am.notifications() if n["id"] == outbox[0]["id"])
    assert row["attempts"] == 1 and "ConnectError" in row["last_error"]
    assert 0.9 <= row["next_attempt_at"] - ctx.clock.now() <= 1.1  # initial 1 s ± 10 % jitter
    assert (await am.dispatch())["sent"] == 0  # not due yet: no hammering
    ctx.clock.advance(1.2)
    await am.dispatch()
    row = next(n for n in am.notifications() if n["id"] == outbox[0]["id"])
    assert row["attempts"] == 2 and 1.8 <= row["next_attempt_at"] - ctx.clock.now() <= 2.2
    with serve_http(_Receiver, port) as srv:
        srv.received = []
        ctx.clock.advance(2.5)
        assert (await am.dispatch())["sent"] == 3
        got = srv.received
    assert [p["alerts"][0]["labels"]["service"] for p in got] == ["nexus", "robot", "push"]
    assert all(p["version"] == "4" and p["status"] == "firing" for p in got)
    assert {n["state"] for n in am.notifications()} == {"sent"}


async def test_email_reaches_a_real_smtp_server(ctx):
    from aiosmtpd.controller import Controller

    class Sink:
        def __init__(self):
            self.messages = []

        async def handle_DATA(self, server, session, envelope):
            self.messages.append(envelope)
            return "250 OK"

    sink, port = Sink(), free_port()
    smtp = Controller(sink, hostname="127.0.0.1", port=port)
    smtp.start()
    try:
        am = _manager(ctx, {"ops-mail": EmailChannel("ops-mail", "127.0.0.1", port,
                                                     "atlas@localhost", ["ops@localhost"])})
        am.trigger_alert("disk_full", {"service": "nexus"}, severity="critical",
                         summary="disk at 99 %")
        am.evaluate_rules()
        assert (await am.dispatch())["sent"] >= 1
    finally:
        smtp.stop()
    (env,) = sink.messages
    msg = message_from_bytes(env.content, policy=email_policy)
    assert env.rcpt_tos == ["ops@localhost"]
    assert msg["Subject"].startswith("[ATLAS FIRING:1]")
    body = msg.get_body(("plain",)).get_content()
    assert "disk_full" in body and "disk at 99 %" in body


@pytest.mark.parametrize(("kind", "state", "repeat", "escalated", "said"), [
    ("firing", "firing", 0, False, "alert firing: disk_full"),
    ("resolved", "resolved", 0, False, "alert resolved: disk_full"),
    ("firing", "firing", 2, True, "alert firing, repeat 2, escalated: disk_full"),
    ("flapping", "firing", 0, False, "alert flapping (firing): disk_full"),
])
async def test_logbook_line_says_each_thing_once(caplog, kind, state, repeat, escalated, said):
    row = {"id": 1, "labels": {"alertname": "disk_full"}, "summary": "s", "state": state,
           "fingerprint": "f",
           "pending_since": 0.0, "fired_at": 1.0, "resolved_at": 2.0 if state == "resolved"
           else None}
    payload = build_payload(receiver="logbook", group_key="g", group_labels={},
                            alerts=[row], kind=kind, repeat=repeat, escalated=escalated)
    with caplog.at_level("WARNING", logger="atlas.alerts"):
        await LogbookChannel().send(payload, 1.0)
    assert [r.getMessage() for r in caplog.records] == [said]
