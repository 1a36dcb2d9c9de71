"""API config (``spec.settings.api``): request limits enforced before authentication and
whether reads need the bearer token too (required to listen on a non-loopback host)."""

from __future__ import annotations

from pydantic import Field

from autonomous.resources.base import Strict

__all__ = ["SECTIONS", "ApiSettings"]


class ApiSettings(Strict):
    max_body_bytes: int = Field(ge=1, le=1 << 30, description="Largest request body accepted; "
                                "a larger declared Content-Length is 413 unread")
    body_timeout_seconds: float = Field(gt=0, le=3600, description="The whole body must arrive "
                                        "within this many seconds, else 408")
    authenticated_reads: bool = Field(description="Every request (GET too) needs the bearer "
                                      "token, except public_paths; required to listen on a "
                                      "non-loopback host")
    public_paths: list[str] = Field(description="Path prefixes answered without a token when "
                                    "authenticated_reads is on (probes)")


SECTIONS = {"api": ApiSettings}
