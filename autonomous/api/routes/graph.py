"""Knowledge-graph queries: nodes by type and time, neighbours, causal chains, subgraphs."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from fastapi import APIRouter, Query

from autonomous.api.schemas import parse_time, time_query
from autonomous.api.deps import Ctx
from autonomous.core.errors import NotFound, Problem, ValidationFailed

__all__ = ["router"]

router = APIRouter(prefix="/api/graph", tags=["knowledge-graph"])


def _ts(value: str | None, name: str) -> float | None:
    if value is None:
        return None
    try:
        return parse_time(value, name)
    except ValueError as exc:
        raise ValidationFailed([Problem("query", 0, name, str(exc))]) from None


@router.get("/nodes")
def nodes(ctx: Ctx, type: str | None = Query(None), since: str | None = time_query(),
          until: str | None = time_query(), q: str | None = None,
          limit: int = Query(100, ge=1, le=5000)) -> dict[str, Any]:
    """Nodes filtered by type, time range and label text, newest first."""
    return {"nodes": ctx.graph.find(type_=type, since=_ts(since, "since"),
                                    until=_ts(until, "until"), label_contains=q, limit=limit),
            "stats": ctx.graph.stats()}


T = TypeVar("T")


def _node(node_id: str, fn: Callable[[str], T]) -> T:
    try:
        return fn(node_id)
    except KeyError:
        raise NotFound(f"graph node {node_id!r} does not exist; find ids at "
                       "GET /api/graph/nodes") from None


@router.get("/nodes/{node_id}")
def node(node_id: str, ctx: Ctx) -> dict[str, Any]:
    """One node with its neighbours."""
    item = _node(node_id, ctx.graph.node)
    item["neighbours"] = ctx.graph.neighbours(node_id)
    return item


@router.get("/why/{node_id}")
def why(node_id: str, ctx: Ctx) -> dict[str, Any]:
    """The causal chain (observation → decision → action → outcome) ending at a node."""
    return {"chain": _node(node_id, ctx.graph.why)}


@router.get("/related/{node_id}")
def related(node_id: str, ctx: Ctx, depth: int = Query(1, ge=1, le=4)) -> dict[str, Any]:
    """The neighbourhood of a node up to ``depth`` hops."""
    return _node(node_id, lambda n: ctx.graph.related(n, depth))
