"""Circuit breaker: CLOSED → OPEN after failures, OPEN → HALF_OPEN after a timeout,
HALF_OPEN → CLOSED after successes (or back to OPEN on a failure).

    breaker = CircuitBreaker("nexus", failure_threshold=5, timeout=30, success_threshold=2)
    breaker.call(fn, *args)              # sync; raises CircuitOpenError while OPEN
    await breaker.call_async(coro_fn)    # async
    @circuit_breaker(breaker)            # decorator for sync and async functions
    breaker.record_success() / record_failure() / get_state() / reset()

Optional: a failure-rate window (the last N calls, judged after ``min_calls``) and a slow-call
threshold (a call slower than ``slow_call_seconds`` counts as a failure). Thread- and
task-safe: transitions happen under a lock; the CLOSED success path reads two attributes and
takes no lock, so it costs a few hundred nanoseconds. Listeners are called on every state
change with ``(breaker, old, new)`` (persistence, metrics, logs).
"""

from __future__ import annotations

import functools
import inspect
import threading
import time
from collections import deque
from collections.abc import Awaitable, Callable
from enum import Enum
from typing import Any, TypeVar

__all__ = [
    "CircuitBreaker",
    "CircuitOpenError",
    "CircuitState",
    "Listener",
    "circuit_breaker",
]

T = TypeVar("T")


class CircuitState(str, Enum):
    CLOSED = "CLOSED"
    OPEN = "OPEN"
    HALF_OPEN = "HALF_OPEN"


_CLOSED, _OPEN, _HALF = CircuitState.CLOSED, CircuitState.OPEN, CircuitState.HALF_OPEN


class CircuitOpenError(RuntimeError):
    """The breaker refused the call; ``retry_after`` seconds until it lets one through."""

    def __init__(self, name: str, retry_after: float, state: CircuitState) -> None:
        super().__init__(f"circuit {name!r} is {state.value}: call refused; next trial in "
                         f"{retry_after:.2f}s")
        self.name = name
        self.retry_after = retry_after
        self.state = state


Listener = Callable[["CircuitBreaker", CircuitState, CircuitState], None]


