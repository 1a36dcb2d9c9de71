"""Resilience layer: priority admission control, resource throttling, survival mode, and the
one backup engine (disaster recovery). See each module's docstring."""

__all__ = [
           "admission",
           "disaster_recovery",
           "facade",
           "priority_queue",
           "resource_throttler",
           "survival_mode",
]
