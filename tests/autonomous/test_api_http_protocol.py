"""The operator's uvicorn protocol: a response's headers and body leave in one write, and
every kind of response (plain, HEAD, streamed, 429, keep-alive) still arrives whole."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import uvicorn
from fastapi import FastAPI
from fastapi.responses import JSONResponse, StreamingResponse

from autonomous.api.http_protocol import CoalescingHttpToolsProtocol, CoalescingTransport
from autonomous.testing import free_port


class _Recorder:
    def __init__(self) -> None:
        self.writes: list[bytes] = []
        self.closed = False

    def write(self, data: bytes) -> None:
        self.writes.append(bytes(data))

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        self.closed = True

    def get_extra_info(self, name: str) -> Any:
        return ("127.0.0.1", 1) if name in ("peername", "sockname") else None


HEAD = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n"


def test_headers_and_body_go_out_in_one_write() -> None:
    async def main() -> list[bytes]:
        rec = _Recorder()
        t = CoalescingTransport(rec, asyncio.get_running_loop())  # type: ignore[arg-type]
        t.write(HEAD)
        assert rec.writes == []  # held until the body
        t.write(b"ok")
        await asyncio.sleep(0)  # the scheduled flush finds nothing held
        return rec.writes

    assert asyncio.run(main()) == [HEAD + b"ok"]


def test_headers_without_a_following_write_leave_on_the_next_iteration() -> None:
    async def main() -> tuple[list[bytes], list[bytes]]:
        rec = _Recorder()
        t = CoalescingTransport(rec, asyncio.get_running_loop())  # type: ignore[arg-type]
        t.write(HEAD)
        before = list(rec.writes)
        await asyncio.sleep(0)
        return before, rec.writes

    assert asyncio.run(main()) == ([], [HEAD])


def test_close_flushes_and_interim_answers_are_not_held() -> None:
    async def main() -> tuple[list[bytes], bool]:
        rec = _Recorder()
        t = CoalescingTransport(rec, asyncio.get_running_loop())  # type: ignore[arg-type]
        t.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        t.write(HEAD)
        t.close()
        return rec.writes, rec.closed

    assert asyncio.run(main()) == ([b"HTTP/1.1 100 Continue\r\n\r\n", HEAD], True)


def _app() -> FastAPI:
    app = FastAPI()

    @app.get("/plain")
    async def plain() -> dict[str, Any]:
        return {"x": "y" * 5000}

    @app.get("/shed")
    async def shed() -> JSONResponse:
        return JSONResponse({"detail": "busy"}, status_code=429, headers={"retry-after": "1"})

    @app.get("/stream")
    async def stream() -> StreamingResponse:
        async def parts() -> AsyncIterator[bytes]:
            for i in range(3):
                await asyncio.sleep(0.01)
                yield f"part{i};".encode()
        return StreamingResponse(parts())

    @app.head("/plain")
    async def head() -> JSONResponse:
        return JSONResponse({"x": 1})

    return app


@pytest.fixture()
def server() -> Any:
    port = free_port()
    config = uvicorn.Config(_app(), host="127.0.0.1", port=port, log_level="warning",
                            lifespan="off", http=CoalescingHttpToolsProtocol)
    srv = uvicorn.Server(config)

    async def run() -> None:
        task = asyncio.create_task(srv.serve())
        try:
            while not srv.started:
                await asyncio.sleep(0.01)
            yield_box.set_result(f"http://127.0.0.1:{port}")
            await stop.wait()
        finally:
            srv.should_exit = True
            await task

    yield_box: asyncio.Future[str]
    stop: asyncio.Event
    loop = asyncio.new_event_loop()

    async def setup() -> None:
        nonlocal yield_box, stop
        yield_box, stop = loop.create_future(), asyncio.Event()

    loop.run_until_complete(setup())
    runner = loop.create_task(run())
    base = loop.run_until_complete(yield_box)
    try:
        yield loop, base
    finally:
        stop.set()
        loop.run_until_complete(runner)
        loop.close()


def test_every_kind_of_response_arrives_whole_over_one_kept_alive_connection(server) -> None:
    loop, base = server

    async def main() -> None:
        async with httpx.AsyncClient(base_url=base, trust_env=False) as c:
            for _ in range(3):  # one connection, answers one after another
                r = await c.get("/plain")
                assert r.status_code == 200 and r.json() == {"x": "y" * 5000}
                r = await c.get("/shed")
                assert r.status_code == 429 and r.headers["retry-after"] == "1"
                assert r.json() == {"detail": "busy"}
                r = await c.head("/plain")
                assert r.status_code == 200 and r.content == b""
                r = await c.get("/stream")
                assert r.status_code == 200 and r.text == "part0;part1;part2;"

    loop.run_until_complete(main())