class CircuitBreaker:
    """One breaker. ``clock`` needs ``monotonic()``; ``exclude`` exceptions do not count."""

    def __init__(self, name: str = "breaker", *, failure_threshold: int, timeout: float,
                 success_threshold: int = 1, failure_rate: float | None = None,
                 window_calls: int | None = None, min_calls: int | None = None,
                 slow_call_seconds: float | None = None, clock: Any = None,
                 exclude: tuple[type[BaseException], ...] = (),
                 listeners: tuple[Listener, ...] = ()) -> None:
        self.name = name
        self._lock = threading.RLock()
        self._mono: Callable[[], float] = clock.monotonic if clock is not None else time.monotonic
        self._exclude = exclude
        self._listeners: list[Listener] = list(listeners)
        self._state = _CLOSED
        self._failures = 0
        self._successes = 0
        self._trials = 0
        self._opened_at = 0.0
        self._window: deque[bool] = deque()
        self._events: list[tuple[CircuitState, CircuitState]] = []
        self.opened_count = 0
        self.configure(failure_threshold=failure_threshold, timeout=timeout,
                       success_threshold=success_threshold, failure_rate=failure_rate,
                       window_calls=window_calls, min_calls=min_calls,
                       slow_call_seconds=slow_call_seconds)

    def configure(self, *, failure_threshold: int, timeout: float, success_threshold: int,
                  failure_rate: float | None = None, window_calls: int | None = None,
                  min_calls: int | None = None, slow_call_seconds: float | None = None) -> None:
        """(Re)set the parameters; the state is kept (a policy edit takes effect at once)."""
        if failure_threshold < 1 or success_threshold < 1 or timeout <= 0:
            raise ValueError("failure_threshold and success_threshold must be >= 1 and timeout "
                             f"> 0 (got {failure_threshold}, {success_threshold}, {timeout})")
        if failure_rate is not None and not (window_calls and min_calls):
            raise ValueError("failure_rate needs window_calls and min_calls")
        with self._lock:
            self.failure_threshold = failure_threshold
            self.timeout = float(timeout)
            self.success_threshold = success_threshold
            self.failure_rate = failure_rate
            self.window_calls = window_calls
            self.min_calls = min_calls
            self.slow_call_seconds = slow_call_seconds
            self._window = deque(self._window, maxlen=window_calls or 1)
            # the CLOSED fast path skips bookkeeping unless something needs it
            self._timed = slow_call_seconds is not None
            self._dirty = failure_rate is not None or self._failures > 0

    # -- calls -------------------------------------------------------------------------------
    def call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run ``fn`` through the breaker (sync)."""
        if self._state is not _CLOSED or self._timed:
            return self._guarded(fn, args, kwargs)
        try:
            result = fn(*args, **kwargs)
        except self._exclude:
            raise
        except Exception:
            self.record_failure()
            raise
        if self._dirty:
            self.record_success()
        return result

    async def call_async(self, fn: Callable[..., Awaitable[T]], *args: Any,
                         **kwargs: Any) -> T:
        """Run the coroutine function ``fn`` through the breaker."""
        if self._state is not _CLOSED or self._timed:
            trial = self._admit()
            t0 = self._mono() if self._timed else 0.0
            try:
                result = await fn(*args, **kwargs)
            except BaseException as exc:
                self._settle(trial, False, exc)
                raise
            self._settle(trial, not self._too_slow(t0), None)
            return result
        try:
            result = await fn(*args, **kwargs)
        except self._exclude:
            raise
        except Exception:
            self.record_failure()
            raise
        if self._dirty:
            self.record_success()
        return result

    def _guarded(self, fn: Callable[..., T], args: tuple, kwargs: dict) -> T:
        trial = self._admit()
        t0 = self._mono() if self._timed else 0.0
        try:
            result = fn(*args, **kwargs)
        except BaseException as exc:
            self._settle(trial, False, exc)
            raise
        self._settle(trial, not self._too_slow(t0), None)
        return result

    def _too_slow(self, t0: float) -> bool:
        return self._timed and self._mono() - t0 > self.slow_call_seconds  # type: ignore[operator]

    def _admit(self) -> bool:
        """Let a call through or raise CircuitOpenError; True when it is a half-open trial."""
        try:
            with self._lock:
                state = self._current()
                if state is _CLOSED:
                    return False
                if state is _OPEN:
                    raise CircuitOpenError(self.name, self._retry_after(), state)
                if self._trials >= self.success_threshold:
                    raise CircuitOpenError(self.name, 0.0, state)
                self._trials += 1
                return True
        finally:
            self._flush()

    def _settle(self, trial: bool, ok: bool, exc: BaseException | None) -> None:
        if trial:
            with self._lock:
                self._trials = max(0, self._trials - 1)
        if exc is not None and (isinstance(exc, self._exclude) or
                                not isinstance(exc, Exception)):
            return
        if ok:
            self.record_success()
        else:
            self.record_failure()

    # -- bookkeeping ---------------------------------------------------------------------------
    def record_success(self) -> None:
        """Count a success: resets the failure streak; closes a half-open breaker."""
        with self._lock:
            state = self._current()
            if state is _HALF:
                self._successes += 1
                if self._successes >= self.success_threshold:
                    self._to(_CLOSED)
            elif state is _CLOSED:
                self._failures = 0
                if self.failure_rate is not None:
                    self._window.append(True)
                self._dirty = self.failure_rate is not None
        self._flush()

    def record_failure(self) -> None:
        """Count a failure: may open a closed breaker; re-opens a half-open one."""
        with self._lock:
            state = self._current()
            if state is _HALF:
                self._to(_OPEN)
            elif state is _CLOSED:
                self._failures += 1
                self._dirty = True
                if self.failure_rate is not None:
                    self._window.append(False)
                if self._should_open():
                    self._to(_OPEN)
        self._flush()

    def _should_open(self) -> bool:
        if self._failures >= self.failure_threshold:
            return True
        if self.failure_rate is None or len(self._window) < (self.min_calls or 1):
            return False
        failed = sum(1 for ok in self._window if not ok)
        return failed / len(self._window) >= self.failure_rate

    def _current(self) -> CircuitState:
        """The state, moving OPEN → HALF_OPEN once the timeout passed (call under the lock)."""
        if self._state is _OPEN and self._mono() - self._opened_at >= self.timeout:
            self._to(_HALF)
        return self._state

    def _to(self, new: CircuitState) -> None:
        """Transition (under the lock); listeners run later, outside it, in ``_flush``."""
        old = self._state
        if new is old:
            return
        self._state = new
        self._failures = self._successes = self._trials = 0
        self._window.clear()
        self._dirty = self.failure_rate is not None
        if new is _OPEN:
            self._opened_at = self._mono()
            self.opened_count += 1
        self._events.append((old, new))

    def _flush(self) -> None:
        if not self._events:
            return
        with self._lock:
            events, self._events = self._events, []
        for old, new in events:
            for listener in list(self._listeners):
                listener(self, old, new)

    def _retry_after(self) -> float:
        return max(0.0, self.timeout - (self._mono() - self._opened_at))

    # -- inspection and control ------------------------------------------------------------------
    def get_state(self) -> CircuitState:
        """The state now (an OPEN breaker whose timeout passed reads HALF_OPEN)."""
        with self._lock:
            state = self._current()
        self._flush()
        return state

    def reset(self) -> None:
        """Back to CLOSED with clean counters."""
        with self._lock:
            self._current()
            self._to(_CLOSED)
            self._failures = 0
            self._dirty = self.failure_rate is not None
        self._flush()

    def force_open(self) -> None:
        """Open now (an operator decision)."""
        with self._lock:
            self._current()
            self._to(_OPEN)
        self._flush()

    def restore(self, state: CircuitState, opened_ago: float = 0.0) -> None:
        """Set a persisted state without notifying (``opened_ago``: seconds since it opened)."""
        with self._lock:
            self._state = state
            self._opened_at = self._mono() - opened_ago
            self._failures = self._successes = self._trials = 0

    def add_listener(self, listener: Listener) -> None:
        self._listeners.append(listener)

    def snapshot(self) -> dict[str, Any]:
        """State and counters, for the API and persistence."""
        state = self.get_state()
        with self._lock:
            return {"name": self.name, "state": state.value, "failures": self._failures,
                    "successes": self._successes, "opened_count": self.opened_count,
                    "retry_after": round(self._retry_after(), 3) if state is _OPEN else None,
                    "failure_threshold": self.failure_threshold, "timeout": self.timeout,
                    "success_threshold": self.success_threshold,
                    "failure_rate": self.failure_rate, "slow_call_seconds": self.slow_call_seconds}

    def __call__(self, fn: Callable[..., Any]) -> Callable[..., Any]:
        """Use the breaker itself as a decorator."""
        return circuit_breaker(self)(fn)


def circuit_breaker(breaker: CircuitBreaker | None = None, **params: Any) \
        -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Decorator: ``@circuit_breaker(breaker)`` or ``@circuit_breaker(failure_threshold=…,
    timeout=…)``; works on sync and async functions. The wrapper exposes ``.breaker``."""

    def wrap(fn: Callable[..., Any]) -> Callable[..., Any]:
        b = breaker or CircuitBreaker(params.pop("name", fn.__qualname__), **params)
        if inspect.iscoroutinefunction(fn):
            call_async = b.call_async

            @functools.wraps(fn)
            async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
                return await call_async(fn, *args, **kwargs)

            async_wrapper.breaker = b  # type: ignore[attr-defined]
            return async_wrapper
        call = b.call

        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            return call(fn, *args, **kwargs)

        wrapper.breaker = b  # type: ignore[attr-defined]
        return wrapper

    return wrap
