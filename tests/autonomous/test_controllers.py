"""Controller contract: pure diffs, manager scheduling, governance gate, backoff, graph."""

from __future__ import annotations

import asyncio

import pytest
from hypothesis import given
from hypothesis import strategies as st

from autonomous.resources.kinds.service import ServiceSpec
from controllers.base import Action, Controller, Outcome
from controllers.manager import ControllerManager
from controllers.services import DesiredService, ObservedService, ServicesController, topo_order


def spec(**kw) -> ServiceSpec:
    return ServiceSpec(command=["x"], port=kw.pop("port", 9000), **kw)


def d(name: str, h: str = "h1", **kw) -> DesiredService:
    should_run = kw.pop("should_run", True)
    why = kw.pop("why_not", None)
    return DesiredService(name, spec(**kw), h, should_run, why)


def o(name: str, *, running=True, h="h1", rc=None, ready=True, wait=0.0, ours=False):
    return ObservedService(name, running, True, h, rc, ours, ready, wait)


diff = ServicesController.diff


def kinds(actions):
    return [(a.kind, a.resource) for a in actions]


def test_start_in_dependency_order():
    desired = {"a": d("a"), "b": d("b", depends_on=["a"])}
    assert kinds(diff(desired, {})) == [("start", "Service/a")]
    observed = {"a": o("a", ready=False)}
    assert kinds(diff(desired, observed)) == []
    observed = {"a": o("a")}
    assert kinds(diff(desired, observed)) == [("start", "Service/b")]


def test_restart_exited_per_policy():
    exited = {"a": o("a", running=False, rc=-9)}
    assert kinds(diff({"a": d("a")}, exited)) == [("restart", "Service/a")]
    never = {"a": d("a", restart={"policy": "never"})}
    assert diff(never, exited) == ()
    on_failure = {"a": d("a", restart={"policy": "on-failure"})}
    assert diff(on_failure, {"a": o("a", running=False, rc=0)}) == ()
    assert kinds(diff(on_failure, exited)) == [("restart", "Service/a")]


def test_backoff_wait_defers_restart_and_requeues():
    observed = {"a": o("a", running=False, rc=1, wait=2.5)}
    desired = {"a": d("a")}
    assert diff(desired, observed) == ()
    assert ServicesController.requeue_after(desired, observed) == 2.5


def test_changed_revision_restarts_and_removed_stops():
    actions = diff({"a": d("a", h="new")}, {"a": o("a", h="old"), "gone": o("gone")})
    assert kinds(actions) == [("restart", "Service/a"), ("stop", "Service/gone")]
    assert actions[0].evidence == {"running_hash": "old", "desired_hash": "new"}


def test_isolated_or_survival_stops():
    actions = diff({"a": d("a", should_run=False, why_not="survival")}, {"a": o("a")})
    assert kinds(actions) == [("stop", "Service/a")]
    assert actions[0].reason == "service is survival"


names = st.lists(st.sampled_from(["a", "b", "c", "d"]), unique=True, max_size=4)


@given(names, st.booleans(), st.booleans())
def test_diff_of_converged_state_is_empty(svcs, ready, _):
    desired = {n: d(n) for n in svcs}
    observed = {n: o(n, ready=ready) for n in svcs}
    assert diff(desired, observed) == ()


@given(names)
def test_diff_is_pure(svcs):
    desired = {n: d(n) for n in svcs}
    assert diff(desired, {}) == diff(desired, {})


def test_topo_order():
    specs = {"c": spec(depends_on=["b"]), "b": spec(depends_on=["a"]), "a": spec()}
    assert topo_order(specs) == ["a", "b", "c"]


# -- the manager with a controller whose world is a dict -------------------------------------

class DictController(Controller):
    name = "dict"
    subsystem = "services"
    watches = ("dict.",)

    def __init__(self, ctx, fail_times: int = 0, kind: str = "restart"):
        super().__init__(ctx)
        self.world: dict[str, int] = {}
        self.want = {"x": 1}
        self.fail_times = fail_times
        self.kind = kind
        self.calls = 0
        self.reports = 0

    def desired(self):
        return dict(self.want)

    async def observe(self):
        return dict(self.world)

    @staticmethod
    def diff(desired, observed):
        return tuple(Action("restart", f"Thing/{k}", "value differs", {"k": k, "v": v})
                     for k, v in desired.items() if observed.get(k) != v)

    async def act(self, action):
        self.calls += 1
        if self.calls <= self.fail_times:
            raise RuntimeError("boom")
        self.world[action.params["k"]] = action.params["v"]
        return Outcome(action, True, "set")

    def report(self, desired, observed, outcomes):
        self.reports += 1


