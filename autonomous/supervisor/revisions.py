"""Service revisions: every spec a service ran, which ones proved healthy, which are blocked.

A revision is identified by the hash of the fields whose change restarts the service
(command, cwd, env, host, port, version). ROLLBACK blocks the current revision and runs the
newest known-good one; the block sticks until the desired spec changes again (a new hash) or a
human clears it.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from autonomous.core.clock import Clock
from autonomous.resources.kinds.service import ServiceSpec
from autonomous.store import Store

__all__ = ["RESTART_FIELDS", "Revisions", "spec_hash"]

RESTART_FIELDS = ("command", "cwd", "env", "host", "port", "version")


def spec_hash(spec: ServiceSpec) -> str:
    data = spec.model_dump(mode="json", include=set(RESTART_FIELDS))
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:16]


class Revisions:
    def __init__(self, store: Store, clock: Clock) -> None:
        self.store = store
        self.clock = clock
        self._recorded: set[tuple[str, str]] = set()  # written already: no INSERT per pass
        # marked good already (known_good is never unset): no UPDATE per probe
        self._good: set[tuple[str, str]] = set()

    def record(self, service: str, spec: ServiceSpec, generation: int) -> str:
        h = spec_hash(spec)
        if (service, h) in self._recorded:
            return h
        self._recorded.add((service, h))
        self.store.execute(
            "INSERT OR IGNORE INTO service_revisions(service, spec_hash, generation, spec, "
            "first_seen) VALUES (?, ?, ?, ?, ?)",
            (service, h, generation, spec.model_dump_json(), self.clock.now()))
        return h

    def mark_good(self, service: str, h: str) -> None:
        """Mark revision ``h`` of ``service`` known good (called on every healthy probe once
        health is proven; written once)."""
        if (service, h) in self._good:
            return
        self._good.add((service, h))
        self.store.execute("UPDATE service_revisions SET known_good=1 WHERE service=? AND "
                           "spec_hash=? AND known_good=0", (service, h))

    def block(self, service: str, h: str) -> None:
        self.store.execute("UPDATE service_revisions SET blocked=1 WHERE service=? AND "
                           "spec_hash=?", (service, h))

    def clear_block(self, service: str) -> int:
        return self.store.execute("UPDATE service_revisions SET blocked=0 WHERE service=? AND "
                                  "blocked=1", (service,)).rowcount

    def is_blocked(self, service: str, h: str) -> bool:
        row = self.store.query_one("SELECT blocked FROM service_revisions WHERE service=? AND "
                                   "spec_hash=?", (service, h))
        return bool(row and row["blocked"])

    def is_good(self, service: str, h: str) -> bool:
        row = self.store.query_one("SELECT known_good FROM service_revisions WHERE service=? "
                                   "AND spec_hash=?", (service, h))
        return bool(row and row["known_good"])

    def spec_of(self, service: str, h: str) -> ServiceSpec | None:
        """The spec of one recorded revision (None when it was never recorded)."""
        row = self.store.query_one("SELECT spec FROM service_revisions WHERE service=? AND "
                                   "spec_hash=?", (service, h))
        return ServiceSpec.model_validate_json(row["spec"]) if row else None

    def last_good(self, service: str, exclude: str | None = None) -> tuple[str, ServiceSpec] | None:
        row = self.store.query_one(
            "SELECT spec_hash, spec FROM service_revisions WHERE service=? AND known_good=1 AND "
            "blocked=0 AND spec_hash != ? ORDER BY first_seen DESC LIMIT 1",
            (service, exclude or ""))
        if row is None:
            return None
        return row["spec_hash"], ServiceSpec.model_validate_json(row["spec"])

    def list(self, service: str) -> list[dict[str, Any]]:
        rows = self.store.query("SELECT spec_hash, generation, first_seen, known_good, blocked "
                                "FROM service_revisions WHERE service=? ORDER BY first_seen DESC",
                                (service,))
        return [dict(r) for r in rows]
