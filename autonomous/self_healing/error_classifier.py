"""Error classification: (exception, context) → type, severity, recoverable, strategy ladder.

The rules live in policy (``healing.classification.rules``, first match wins); each matches on
the report's source, a regex over the exception/probe error/log tail, exception class names,
exit code, signal, HTTP status, process state, a recent desired-state change, a dependency
being down, or memory over the declared limit. ``learn_from_error`` records how a signature
was resolved; once a signature has ``learned_min_samples`` resolutions, what was learned
(the corrected type, the strategies that worked) takes precedence over the rules.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from autonomous.core.clock import Clock
from autonomous.self_healing.model import (
    Classification,
    ErrorReport,
    ErrorType,
    RecoveryStrategy,
    Severity,
)
from autonomous.self_healing.signatures import error_signature
from autonomous.store import Store

__all__ = ["ErrorClassifier", "match_rule", "signature_of"]

_ERRORISH = re.compile(r"error|exception|traceback|fatal|failed|refused|killed", re.IGNORECASE)


def _detail(ctx: dict[str, Any]) -> str:
    parts = []
    if ctx.get("signal") is not None:
        parts.append(f"sig={ctx['signal']}")
    elif ctx.get("exit_code") is not None:
        parts.append(f"rc={ctx['exit_code']}")
    if ctx.get("status_code") is not None:
        parts.append(f"http={ctx['status_code']}")
    return ",".join(parts)


def _key_text(exception: BaseException | None, ctx: dict[str, Any]) -> str:
    if exception is not None:
        return f"{type(exception).__name__}: {exception}"
    if ctx.get("probe_error"):
        return str(ctx["probe_error"])
    errorish = [ln for ln in ctx.get("log_tail") or [] if _ERRORISH.search(ln)]
    if errorish:
        return errorish[-1]
    return str(ctx.get("message") or "")


def signature_of(service: str, source: str, exception: BaseException | None,
                 ctx: dict[str, Any]) -> str:
    """The normalised signature of one failure (stable across occurrences)."""
    return error_signature(service, source, _detail(ctx), _key_text(exception, ctx))


def _haystack(exception: BaseException | None, ctx: dict[str, Any]) -> str:
    parts = [str(ctx.get("message") or ""), str(ctx.get("probe_error") or "")]
    if exception is not None:
        parts.append(f"{type(exception).__name__}: {exception}")
    parts += list(ctx.get("log_tail") or [])
    return "\n".join(parts)


def match_rule(when: dict[str, Any], exception: BaseException | None,
               ctx: dict[str, Any]) -> bool:
    """Whether every condition given in ``when`` holds for this failure."""
    checks: list[tuple[str, Callable[[Any], bool]]] = [
        ("source", lambda v: ctx.get("source") in v),
        ("text", lambda v: re.search(v, _haystack(exception, ctx), re.IGNORECASE) is not None),
        ("exception", lambda v: exception is not None and bool(
            {c.__name__ for c in type(exception).__mro__} & set(v))),
        ("exit_code", lambda v: ctx.get("exit_code") in v),
        ("signal", lambda v: ctx.get("signal") in v),
        ("status_min", lambda v: (ctx.get("status_code") or 0) >= v),
        ("status_max", lambda v: ctx.get("status_code") is not None and ctx["status_code"] <= v),
        ("probe_error", lambda v: re.search(v, str(ctx.get("probe_error") or ""), re.IGNORECASE)
         is not None),
    ]
    for key, check in checks:
        value = when.get(key)
        if value is not None and not check(value):
            return False
    for flag in ("running", "stopped", "config_changed", "dependency_down",
                 "memory_over_limit"):
        value = when.get(flag)
        if value is not None and bool(ctx.get(flag)) != value:
            return False
    return True


class ErrorClassifier:
    """``policy`` returns the ``healing`` policy section in force (read on every call)."""

    def __init__(self, store: Store, clock: Clock, policy: Callable[[], dict[str, Any]]) -> None:
        self.store = store
        self.clock = clock
        self.policy = policy

    def classify_error(self, exception: BaseException | None,
                       context: dict[str, Any] | None = None) -> Classification:
        """Type, severity, recoverable (and rule, strategy ladder, signature) of a failure."""
        ctx = dict(context or {})
        p = self.policy()["classification"]
        sig = signature_of(str(ctx.get("service") or "-"), str(ctx.get("source") or "exception"),
                           exception, ctx)
        result = self._by_rules(p, exception, ctx, sig)
        learned = self._learned(sig, p["learned_min_samples"])
        if learned is not None:
            etype, ladder = learned
            strategies = tuple(ladder) + tuple(s for s in self.ladder(etype) if s not in ladder)
            return result._replace(error_type=etype, strategies=strategies, learned=True)
        return result

    def _by_rules(self, p: dict[str, Any], exception: BaseException | None,
                  ctx: dict[str, Any], sig: str) -> Classification:
        for rule in p["rules"]:
            if match_rule(rule["when"], exception, ctx):
                etype = ErrorType(rule["type"])
                ladder = tuple(RecoveryStrategy(s) for s in rule["strategies"]) \
                    if rule["strategies"] else self.ladder(etype)
                return Classification(etype, Severity(rule["severity"]), rule["recoverable"],
                                      rule["name"], ladder, sig)
        d = p["default"]
        etype = ErrorType(d["type"])
        return Classification(etype, Severity(d["severity"]), d["recoverable"], "default",
                              self.ladder(etype), sig)

    def ladder(self, error_type: ErrorType | str) -> tuple[RecoveryStrategy, ...]:
        """The policy's strategy ladder for a type (first = default, then escalations)."""
        names = self.policy()["strategies"][ErrorType(error_type).value]
        return tuple(RecoveryStrategy(s) for s in names)

    def get_recovery_strategy(self, error_type: ErrorType | str) -> RecoveryStrategy:
        """The first strategy the policy names for this error type."""
        return self.ladder(error_type)[0]

    # -- learning ------------------------------------------------------------------------------
    def learn_from_error(self, error: Classification | ErrorReport | str,
                         resolution: dict[str, Any]) -> None:
        """Record how a failure was resolved: ``{"strategy", "success", "error_type"?}``.

        ``error_type`` in the resolution corrects the classification (a human said what it
        really was); without it the classified type is kept.
        """
        sig, etype = _sig_and_type(error, resolution)
        strategy = RecoveryStrategy(resolution["strategy"]).value
        ok = bool(resolution.get("success"))
        self.store.execute(
            "INSERT INTO healing_knowledge(error_signature, error_type, strategy, successes, "
            "failures, updated_at) VALUES (?,?,?,?,?,?) ON CONFLICT(error_signature, error_type, "
            "strategy) DO UPDATE SET successes=successes+excluded.successes, "
            "failures=failures+excluded.failures, updated_at=excluded.updated_at",
            (sig, etype, strategy, int(ok), int(not ok), self.clock.now()))

    def outcomes(self, signature: str) -> dict[tuple[str, str], tuple[int, int]]:
        """Measured step outcomes of ``signature``: (signature, strategy) → (successes,
        failures), over every type it was classified as (the strategy posterior's input)."""
        rows = self.store.query("SELECT strategy, SUM(successes) s, SUM(failures) f FROM "
                                "healing_knowledge WHERE error_signature=? GROUP BY strategy",
                                (signature,))
        return {(signature, r["strategy"]): (int(r["s"] or 0), int(r["f"] or 0)) for r in rows}

    def _learned(self, sig: str, min_samples: int) \
            -> tuple[ErrorType, list[RecoveryStrategy]] | None:
        rows = self.store.query("SELECT error_type, strategy, successes, failures FROM "
                                "healing_knowledge WHERE error_signature=?", (sig,))
        if not rows:
            return None
        by_type: dict[str, int] = {}
        for r in rows:
            by_type[r["error_type"]] = by_type.get(r["error_type"], 0) + r["successes"]
        etype, total = max(by_type.items(), key=lambda kv: kv[1])
        if total < min_samples:
            return None
        ranked = sorted((r for r in rows if r["error_type"] == etype and r["successes"]),
                        key=lambda r: (-r["successes"] / (r["successes"] + r["failures"]),
                                       -r["successes"]))
        return ErrorType(etype), [RecoveryStrategy(r["strategy"]) for r in ranked]

    def knowledge(self, limit: int = 200) -> list[dict[str, Any]]:
        """What was learned, per signature/type/strategy."""
        rows = self.store.query("SELECT * FROM healing_knowledge ORDER BY updated_at DESC "
                                "LIMIT ?", (limit,))
        return [dict(r) for r in rows]


def _sig_and_type(error: Classification | ErrorReport | str,
                  resolution: dict[str, Any]) -> tuple[str, str]:
    if isinstance(error, Classification):
        sig, etype = error.signature, error.error_type.value
    elif isinstance(error, ErrorReport):
        sig = signature_of(error.service, error.source, error.exception,
                           {**error.context, "message": error.message})
        etype = str(resolution.get("error_type") or "TRANSIENT")
    else:
        sig, etype = str(error), str(resolution.get("error_type") or "TRANSIENT")
    if resolution.get("error_type"):
        etype = ErrorType(resolution["error_type"]).value
    return sig, etype