async def test_manager_reconciles_and_records_graph(ctx):
    ctx.governance.set_mode("growth", actor="test")
    c = DictController(ctx)
    m = ControllerManager(ctx, [c])
    await m.start()
    try:
        outcomes = await m.reconcile(c)
        assert [x.ok for x in outcomes] == [True]
        assert c.world == {"x": 1}
        assert await m.reconcile(c) == []
        node = ctx.status.controller("dict").last_decisions["Thing/x"]
        chain = [step["type"] for step in ctx.graph.why(node)]
        assert chain == ["observation", "decision", "action", "outcome"]
        ctx_rels = {c["rel"] for c in ctx.graph.why(node)[1]["context"]}
        assert {"about", "under_generation", "under_mode"} <= ctx_rels
    finally:
        await m.stop()


async def test_failing_action_backs_off_then_stalls(ctx):
    ctx.governance.set_mode("growth", actor="test")
    c = DictController(ctx, fail_times=100)
    m = ControllerManager(ctx, [c])
    await m.start()
    try:
        first = await m.reconcile(c)
        assert not first[0].ok and "boom" in first[0].message
        again = await m.reconcile(c)  # inside the backoff window: not attempted
        assert c.calls == 1 and "backing off" in again[0].message
        policy = ctx.policy()["reconcile"]["action_backoff"]
        for _ in range(policy["max_retries"] + 2):
            ctx.clock.advance(policy["max_seconds"] + 1)
            await m.reconcile(c)
        assert c.calls == policy["max_retries"]
        status = ctx.status.resource("dict", "Thing", "x")
        assert status.conditions["Stalled"].status == "True"
    finally:
        await m.stop()


async def test_one_controller_raising_does_not_stop_others(ctx):
    class Broken(DictController):
        name = "broken"

        async def observe(self):
            raise ValueError("cannot observe")

    ctx.governance.set_mode("growth", actor="test")
    good, bad = DictController(ctx), Broken(ctx)
    m = ControllerManager(ctx, [bad, good])
    await m.start()
    try:
        await m.reconcile(bad)
        await m.reconcile(good)
        assert ctx.status.controller("broken").last_error == "ValueError: cannot observe"
        assert good.world == {"x": 1}
    finally:
        await m.stop()


@pytest.mark.parametrize("mode, expect_world, expect_msg", [
    ("growth", {"x": 1}, "set"),
    ("governed", {}, "awaiting approval"),
])
async def test_governance_gate(ctx, tmp_path, mode, expect_world, expect_msg):
    # restart_all needs approval in governed mode; use it as the action kind
    class NeedsApproval(DictController):
        @staticmethod
        def diff(desired, observed):
            return tuple(Action("restart_all", f"Thing/{k}", "differs", {"k": k, "v": v})
                         for k, v in desired.items() if observed.get(k) != v)

    ctx.governance.set_mode(mode, actor="test")
    c = NeedsApproval(ctx)
    m = ControllerManager(ctx, [c])
    await m.start()
    try:
        out = await m.reconcile(c)
        assert c.world == expect_world
        assert expect_msg in out[0].message
        if mode == "governed":
            pending = ctx.approvals.list("pending")
            assert len(pending) == 1 and pending[0]["action_kind"] == "restart_all"
            assert f"atlas-autonomous approvals approve {pending[0]['id']}" in out[0].message
            await m.reconcile(c)
            assert len(ctx.approvals.list("pending")) == 1, "no duplicate request"
            ctx.approvals.decide(pending[0]["id"], approve=True, actor="human",
                                 current_generation=ctx.desired.current.number)
            await m.reconcile(c)
            assert c.world == {"x": 1}
            assert ctx.approvals.get(pending[0]["id"])["state"] == "executed"
    finally:
        await m.stop()


async def test_dry_run_records_but_does_nothing(ctx):
    class Optimizer(DictController):
        @staticmethod
        def diff(desired, observed):
            return tuple(Action("optimization", f"Thing/{k}", "differs", {"k": k, "v": v})
                         for k, v in desired.items() if observed.get(k) != v)

    ctx.governance.set_mode("emergency_stop", actor="test")
    c = Optimizer(ctx)
    m = ControllerManager(ctx, [c])
    await m.start()
    try:
        out = await m.reconcile(c)
        assert c.world == {} and out[0].details == {"dry_run": True}
        decision = ctx.graph.find(type_="decision")[0]
        assert decision["attrs"]["gate"] == "dry_run"
    finally:
        await m.stop()


async def test_event_triggers_reconcile(ctx):
    ctx.governance.set_mode("growth", actor="test")
    c = DictController(ctx)
    m = ControllerManager(ctx, [c])
    await m.start()
    try:
        for _ in range(100):
            if c.reports >= 1:
                break
            await asyncio.sleep(0.01)
        before = c.reports
        c.want = {"x": 2}
        ctx.bus.publish("dict.changed")
        for _ in range(200):
            if c.world == {"x": 2}:
                break
            await asyncio.sleep(0.01)
        assert c.world == {"x": 2} and c.reports > before
    finally:
        await m.stop()


@pytest.mark.parametrize("mode, kind", [("governed", "restart_all"),
                                        ("emergency_stop", "optimization")])
