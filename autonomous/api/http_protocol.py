"""uvicorn's httptools protocol with one ``send()`` per response instead of two.

uvicorn writes a response's status line and headers (``http.response.start``) and then its
body (``http.response.body``) as two ``transport.write`` calls; on an idle socket each one is
a ``send()`` syscall. Under 3x overload most answers are admission's 429s, and py-spy on the
operator's loop (``bench/load_with_faults.py --quick --loop-lag``) put ~20 % of the loop in
``_SelectorSocketTransport.write`` — two thirds of it from ``send_429``. Here the header
block is held (only that: a write that starts with ``HTTP/1.1 `` and ends the header block,
1xx interim answers excepted) and goes out in one write with whatever follows it in the same
loop step — the body, in every non-streaming response. Nothing waits for it: a response
whose body does not follow at once (HEAD, a stream's first chunk later) gets its headers
flushed on the loop's next iteration (``call_soon``), as does ``close()`` which flushes first.
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

__all__ = ["CoalescingHttpToolsProtocol", "CoalescingTransport"]


class CoalescingTransport:
    """Wraps the connection's transport for the protocol: holds a header block until the
    next write (or the next loop iteration); every other attribute is the transport's."""

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self._t = transport
        self._loop = loop
        self._held: bytes | None = None

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if self._held is not None:
            held, self._held = self._held, None
            self._t.write(held + bytes(data))
            return
        if (isinstance(data, bytes) and data.startswith(b"HTTP/1.1 ")
                and not data.startswith(b"HTTP/1.1 1") and data.endswith(b"\r\n\r\n")):
            self._held = data
            self._loop.call_soon(self.flush)
            return
        self._t.write(data)

    def flush(self) -> None:
        if self._held is not None:
            held, self._held = self._held, None
            if not self._t.is_closing():
                self._t.write(held)

    def close(self) -> None:
        self.flush()
        self._t.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._t, name)


class CoalescingHttpToolsProtocol(HttpToolsProtocol):
    """``uvicorn.Config(http=CoalescingHttpToolsProtocol)``."""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(
            CoalescingTransport(transport, asyncio.get_running_loop()))  # type: ignore[arg-type]
