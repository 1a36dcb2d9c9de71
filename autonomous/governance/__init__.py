"""Governance: the mode in force, what each action kind may do, and approvals."""

from autonomous.governance.approvals import Approvals
from autonomous.governance.mode import Governance, MODES

__all__ = ["Governance", "Approvals", "MODES"]
