"""Self-healing engine: classify failures, remember them, choose and run a recovery behind a
circuit breaker, verify it, escalate to a human when it does not work.

See ``healing_orchestrator`` for the pipeline; ``controllers/healing.py`` runs it.
"""

from autonomous.self_healing.circuit_breaker import CircuitBreaker, CircuitOpenError, CircuitState
from autonomous.self_healing.error_classifier import ErrorClassifier
from autonomous.self_healing.failure_memory import FailureMemory
from autonomous.self_healing.healing_orchestrator import HealingOrchestrator
from autonomous.self_healing.heartbeat import HeartbeatClient, HeartbeatResult
from autonomous.self_healing.model import (
           Classification,
           ErrorReport,
           ErrorType,
           RecoveryStrategy,
           Severity,
           StrategyResult,
)
from autonomous.self_healing.recovery_strategies import RecoveryStrategies

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
