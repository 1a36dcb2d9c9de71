"""``controllers.mount.mount`` into a fresh FastAPI app with its own route and lifespan, served
by a real uvicorn in a thread: both the host's and the operator's parts work, shutdown stops
the supervised service."""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import uvicorn
from fastapi import FastAPI

from autonomous.testing import free_port
from controllers.mount import mount
from tests.conftest import make_tree, service_yaml


def _wait(predicate: Callable[[], Any], what: str, timeout: float = 20.0) -> Any:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = predicate()
            if last:
                return last
        except (httpx.HTTPError, KeyError, TypeError):
            pass
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}; last={last!r}")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie still answers kill(0): look at its state
    with contextlib.suppress(OSError):
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        return state != "Z"
    return True


def test_mount_keeps_host_routes_and_lifespan(tmp_path: Path) -> None:
    svc_port, api_port = free_port(), free_port()
    root = make_tree(tmp_path / "tree", {"alpha": service_yaml("alpha", svc_port)})
    events: list[str] = []

    @contextlib.asynccontextmanager
    async def host_lifespan(app: FastAPI) -> AsyncIterator[None]:
        events.append("host-start")
        yield
        events.append("host-stop")

    app = FastAPI(lifespan=host_lifespan)

    @app.get("/push/ping")
    def ping() -> dict[str, str]:
        return {"push": "pong"}

    op = mount(app, root, data_dir=tmp_path / "data")
    assert op.ctx is not None
    token = op.ctx.token
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=api_port,
                                           log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, name="uvicorn", daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{api_port}"
    pid = None
    try:
        with httpx.Client(base_url=url, timeout=10, trust_env=False) as c:
            _wait(lambda: c.get("/push/ping").status_code == 200, "host route")
            assert c.get("/push/ping").json() == {"push": "pong"}
            assert events == ["host-start"]

            def alpha() -> dict[str, Any]:
                data = c.get("/api/reconcile/status").json()
                res = {r["name"]: r for r in data["controllers"]["services"]["resources"]}
                return res["alpha"] if res["alpha"]["health"] == "Healthy" else {}

            pid = _wait(alpha, "alpha Healthy through the mounted API")["details"]["pid"]
            assert isinstance(pid, int) and _alive(pid)
            # the middlewares are mounted: a mutating route needs the token, traces answer
            denied = c.post("/api/reconcile/services/trigger")
            assert denied.status_code == 401
            assert denied.headers.get("www-authenticate") == "Bearer"
            ok = c.post("/api/reconcile/services/trigger",
                        headers={"Authorization": f"Bearer {token}"})
            assert ok.status_code == 200 and ok.json()["triggered"] is True
            traced = c.get("/push/ping", headers={
                "traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"})
            assert "0af7651916cd43dd8448eb211c80319c" in traced.headers.get("traceparent", "")
    finally:
        server.should_exit = True
        thread.join(timeout=30)
    assert not thread.is_alive()
    assert events == ["host-start", "host-stop"]
    assert pid is not None
    _wait(lambda: not _alive(pid), "the supervised service stopped with the app", timeout=10)
