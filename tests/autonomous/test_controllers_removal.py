"""Stop by removal (issue 14.11): a running Service whose file was deleted is planned as a stop
that says so; a core one is kind ``stop_by_removal``, which governed mode gates behind an
approval (nothing is stopped until approved); status lists the removal with the approve
command."""

from __future__ import annotations

import pytest

from autonomous.cli.cmd_core import _removals
from autonomous.supervisor.revisions import Revisions
from autonomous.testing import make_context
from controllers.execution import Executor
from controllers.removal import REMOVED_REASON, mark_core_removed
from controllers.services import ObservedService, ServicesController


@pytest.fixture()
def ctx(tmp_path):
    c = make_context(tmp_path)
    yield c
    c.store.close()


def _observed_removed(ctx, name: str) -> dict[str, ObservedService]:
    spec = ctx.desired.current.services[name]
    h = Revisions(ctx.store, ctx.clock).record(name, spec, ctx.desired.current.number)
    observed = {name: ObservedService(name, True, True, h)}
    mark_core_removed(ctx.store, observed, {})  # its file is gone: not in the desired state
    return observed


def test_removed_core_service_is_a_gated_stop_by_removal(ctx):
    assert ctx.desired.current.services["nexus"].core
    [a] = ServicesController.diff({}, _observed_removed(ctx, "nexus"))
    assert (a.kind, a.resource, a.reason) == ("stop_by_removal", "Service/nexus", REMOVED_REASON)
    assert ctx.governance.mode == "governed"
    assert ctx.governance.action_mode("stop_by_removal") == "require_approval"
    assert ctx.governance.action_mode("stop_by_removal", "growth") == "enforce"


def test_removed_non_core_service_is_a_plain_stop_that_says_so(ctx):
    assert not ctx.desired.current.services["robot"].core
    [a] = ServicesController.diff({}, _observed_removed(ctx, "robot"))
    assert (a.kind, a.reason) == ("stop", REMOVED_REASON)


async def test_governed_stop_by_removal_waits_for_approval_and_status_says_so(ctx):
    ctl = ServicesController(ctx)
    [a] = ServicesController.diff({}, _observed_removed(ctx, "nexus"))
    out = await Executor(ctx).execute(ctl, a, ctx.desired.current.number)
    assert out.ok and out.details["pending"], out  # act (the stop) did not run
    appr = ctx.approvals.get(out.details["approval"])
    assert appr["action_kind"] == "stop_by_removal" and appr["state"] == "pending"
    status = {"controllers": {"services": {"last_actions": [
        {**a.as_dict(), "outcome": out.as_dict()}]}}}
    [line] = _removals(status)
    assert line.startswith("Service/nexus: removed from the desired state: will be stopped")
    assert f"atlas-autonomous approvals approve {appr['id']}" in line
