"""The desired state in force: generations, content hashes, git commits, hot reload."""

from autonomous.desired.manager import DesiredStateManager, Generation

__all__ = ["DesiredStateManager", "Generation"]
