"""Governance: the mode in force, what each action kind may do, and approvals."""

from autonomous.governance.approvals import Approvals
from autonomous.governance.mode import MODES, Governance

__all__ = ["MODES", "Approvals", "Governance"]
