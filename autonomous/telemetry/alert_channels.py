"""Notification channels: logbook (the store), webhook (Alertmanager JSON), email (SMTP).

Every channel has ``name``, ``type`` and ``async send(payload, timeout)`` that returns on
delivery and raises on failure (the alert manager's outbox retries with backoff). Payloads
use the Alertmanager webhook format (version 4) with an ``atlas`` block for what Alertmanager
lacks (notice kind, repeat count, escalation, acknowledgement).
"""

from __future__ import annotations

import abc
import asyncio
import json
import logging
import smtplib
from email.message import EmailMessage
from typing import Any

import httpx

from autonomous.core.clock import iso
from autonomous.core.errors import TemporaryError

__all__ = [
    "Channel",
    "EmailChannel",
    "LogbookChannel",
    "WebhookChannel",
    "build_payload",
    "expand_receivers",
]

log = logging.getLogger("atlas.alerts")


class Channel(abc.ABC):
    """A place a notification is delivered to. ``send`` raises when the delivery failed
    (the outbox retries any failure with ``notify_backoff`` until its ``max_retries``)."""

    name = ""
    type = ""

    @abc.abstractmethod
    async def send(self, payload: dict[str, Any], timeout: float) -> None:
        """Deliver ``payload`` within ``timeout`` seconds."""


class LogbookChannel(Channel):
    """The store is the logbook (the notification row); the notice is also logged."""

    name = type = "logbook"

    async def send(self, payload: dict[str, Any], timeout: float) -> None:
        names = ", ".join(a["labels"].get("alertname", "?") for a in payload["alerts"])
        kind, status = payload["atlas"]["kind"], payload["status"]
        what = status if kind == status else f"{kind} ({status})"  # not "firing firing"
        what += (f", repeat {payload['atlas']['repeat']}" if payload["atlas"]["repeat"] else "")
        what += ", escalated" if payload["atlas"]["escalated"] else ""
        log.warning("alert %s: %s", what, names, extra={"group_key": payload["groupKey"]})


class WebhookChannel(Channel):
    """POSTs the payload as JSON; any status other than 2xx is a failed attempt."""

    type = "webhook"

    def __init__(self, name: str, url: str, client: httpx.AsyncClient | None = None) -> None:
        self.name = name
        self.url = url
        self.client = client

    async def send(self, payload: dict[str, Any], timeout: float) -> None:
        try:
            if self.client is not None:
                r = await self.client.post(self.url, json=payload, timeout=timeout)
            else:
                async with httpx.AsyncClient() as client:
                    r = await client.post(self.url, json=payload, timeout=timeout)
        except httpx.HTTPError as exc:
            raise TemporaryError(f"webhook {self.name} ({self.url}): {type(exc).__name__}: "
                                 f"{exc}") from exc
        if not 200 <= r.status_code < 300:
            raise TemporaryError(f"webhook {self.name} ({self.url}) answered {r.status_code}")


class EmailChannel(Channel):
    """Sends a plain-text summary with the JSON payload attached, over SMTP (in a thread)."""

    type = "email"

    def __init__(self, name: str, host: str, port: int, sender: str, to: list[str],
                 starttls: bool = False) -> None:
        self.name, self.host, self.port = name, host, port
        self.sender, self.to, self.starttls = sender, list(to), starttls

    async def send(self, payload: dict[str, Any], timeout: float) -> None:
        msg = EmailMessage()
        msg["From"], msg["To"] = self.sender, ", ".join(self.to)
        msg["Subject"] = _subject(payload)
        msg.set_content(_body(payload))
        msg.add_attachment(json.dumps(payload, indent=2).encode(), maintype="application",
                           subtype="json", filename="alerts.json")
        try:
            await asyncio.to_thread(self._deliver, msg, timeout)
        except (OSError, smtplib.SMTPException) as exc:
            raise TemporaryError(f"email {self.name} via {self.host}:{self.port}: {exc}") from exc

    def _deliver(self, msg: EmailMessage, timeout: float) -> None:
        with smtplib.SMTP(self.host, self.port, timeout=timeout) as smtp:
            if self.starttls:
                smtp.starttls()
            smtp.send_message(msg)


def _subject(payload: dict[str, Any]) -> str:
    status = payload["status"].upper()
    n = len(payload["alerts"])
    group = " ".join(f"{v}" for v in payload["groupLabels"].values())
    kind = payload["atlas"]["kind"]
    extra = f" ({kind})" if kind not in ("firing", "resolved") else ""
    return f"[ATLAS {status}:{n}] {group}{extra}"


def _body(payload: dict[str, Any]) -> str:
    lines = [_subject(payload), ""]
    for a in payload["alerts"]:
        lines.append(f"- {a['status']}: {a['labels'].get('alertname')} "
                     f"{a['annotations'].get('summary', '')} (since {a['startsAt']})")
    return "\n".join(lines) + "\n"


def build_payload(*, receiver: str, group_key: str, group_labels: dict[str, str],
                  alerts: list[dict[str, Any]], kind: str, repeat: int = 0,
                  escalated: bool = False, external_url: str = "") -> dict[str, Any]:
    """Alertmanager webhook v4 JSON for a group notice (``alerts`` are alert rows)."""
    items = [_alert_item(a, kind) for a in alerts]
    status = "resolved" if all(i["status"] == "resolved" for i in items) else "firing"
    common = dict(set.intersection(*(set(i["labels"].items()) for i in items))) if items else {}
    return {"version": "4", "groupKey": group_key, "truncatedAlerts": 0, "status": status,
            "receiver": receiver, "groupLabels": group_labels, "commonLabels": common,
            "commonAnnotations": {}, "externalURL": external_url, "alerts": items,
            "atlas": {"kind": kind, "repeat": repeat, "escalated": escalated,
                      "alert_ids": [a["id"] for a in alerts]}}


def _alert_item(a: dict[str, Any], kind: str) -> dict[str, Any]:
    resolved = a["state"] == "resolved"
    return {"status": "resolved" if resolved else "firing", "labels": a["labels"],
            "annotations": {"summary": a["summary"], "value": a.get("value"),
                            "flapping": kind == "flapping",
                            "acknowledged_by": a.get("acked_by")},
            "startsAt": iso(a.get("fired_at") or a["pending_since"]),
            "endsAt": iso(a.get("resolved_at")) if resolved else "0001-01-01T00:00:00Z",
            "generatorURL": f"/api/telemetry/alerts?id={a['id']}",
            "fingerprint": a["fingerprint"]}


def expand_receivers(names: list[str], channels: dict[str, Channel]) -> list[Channel]:
    """Route names → channels: a channel name, or a type ('webhook', 'email') for all of it."""
    out: list[Channel] = []
    for n in names:
        found = [channels[n]] if n in channels else [c for c in channels.values() if c.type == n]
        out.extend(c for c in found if c not in out)
    return out
