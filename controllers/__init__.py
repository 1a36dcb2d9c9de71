"""Reconcilers, one per subsystem, and the manager that runs them. Depends on ``autonomous``."""
