"""Real child processes: start, stop (SIGTERM then SIGKILL, whole group), exit events, logs,
and liveness/readiness probes."""

from autonomous.supervisor.processes import ProcessInfo, ProcessSupervisor

__all__ = ["ProcessInfo", "ProcessSupervisor"]
