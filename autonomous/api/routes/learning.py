"""Learning routes: proposals (list, show with diff and evidence, approve, reject, revert),
feedback, insights, optimizations, patterns, the knowledge graph (bounded, JSON or SVG), the
Neural Router's ``route`` and the learned knowledge export. Mutating routes need the token."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any, Literal

from fastapi import APIRouter, Path, Query
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field, model_validator

from autonomous.api.deps import Actor, Ctx, subsystem

if TYPE_CHECKING:
    from autonomous.context import OperatorContext
    from autonomous.learning.facade import LearningFacade

__all__ = ["FeedbackBody", "RouteBody", "router"]

router = APIRouter(prefix="/api/learning", tags=["learning"])

State = Literal["proposed", "evaluated", "awaiting_approval", "approved", "rejected", "baking",
                "kept", "reverted"]
ProposalId = Annotated[str, Path(pattern=r"^prop-[0-9a-f]{10}$",
                                 description="Proposal id (prop-…)")]
_NAME = r"^[A-Za-z0-9_.\-/]+$"


class ProposalOut(BaseModel):
    id: str
    source: str
    title: str
    key: str = Field(description="The parameter changed: file#key.path")
    file: str
    path: list[str | int]
    old: Any = Field(description="Value the patch was computed against (in force then)")
    new: Any
    inverse: dict[str, Any] = Field(description="The revert: the same scalar, new → old")
    low: float | None
    high: float | None
    state: State
    generation: int | None = Field(description="Generation computed against; once applied, "
                                   "the generation the change made")
    cycle: int
    evidence: dict[str, Any]
    evaluation: dict[str, Any] = Field(description="Offline evaluation beside the value in force")
    guard: dict[str, Any]
    approval_id: str | None
    applied_at: str | None
    bake_until: str | None
    apply_commit: str | None
    revert_commit: str | None
    closed_cycle: int | None
    reason: str
    created_at: str | None
    updated_at: str | None


class ProposalEvent(BaseModel):
    ts: str | None
    from_: str | None = Field(alias="from")
    to: str
    actor: str
    reason: str


class ProposalDetail(ProposalOut):
    diff: str = Field(description="Unified diff of the one scalar the proposal changes")
    events: list[ProposalEvent]


class DecideBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reason: str | None = Field(None, max_length=500, description="Why (kept in the history)")


class FeedbackBody(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"anyOf": [
        {"required": [k], "properties": {k: {"not": {"type": "null"}}}}
        for k in ("area", "alert_id", "decision_id")]})
    area: str | None = Field(None, min_length=3, max_length=200, pattern=r"^[a-z_]+:[^\s]+$",
                             description="<kind>:<name>, e.g. alert:service_latency_high or "
                                         "route:mmlu/abstract_algebra:strong; required unless "
                                         "alert_id or decision_id says")
    kind: str = Field("rating", min_length=1, max_length=64, pattern=_NAME,
                      description="What was judged: alert_label, ack, rating, route_outcome…")
    bad: bool = Field(strict=True, description="True: a false positive / wrong answer / bad outcome")
    value: float | None = Field(None, allow_inf_nan=False, strict=True,
                                description="The value the rule saw when it fired (alert labels)")
    ref: str | None = Field(None, max_length=200, description="Graph node or alert id judged")
    comment: str | None = Field(None, max_length=1000)
    decision_id: str | None = Field(None, pattern=r"^route-[0-9a-f]{12}$",
                                    description="A route decision this is the outcome of")
    error: bool = Field(False, strict=True, description="With decision_id: the model did not answer "
                        "(outage, timeout); counted as an error, not a wrong answer")
    alert_id: int | None = Field(None, ge=1, le=2**31 - 1, description="An alert this labels: "
                                 "bad = false positive (area and value taken from the alert)")
    latency_ms: float | None = Field(None, ge=0, allow_inf_nan=False, strict=True)


    @model_validator(mode="after")
    def _about(self) -> FeedbackBody:
        if self.area is None and self.alert_id is None and self.decision_id is None:
            raise ValueError("area is required unless alert_id or decision_id says what the "
                             "feedback is about")
        return self


class FeedbackOut(BaseModel):
    id: int
    ts: str | None
    area: str
    kind: str
    bad: bool
    value: float | None
    ref: str | None
    graph_node: str


class RouteBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    query_class: str = Field(min_length=1, max_length=200, pattern=_NAME,
                             description="Query class (e.g. mmlu/abstract_algebra)")
    allowed: list[Annotated[str, Field(min_length=1, max_length=100)]] | None = Field(
        None, max_length=32, description="Restrict the choice to these models")


class RouteOut(BaseModel):
    decision_id: str
    query_class: str
    model: str
    propensity: float = Field(description="Probability this policy picks this model here")
    allowed: list[str]
    ts: str | None


class Finding(BaseModel):
    area: str
    bad: int
    total: int
    rate: float
    low: float
    high: float
    baseline: float
    verdict: Literal["worse", "better", "inconclusive", "insufficient"]


class ActionItem(BaseModel):
    area: str
    file: str | None
    rule: str | None
    finding: Finding
    action: str


class PatternInsight(BaseModel):
    kind: str = Field(description="seasonality, peak_hours, burst, anomaly or next_action")
    text: str
    cites: list[str] = Field(description="Series, series@time or graph entities behind it")
    evidence: dict[str, float | int | str | None]


class InsightsOut(BaseModel):
    cycle: int
    mode: str
    findings: list[Finding]
    improvement_areas: list[Finding]
    action_items: list[ActionItem]
    proposals: dict[str, int] = Field(description="Proposals per state")
    last_cycle: dict[str, Any] | None
    patterns: list[PatternInsight] = Field(description="Pattern analyzer insights, with "
                                           "the series and entities they cite")


class PatternsOut(BaseModel):
    patterns: list[dict[str, Any]] = Field(description="Per series: seasonality, peak hours, "
                                           "bursts (stated=false with a reason: too little "
                                           "history)")
    anomalies: list[dict[str, Any]]
    next_action: dict[str, Any] | None = Field(description="Next decision predicted from the "
                                               "graph's decision sequences, with held-out "
                                               "accuracy beside a most-frequent baseline")
    insights: list[PatternInsight]
    sources: dict[str, Any] = Field(description="What was read: since, buckets, samples, "
                                    "sequences, series without history")
    reason: str | None = Field(description="Why nothing is stated, when nothing is")


class TrialOut(BaseModel):
    target: str
    trial: int
    values: dict[str, float] = Field(description="Parameter values tried")
    metrics: dict[str, float] = Field(description="Metrics measured for them")
    violations: list[str] = Field(description='Constraints broken ("latency_p95_ms 130 > 120")')
    safe: bool


class OptimizationOut(BaseModel):
    proposal_id: str
    target: str = Field(description="learning_optimizer.targets entry")
    parameter: str
    key: str = Field(description="The parameter changed: file#key.path")
    file: str
    value_in_force: Any = Field(description="Value in force when proposed (the revert's value)")
    proposed: Any = Field(description="Value proposed (clamped to the step limit)")
    suggested: float | None = Field(description="The optimizer's suggestion before clamping")
    state: State
    verdict: Literal["kept", "reverted", "rejected"] | None = Field(
        description="None while the proposal is open")
    reason: str = Field(description="Why it is in this state (the bake verdict's evidence)")
    evaluation: dict[str, Any]
    trials_seen: int | None = Field(description="Trials of the target when proposed")
    trials: list[TrialOut] = Field(description="The target's retained trials (current cycle)")
    created_at: str | None
    applied_at: str | None
    apply_commit: str | None
    revert_commit: str | None


class OptimizationsOut(BaseModel):
    applied: list[ProposalOut] = Field(description="Changes applied (baking, kept, reverted)")
    pending: list[ProposalOut] = Field(description="Evaluated or awaiting approval")
    trials: list[dict[str, Any]] = Field(description="PerformanceOptimizer trials of the "
                                         "current cycle (values, measured metrics, safe)")
    history: list[OptimizationOut] = Field(description="The optimizer's proposals, newest "
                                           "first: value in force vs proposed, verdict, trials")


class RouteStatsOut(BaseModel):
    open_circuits: dict[str, str]
    classes: list[dict[str, Any]]


class GraphOut(BaseModel):
    nodes: list[dict[str, Any]]
    edges: list[dict[str, Any]]
    truncated: bool


class CycleOut(BaseModel):
    cycle: int
    mode: str
    frozen: bool
    proposed: list[str]
    reason: str | None = None


def _facade(ctx: OperatorContext) -> LearningFacade:
    return subsystem(ctx, "learning")


@router.get("/proposals", response_model=list[ProposalOut])
def list_proposals(ctx: Ctx, state: State | None = None,
                   limit: int = Query(100, ge=1, le=1000)) -> list[dict[str, Any]]:
    """Learned proposals, newest first."""
    return _facade(ctx).list_proposals(state, limit)


@router.get("/proposals/{proposal_id}", response_model=ProposalDetail)
def show_proposal(proposal_id: ProposalId, ctx: Ctx) -> dict[str, Any]:
    """One proposal with its diff, evidence, evaluation and every state change."""
    return _facade(ctx).show(proposal_id)


@router.post("/proposals/{proposal_id}/approve", response_model=ProposalDetail)
async def approve(proposal_id: ProposalId, body: DecideBody, ctx: Ctx,
                  actor: Actor) -> dict[str, Any]:
    """Approve a proposal awaiting approval; the controller applies it on its next pass."""
    return await _facade(ctx).decide("approve", proposal_id, actor, body.reason)


@router.post("/proposals/{proposal_id}/reject", response_model=ProposalDetail)
async def reject(proposal_id: ProposalId, body: DecideBody, ctx: Ctx,
                  actor: Actor) -> dict[str, Any]:
    """Reject an unapplied proposal (not proposed again for the cooldown)."""
    return await _facade(ctx).decide("reject", proposal_id, actor, body.reason)


@router.post("/proposals/{proposal_id}/revert", response_model=ProposalDetail)
async def revert(proposal_id: ProposalId, body: DecideBody, ctx: Ctx,
                  actor: Actor) -> dict[str, Any]:
    """Ask for an applied proposal to be reverted (the inverse patch, committed)."""
    return await _facade(ctx).decide("revert", proposal_id, actor, body.reason)


@router.post("/feedback", response_model=FeedbackOut)
def feedback(body: FeedbackBody, ctx: Ctx, actor: Actor) -> dict[str, Any]:
    """Record feedback (an alert label, a rating, a routed call's outcome)."""
    return _facade(ctx).record_feedback(
        area=body.area, kind=body.kind, bad=body.bad, value=body.value, ref=body.ref,
        comment=body.comment, decision_id=body.decision_id, alert_id=body.alert_id,
        latency_ms=body.latency_ms, error=body.error, actor=actor)


@router.get("/insights", response_model=InsightsOut)
def insights(ctx: Ctx) -> dict[str, Any]:
    """Feedback findings (flagged only when the interval excludes the baseline), improvement
    areas, action items mapped to policy rules, proposals per state, the last cycle."""
    return _facade(ctx).insights()


@router.get("/patterns", response_model=PatternsOut)
def patterns(ctx: Ctx) -> dict[str, Any]:
    """Usage patterns (seasonality, peaks, bursts) of request and telemetry history,
    anomalies, and the next decision from the graph's decision sequences."""
    return _facade(ctx).patterns()


@router.get("/optimizations", response_model=OptimizationsOut)
def optimizations(ctx: Ctx) -> dict[str, Any]:
    """Learned changes: applied (with their bake outcome) and pending, the optimizer's current
    trials, and its history (each proposal with value in force vs proposed, its verdict and
    the target's trials)."""
    return _facade(ctx).optimizations()


@router.post("/cycle", response_model=CycleOut)
async def cycle(ctx: Ctx, actor: Actor) -> dict[str, Any]:
    """Run one learning cycle now (feedback → proposals); the controller reconciles them."""
    return await _facade(ctx).run_cycle()


@router.post("/route", response_model=RouteOut)
def route(body: RouteBody, ctx: Ctx, actor: Actor) -> dict[str, Any]:
    """Choose a model for a query (Neural Router): model, propensity, decision id. Send the
    outcome back with POST /api/learning/feedback (decision_id)."""
    return _facade(ctx).router.route(body.query_class, body.allowed).as_dict()


@router.get("/route/stats", response_model=RouteStatsOut)
def route_stats(ctx: Ctx) -> dict[str, Any]:
    """Decisions, successes, failures, errors and latency per query class and model."""
    return _facade(ctx).router.stats()


@router.get("/knowledge-graph", response_model=GraphOut, responses={200: {
    "description": "The subgraph as JSON, or as SVG with format=svg",
    "content": {"image/svg+xml": {"schema": {"type": "string"}}}}})
def knowledge_graph(ctx: Ctx, center: str | None = Query(None, max_length=200),
                    depth: int = Query(1, ge=1, le=4),
                    max_nodes: int = Query(50, ge=1, le=500),
                    format: Literal["json", "svg"] = "json") -> Any:
    """At most ``max_nodes`` nodes around ``center`` (default: the newest node)."""
    out = _facade(ctx).knowledge_graph(center, depth, max_nodes, format)
    if format == "svg":
        return Response(out, media_type="image/svg+xml")
    return out


@router.get("/export")
def export(ctx: Ctx, actor: Actor) -> dict[str, Any]:
    """The learned knowledge (proposals, events, feedback, route decisions) as one document."""
    return _facade(ctx).orchestrator.export_learned_knowledge()
