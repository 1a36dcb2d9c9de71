"""Resilience layer: priority admission control, resource throttling, survival mode, and the
one backup engine (disaster recovery). See each module's docstring."""

__all__ = ["admission", "priority_queue", "resource_throttler", "survival_mode",
           "disaster_recovery", "facade"]
