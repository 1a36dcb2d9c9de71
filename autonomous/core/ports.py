"""The one way to pick a TCP port for a process the operator starts: ask the kernel for a free
ephemeral port on the interface it will bind (loopback by default), skipping ports already
handed out that the kernel cannot know about yet."""

from __future__ import annotations

import socket
from collections.abc import Collection

__all__ = ["free_port", "port_free"]


def free_port(host: str = "127.0.0.1", taken: Collection[int] = ()) -> int:
    """A port ``host`` can bind now and that is not in ``taken``."""
    while True:
        with socket.socket() as s:
            s.bind((host, 0))
            port = int(s.getsockname()[1])
        if port not in taken:
            return port


def port_free(host: str, port: int) -> bool:
    """Whether ``host:port`` can be bound now."""
    with socket.socket() as s:
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True
