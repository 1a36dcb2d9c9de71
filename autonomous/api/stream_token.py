"""Signed short-lived query tokens for the dashboards' event stream.

``EventSource`` cannot send an ``Authorization`` header, so when reads need the bearer token
(``spec.settings.api.authenticated_reads``) a page asks ``POST /dashboard/stream-token`` (with
the bearer token) for ``<expiry>.<hmac>`` and opens ``/dashboard/events?st=<that>``. The HMAC
key is the API token itself: nothing new to store, and rotating the API token voids every
stream token. A stream token opens only the event stream (which carries panel names and event
topics, never data) and only until its expiry (policy ``dashboard.stream_token_seconds``).
A query token over a cookie: nothing is sent automatically by the browser, so there is no
cross-site request to defend against, and no request but the stream accepts it.
"""

from __future__ import annotations

import hashlib
import hmac
from urllib.parse import parse_qs

__all__ = ["EVENTS_PATH", "issue", "problem", "from_query"]

EVENTS_PATH = "/dashboard/events"
_PURPOSE = b"dashboard-events|"


def _sign(key: str, expires: int) -> str:
    return hmac.new(key.encode(), _PURPOSE + str(expires).encode(), hashlib.sha256).hexdigest()


def issue(key: str, now: float, ttl_seconds: float) -> tuple[str, int]:
    """A token valid until ``now + ttl_seconds`` (whole seconds) and that expiry."""
    expires = int(now + ttl_seconds)
    return f"{expires}.{_sign(key, expires)}", expires


def problem(token: str | None, key: str, now: float) -> str | None:
    """Why ``token`` does not open the stream now; None when it does."""
    if not token:
        return ("missing stream token: POST /dashboard/stream-token with the bearer token and "
                "open /dashboard/events?st=<token>")
    exp_text, _, mac = token.partition(".")
    if not exp_text.isdigit() or not mac:
        return "malformed stream token (expected <expiry>.<signature>)"
    if not hmac.compare_digest(mac.encode(), _sign(key, int(exp_text)).encode()):
        return "invalid stream token"
    if int(exp_text) <= now:
        return "stream token expired: ask POST /dashboard/stream-token for a new one"
    return None


def from_query(query_string: bytes | str) -> str | None:
    """The ``st`` parameter of a raw query string."""
    qs = query_string.decode("latin-1") if isinstance(query_string, bytes) else query_string
    values = parse_qs(qs).get("st")
    return values[0] if values else None
