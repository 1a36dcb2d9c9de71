"""The one event bus: in-process, asyncio, topic based.

Publishers never block: each subscriber has its own queue. Subscribers receive
:class:`Event` values whose ``topic`` matches their prefix (``"service."`` gets
``"service.exited"``). Thread-safe publishing through ``publish_threadsafe``.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Event", "EventBus", "Subscription"]

_MAX_ROUTES = 4096  # distinct topics remembered (topics are a small fixed set; a bound anyway)


@dataclass(frozen=True)
class Event:
    topic: str
    data: dict[str, Any] = field(default_factory=dict)


class Subscription:
    def __init__(self, bus: EventBus, prefixes: tuple[str, ...], maxsize: int) -> None:
        self._bus = bus
        self.prefixes = prefixes
        self.queue: asyncio.Queue[Event] = asyncio.Queue(maxsize=maxsize)
        self.dropped = 0

    def matches(self, topic: str) -> bool:
        return any(topic.startswith(p) for p in self.prefixes)

    async def get(self) -> Event:
        return await self.queue.get()

    def get_nowait(self) -> Event | None:
        try:
            return self.queue.get_nowait()
        except asyncio.QueueEmpty:
            return None

    def close(self) -> None:
        self._bus._subs.discard(self)
        self._bus._routes.clear()


class EventBus:
    def __init__(self) -> None:
        self._subs: set[Subscription] = set()
        # topic -> the subscriptions it matches (a probe publishes the same few topics every
        # second: the prefixes are matched once per topic, not once per event and subscriber);
        # cleared whenever a subscription comes or goes
        self._routes: dict[str, tuple[Subscription, ...]] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self.published = 0

    def subscribe(self, *prefixes: str, maxsize: int = 10_000) -> Subscription:
        try:
            self._loop = asyncio.get_running_loop()
        except RuntimeError:
            pass
        sub = Subscription(self, prefixes or ("",), maxsize)
        self._subs.add(sub)
        self._routes.clear()
        return sub

    def publish(self, topic: str, **data: Any) -> None:
        event = Event(topic, data)
        self.published += 1
        subs = self._routes.get(topic)
        if subs is None:
            if len(self._routes) >= _MAX_ROUTES:
                self._routes.clear()
            subs = self._routes[topic] = tuple(s for s in self._subs if s.matches(topic))
        for sub in subs:
            try:
                sub.queue.put_nowait(event)
            except asyncio.QueueFull:
                sub.dropped += 1

    def publish_threadsafe(self, topic: str, **data: Any) -> None:
        if self._loop is None:
            self.publish(topic, **data)
        else:
            self._loop.call_soon_threadsafe(lambda: self.publish(topic, **data))
