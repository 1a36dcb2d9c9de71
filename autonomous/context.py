"""What every controller and the API are handed: the operator's shared services.

``OperatorContext`` is built once by the operator (``controllers.operator``) and passed down.
``subsystems`` holds each subsystem's facade (``"health"``, ``"healing"``, ``"telemetry"``,
``"resilience"``, …) registered by its controller at start; the API reads them through this
mapping and never imports controllers.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from autonomous.core.clock import Clock
from autonomous.core.events import EventBus
from autonomous.core.jobs import JobScheduler
from autonomous.desired import DesiredStateManager
from autonomous.governance import Approvals, Governance
from autonomous.learning.knowledge_graph import KnowledgeGraph
from autonomous.status import StatusBoard
from autonomous.store import Store

__all__ = ["OperatorContext"]


@dataclass
class OperatorContext:
    root: Path
    data_dir: Path
    store: Store
    bus: EventBus
    clock: Clock
    desired: DesiredStateManager
    governance: Governance
    approvals: Approvals
    graph: KnowledgeGraph
    status: StatusBoard
    token: str
    subsystems: dict[str, Any] = field(default_factory=dict)
    triggers: dict[str, Any] = field(default_factory=dict)  # controller name -> trigger()
    jobs: JobScheduler = field(default_factory=JobScheduler)  # housekeeping (core.jobs)

    def policy(self) -> dict[str, Any]:
        """Effective policy for the mode in force, from the generation in force."""
        return self.governance.policy()

    def trigger(self, controller: str) -> bool:
        fn = self.triggers.get(controller)
        if fn is None:
            return False
        fn()
        return True
