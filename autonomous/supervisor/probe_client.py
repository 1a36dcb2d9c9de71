"""The probe client: a lean keep-alive HTTP/1.1 GET client for the operator's periodic calls.

Periodic probes (every service, every ``health.period_seconds``), the health monitor's
``/metrics`` scrapes and dependency checks and the healer's health checks are the operator's
most frequent outside calls, and a full ``httpx`` request (URL model, cookie extraction, anyio
streams) costs several times the probe itself. ``ProbeClient.get(url, timeout=...)`` speaks
just what a probe needs — ``GET``, one idle keep-alive connection per ``host:port``,
``Content-Length`` / chunked / read-to-close bodies — and raises the ``httpx`` exceptions
``http_probe`` already handles (``httpx.TimeoutException`` subclasses on a timeout,
``httpx.HTTPError`` subclasses otherwise), so callers do not change.

A probe that must be traced — made inside a trace, or picked by ``root_ratio`` (the
configured ``tracing.probe_sample_ratio``) — goes through the traced ``httpx`` client instead,
so sampled probes still join traces with a ``traceparent``. Non-``http`` URLs also go there.
The fallback ``httpx`` client is built on first use (its TLS set-up costs tens of milliseconds
of CPU at start-up, and plain-HTTP probes never need it).
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httpx

__all__ = ["ProbeClient", "ProbeResponse"]

_MAX_HEAD = 64 * 1024
_MAX_BODY = 1024 * 1024
_MAX_URLS = 256  # parsed URLs kept (a few per supervised service)
_Conn = tuple[asyncio.StreamReader, asyncio.StreamWriter]


@dataclass(frozen=True)
class ProbeResponse:
    """What a probe reads from an answer."""

    status_code: int
    headers: dict[str, str]
    content: bytes

    @property
    def text(self) -> str:
        return self.content.decode("utf-8", errors="replace")


class ProbeClient:
    """GET-only client with one idle connection kept per ``host:port``."""

    def __init__(self, fallback: Callable[[], httpx.AsyncClient] | None = None,
                 tracing: Any = None, *, root_ratio: float = 0.0,
                 rng: random.Random | None = None) -> None:
        """``fallback`` builds the ``httpx`` client used for traced and non-``http`` requests
        (default: a plain ``httpx.AsyncClient`` that ignores proxy variables)."""
        self._make_fallback = fallback or (lambda: httpx.AsyncClient(trust_env=False))
        self._fallback: httpx.AsyncClient | None = None
        self.tracing = tracing
        self.root_ratio = root_ratio
        self._rng = rng or random.Random()
        self._idle: dict[tuple[str, int], _Conn] = {}
        # url -> ((host, port), request head), or None for a URL the fallback serves: the same
        # few URLs are probed every period, parsed and encoded once
        self._urls: dict[str, tuple[tuple[str, int], bytes] | None] = {}
        self.lean_requests = 0

    @property
    def fallback(self) -> httpx.AsyncClient:
        if self._fallback is None:
            self._fallback = self._make_fallback()
        return self._fallback

    def _traced(self) -> bool:
        if self.tracing is None:
            return False
        from autonomous.telemetry.tracing_system import current_span

        if current_span() is not None or self.root_ratio >= 1:
            return True
        return self.root_ratio > 0 and self._rng.random() < self.root_ratio

    async def get(self, url: str, *, timeout: float) -> Any:
        """GET ``url`` within ``timeout`` seconds (connect, send and read together)."""
        lean = self._urls[url] if url in self._urls else self._parse(url)
        if lean is None or self._traced():
            return await self.fallback.get(url, timeout=timeout)
        key, head = lean
        host, port = key
        try:
            async with asyncio.timeout(timeout):
                resp = await self._request(key, head)
        except TimeoutError:
            raise httpx.ReadTimeout(f"no answer from {host}:{port} within {timeout:g}s") \
                from None
        self.lean_requests += 1
        return resp

    def _parse(self, url: str) -> tuple[tuple[str, int], bytes] | None:
        parts = urlsplit(url)
        lean: tuple[tuple[str, int], bytes] | None = None
        if parts.scheme == "http" and parts.hostname:
            host, port = parts.hostname, parts.port or 80
            target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
            lean = ((host, port), (f"GET {target} HTTP/1.1\r\nHost: {host}:{port}\r\n"
                                   "User-Agent: atlas-probe\r\nAccept: */*\r\n\r\n"
                                   ).encode("latin-1"))
        if len(self._urls) >= _MAX_URLS:
            self._urls.clear()
        self._urls[url] = lean
        return lean

    async def _request(self, key: tuple[str, int], head: bytes) -> ProbeResponse:
        conn = self._idle.pop(key, None)
        if conn is not None:
            try:  # a kept connection the server may have closed meanwhile: one retry
                return await self._exchange(key, conn, head)
            except (OSError, asyncio.IncompleteReadError, httpx.RemoteProtocolError):
                pass
        try:
            conn = await asyncio.open_connection(*key)
        except OSError as exc:
            raise httpx.ConnectError(f"{key[0]}:{key[1]}: {exc.strerror or exc}") from None
        try:
            return await self._exchange(key, conn, head)
        except (OSError, asyncio.IncompleteReadError) as exc:
            raise httpx.ReadError(f"{key[0]}:{key[1]}: connection lost: {exc}") from None

    async def _exchange(self, key: tuple[str, int], conn: _Conn, head: bytes) -> ProbeResponse:
        reader, writer = conn
        keep = False
        try:
            writer.write(head)
            await writer.drain()
            code, headers = _parse_head(await reader.readuntil(b"\r\n\r\n"))
            body = await _read_body(reader, headers)
            keep = "close" not in headers.get("connection", "").lower() and \
                ("content-length" in headers or "chunked" in headers.get("transfer-encoding", ""))
            return ProbeResponse(code, headers, body)
        except (asyncio.LimitOverrunError, ValueError) as exc:
            raise httpx.RemoteProtocolError(f"unreadable probe response: {exc}") from None
        finally:
            if keep and key not in self._idle:
                self._idle[key] = conn
            else:
                writer.close()

    async def aclose(self) -> None:
        """Close the kept connections and the fallback client."""
        idle, self._idle = self._idle, {}
        for _, writer in idle.values():
            writer.close()
        fallback, self._fallback = self._fallback, None
        if fallback is not None:
            await fallback.aclose()


def _parse_head(raw: bytes) -> tuple[int, dict[str, str]]:
    lines = raw.decode("latin-1").split("\r\n")
    status = lines[0].split(" ", 2)
    if len(status) < 2 or not status[0].startswith("HTTP/1.") or not status[1].isdigit():
        raise httpx.RemoteProtocolError(f"malformed status line {lines[0][:80]!r}")
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if sep:
            headers[name.strip().lower()] = value.strip()
    return int(status[1]), headers


async def _read_body(reader: asyncio.StreamReader, headers: dict[str, str]) -> bytes:
    if "chunked" in headers.get("transfer-encoding", "").lower():
        out = bytearray()
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";")[0].strip() or b"0", 16)
            if size == 0:
                await reader.readuntil(b"\r\n")  # trailers are not used by probes
                return bytes(out)
            if len(out) + size > _MAX_BODY:
                raise httpx.RemoteProtocolError("probe response body too large")
            out += await reader.readexactly(size + 2)
            del out[-2:]
    if "content-length" in headers:
        n = int(headers["content-length"])
        if n > _MAX_BODY:
            raise httpx.RemoteProtocolError("probe response body too large")
        return await reader.readexactly(n)
    return await reader.read(_MAX_BODY)  # no length: the body ends with the connection