async def test_repeated_undone_decision_updates_its_chain(ctx, mode, kind):
    class Gated(DictController):
        @staticmethod
        def diff(desired, observed):
            return tuple(Action(kind, f"Thing/{k}", "differs", {"k": k, "v": v})
                         for k, v in desired.items() if observed.get(k) != v)

    ctx.governance.set_mode(mode, actor="test")
    c = Gated(ctx)
    m = ControllerManager(ctx, [c])
    await m.start()
    try:
        await m.reconcile(c)
        counts = ctx.graph.stats()["nodes"], ctx.graph.stats()["edges"]
        for _ in range(20):
            await m.reconcile(c)
        assert (ctx.graph.stats()["nodes"], ctx.graph.stats()["edges"]) == counts
        decisions = ctx.graph.find(type_="decision")
        assert len(decisions) == 1 and decisions[0]["attrs"]["repeats"] == 20
        outcome = ctx.graph.find(type_="outcome")[0]
        assert [s["type"] for s in ctx.graph.why(outcome["id"])] == [
            "observation", "decision", "action", "outcome"]
        if mode == "governed":
            pending = ctx.approvals.list("pending")[0]
            ctx.approvals.decide(pending["id"], approve=True, actor="human",
                                 current_generation=ctx.desired.current.number)
            await m.reconcile(c)
            assert c.world == {"x": 1}
            assert len(ctx.graph.find(type_="decision")) == 2, "the approved run is a new chain"
    finally:
        await m.stop()


async def test_10000_passes_with_a_pending_approval_keep_rows_bounded(tmp_path):
    """Acceptance (issue 10): a fake clock, no sleeping; 10 s per pass is ~28 hours, so the
    approval (TTL from policy) expires and is asked again many times; retention from policy
    (shortened here) prunes what is no longer seen."""
    from autonomous.learning.retention import Retention
    from autonomous.testing import make_context

    ctx = make_context(tmp_path, load=False)
    pol = ctx.root / "policies" / "retention.yaml"
    text = pol.read_text()
    for field, value in (("interval_seconds", "600"), ("graph_days", "0.1"),
                         ("approvals_days", "0.1")):
        text = "\n".join(f"{line.split(':')[0]}: {value}"
                         if line.strip().startswith(field + ":") else line
                         for line in text.splitlines())
    pol.write_text(text + "\n")
    ctx.desired.reload()
    try:
        assert ctx.policy()["retention"]["graph_days"] == 0.1
        ttl = ctx.policy()["governance"]["approval_ttl_seconds"]

        class NeedsApproval(DictController):
            @staticmethod
            def diff(desired, observed):
                return tuple(Action("restart_all", f"Thing/{k}", "differs", {"k": k, "v": v})
                             for k, v in desired.items() if observed.get(k) != v)

        ctx.governance.set_mode("governed", actor="test")
        c = NeedsApproval(ctx)
        m = ControllerManager(ctx, [c])
        retention = Retention(ctx.store, ctx.graph, ctx.clock, ctx.policy,
                              lambda: ctx.desired.current.number)

        def rows(table):
            return ctx.store.query_one(f"SELECT COUNT(*) AS n FROM {table}")["n"]

        peak = {"graph_nodes": 0, "graph_edges": 0, "approvals": 0}
        requested = set()
        passes = 10_000
        for _ in range(passes):
            out = await m.reconcile(c)
            assert out[0].details["pending"] is True
            requested.add(out[0].details["approval"])
            retention.maybe_run()
            ctx.clock.advance(10)
            for t in peak:
                peak[t] = max(peak[t], rows(t))
        assert c.world == {}, "never done without approval"
        assert len(requested) >= passes * 10 // ttl, "the approval expired and was asked again"
        # without dedup and retention: 4 nodes per pass (40,000) and one approval per TTL
        assert peak["graph_nodes"] <= 24 and peak["graph_edges"] <= 56, peak
        assert peak["approvals"] <= 5, peak
        assert len(ctx.approvals.list("pending")) == 1
        outcome = ctx.status.controller(c.name).last_decisions["Thing/x"]
        assert [s["type"] for s in ctx.graph.why(outcome)] == [
            "observation", "decision", "action", "outcome"]
    finally:
        ctx.store.close()


async def test_plan_says_which_controllers_it_cannot_plan_offline(tmp_path):
    """``plan`` names the controllers whose world only the running operator sees, instead of
    diffing an empty observation: the default tree's gateway is not "started" again."""
    from autonomous.testing import make_context
    from controllers.gateway import GatewayController
    from controllers.health import HealthController
    from controllers.plan import plan_actions

    ctx = make_context(tmp_path)
    assert any(s.traffic for s in ctx.desired.current.services.values())  # a gateway is due
    ctx.store.close()
    _mode, actions = await plan_actions(ctx.root, ctx.data_dir)
    by = {}
    for a in actions:
        by.setdefault(a["controller"], []).append(a)
    for cls in (GatewayController, HealthController):
        assert by[cls.name] == [{"controller": cls.name, "skipped": cls.offline_plan}]
    assert "services" in by  # the others are still planned
