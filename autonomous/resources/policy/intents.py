"""Intent policy: how long a one-shot intent waits for its owner, how long settled ones stay."""

from __future__ import annotations

from pydantic import Field

from autonomous.resources.base import Strict

__all__ = ["SECTIONS", "IntentPolicy"]


class IntentPolicy(Strict):
    request_ttl_seconds: float = Field(gt=0, description="A one-shot intent (restart_requested) "
                                       "not acted on by its owner within this is expired")
    keep_days: float = Field(gt=0, description="Settled intents (consumed, released, expired) "
                             "are deleted this long after they settled")
    prune_interval_seconds: float = Field(gt=0, description="How often the owner prunes them")
    request_wait_seconds: float = Field(gt=0, description="How long an API call that records "
                                        "an intent (survival enter/exit) waits for its owner "
                                        "to settle it before answering 202")


SECTIONS = {"intents": IntentPolicy}
