"""Dependency order of services: the one ``topo_order`` (services controller and healing's
restart-all strategy both use it)."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Protocol

__all__ = ["topo_order"]


class HasDependencies(Protocol):
    @property
    def depends_on(self) -> Collection[str]: ...


def topo_order(specs: Mapping[str, HasDependencies]) -> list[str]:
    """Services in dependency order (dependencies first), ties by name. Validation rejects
    cycles; a cycle or an unknown dependency here is skipped, not an error."""
    done: list[str] = []

    def visit(n: str, seen: tuple[str, ...]) -> None:
        if n in done or n in seen or n not in specs:
            return
        for d in sorted(specs[n].depends_on):
            visit(d, seen + (n,))
        done.append(n)

    for n in sorted(specs):
        visit(n, ())
    return done
