"""Self-healing engine: classify failures, remember them, choose and run a recovery behind a
circuit breaker, verify it, escalate to a human when it does not work.

See ``healing_orchestrator`` for the pipeline; ``controllers/healing.py`` runs it.
"""

from importlib import import_module
from typing import Any

# Loaded on first use (PEP 562): a service embedding the heartbeat agent imports
# ``autonomous.self_healing.heartbeat_agent`` without the whole engine.
_WHERE = {
    "CircuitBreaker": "circuit_breaker", "CircuitOpenError": "circuit_breaker",
    "CircuitState": "circuit_breaker", "ErrorClassifier": "error_classifier",
    "FailureMemory": "failure_memory", "HealingOrchestrator": "healing_orchestrator",
    "HeartbeatClient": "heartbeat", "HeartbeatResult": "heartbeat",
    "Classification": "model", "ErrorReport": "model", "ErrorType": "model",
    "RecoveryStrategy": "model", "Severity": "model", "StrategyResult": "model",
    "RecoveryStrategies": "recovery_strategies",
}


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


# the decorator: ``from autonomous.self_healing.circuit_breaker import circuit_breaker``
__all__ = [
           "CircuitBreaker",
           "CircuitOpenError",
           "CircuitState",
           "Classification",
           "ErrorClassifier",
           "ErrorReport",
           "ErrorType",
           "FailureMemory",
           "HealingOrchestrator",
           "HeartbeatClient",
           "HeartbeatResult",
           "RecoveryStrategies",
           "RecoveryStrategy",
           "Severity",
           "StrategyResult",
]
