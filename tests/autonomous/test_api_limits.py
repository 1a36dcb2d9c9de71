"""Request limits on a real operator, over a raw socket: 401 before the body is read, 413 for
a declared body over the limit, 408 for a body that never arrives; and the socket sets
TCP_NODELAY (no delayed-ACK wait on a reused connection)."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest

from tests.conftest import TOKEN, free_port, make_tree, service_yaml

pytestmark = pytest.mark.e2e


@pytest.fixture
def op(tmp_path: Path, operator_factory):
    root = make_tree(tmp_path / "root", {"alpha": service_yaml("alpha", free_port())})
    cfg = root / "config" / "autonomous.yaml"
    text = cfg.read_text()
    assert "body_timeout_seconds: 10" in text
    cfg.write_text(text.replace("body_timeout_seconds: 10", "body_timeout_seconds: 1"))
    return operator_factory(root).start()


def exchange(port: int, head: str, body: bytes = b"", wait: float = 10.0) -> tuple[int, dict]:
    """Send ``head`` and ``body`` (not necessarily all the declared body) and read the reply;
    a server that waits for more body makes ``recv`` time out and the test fail."""
    with socket.create_connection(("127.0.0.1", port), timeout=wait) as s:
        s.sendall(head.encode() + b"\r\n" + body)
        data = b""
        while b"\r\n\r\n" not in data or len(data.split(b"\r\n\r\n", 1)[1]) < _length(data):
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    status = int(data.split(b" ", 2)[1])
    return status, json.loads(data.split(b"\r\n\r\n", 1)[1] or b"{}")


def _length(data: bytes) -> int:
    for line in data.split(b"\r\n\r\n", 1)[0].split(b"\r\n")[1:]:
        k, _, v = line.partition(b":")
        if k.strip().lower() == b"content-length":
            return int(v)
    return 0


def head(method: str, path: str, length: int, token: bool) -> str:
    auth = f"Authorization: Bearer {TOKEN}\r\n" if token else ""
    return (f"{method} {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            f"Content-Length: {length}\r\n{auth}")


def test_unauthenticated_gigabyte_body_is_401_unread(op):
    status, body = exchange(op.port, head("PUT", "/api/governance/mode", 1 << 30, False),
                            b'{"mode": ')
    assert status == 401 and "bearer token" in body["detail"]


def test_declared_body_over_the_limit_is_413_unread(op):
    status, body = exchange(op.port, head("PUT", "/api/governance/mode", 1 << 30, True),
                            b'{"mode": ')
    assert status == 413 and "max_body_bytes" in body["detail"]


def test_body_that_never_arrives_times_out_with_408(op):
    status, body = exchange(op.port, head("PUT", "/api/governance/mode", 100, True),
                            b'{"mode": ')
    assert status == 408 and "body_timeout_seconds" in body["detail"]
    # a complete, small body still works
    payload = b'{"mode": "governed"}'
    status, body = exchange(op.port, head("PUT", "/api/governance/mode", len(payload), True),
                            payload)
    assert status == 200, body


def test_listening_socket_sets_tcp_nodelay(tmp_path):
    """asyncio sets TCP_NODELAY only on sockets whose ``proto`` is IPPROTO_TCP."""
    from controllers.operator import Operator

    root = make_tree(tmp_path / "root", {"alpha": service_yaml("alpha", free_port())})
    sock = Operator(root, data_dir=tmp_path / "data", port=0).bind()
    try:
        assert sock.proto == socket.IPPROTO_TCP
    finally:
        sock.close()


def test_non_loopback_host_is_refused_unless_reads_are_authenticated(tmp_path):
    import subprocess
    import sys

    root = make_tree(tmp_path / "root", {"alpha": service_yaml("alpha", free_port())})
    r = subprocess.run([sys.executable, "-m", "controllers.cli", "run", "--root", str(root),
                        "--data-dir", str(tmp_path / "data"), "--host", "0.0.0.0", "--port",
                        str(free_port())], capture_output=True, text=True, timeout=60)
    assert r.returncode == 1
    assert "refusing to listen on 0.0.0.0" in r.stderr
    assert "authenticated_reads: true" in r.stderr


def test_authenticated_reads_need_the_token_for_every_get(tmp_path, operator_factory):
    root = make_tree(tmp_path / "root", {"alpha": service_yaml("alpha", free_port())})
    cfg = root / "config" / "autonomous.yaml"
    cfg.write_text(cfg.read_text().replace("authenticated_reads: false",
                                           "authenticated_reads: true"))
    from controllers.operator import Operator

    Operator(root, data_dir=tmp_path / "d0", host="0.0.0.0")  # allowed now
    op = operator_factory(root).start()  # /healthz answers without a token (public_paths)
    with op.client(token=False) as c:
        r = c.get("/api/reconcile/status")
        assert r.status_code == 401 and "bearer token" in r.json()["detail"]
        assert c.get("/openapi.json").status_code == 401
    with op.client() as c:
        assert c.get("/api/reconcile/status").status_code == 200
