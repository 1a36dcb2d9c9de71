"""One host of a fleet: a name (the ``host`` label everywhere) and its operator's address."""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = ["FleetHost", "parse_host"]

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")
_TARGET = re.compile(r"^[A-Za-z0-9.\-\[\]:]+:\d{1,5}$")


@dataclass(frozen=True)
class FleetHost:
    name: str  # the ``host`` label: letters, digits, ``_ . -``
    target: str  # ``address:port`` of the host's operator API (its ``/metrics``)
    receiver_url: str | None = None  # webhook URL for this host's team; None: the default


def parse_host(text: str) -> FleetHost:
    """``NAME=ADDRESS:PORT[,WEBHOOK_URL]`` → FleetHost, or ValueError saying what to fix."""
    name, sep, rest = text.partition("=")
    if not sep:
        raise ValueError(f"host {text!r}: expected NAME=ADDRESS:PORT[,WEBHOOK_URL]")
    target, _, url = rest.partition(",")
    if not _NAME.match(name):
        raise ValueError(f"host {text!r}: name {name!r} must be 1-63 letters, digits, '_.-'")
    if not _TARGET.match(target) or not 0 < int(target.rsplit(":", 1)[1]) < 65536:
        raise ValueError(f"host {text!r}: target {target!r} must be ADDRESS:PORT")
    if url and not url.startswith(("http://", "https://")):
        raise ValueError(f"host {text!r}: webhook URL {url!r} must start with http(s)://")
    return FleetHost(name, target, url or None)
