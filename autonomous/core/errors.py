"""Every error the operator raises on purpose.

    AtlasError
    ├── ValidationFailed        bad YAML / resource / request content       → 422
    │     (carries a list of Problem(file, line, path, message))
    ├── NotFound                unknown resource, approval, backup, trace    → 404
    ├── Conflict                state does not allow it (stale approval...)  → 409
    │   └── Gone                expired approval                             → 410
    ├── Unauthorized            missing/invalid bearer token                 → 401
    ├── Refused                 a policy or guard refuses the action         → 403
    ├── Throttled               admission control sheds the request          → 429
    └── ActionFailed            an action against the world failed
          ├── TemporaryError    retry after a delay
          └── PermanentError    stop and report
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "ActionFailed",
    "AtlasError",
    "Conflict",
    "Gone",
    "NotFound",
    "PermanentError",
    "Problem",
    "Refused",
    "TemporaryError",
    "Throttled",
    "Unauthorized",
    "ValidationFailed",
]


@dataclass(frozen=True, order=True)
class Problem:
    file: str
    line: int
    path: str
    message: str

    def __str__(self) -> str:
        loc = f"{self.file}:{self.line}" if self.line else self.file
        return f"{loc}: {self.path or '(document)'}: {self.message}"

    def as_dict(self) -> dict:
        return {"file": self.file, "line": self.line, "path": self.path, "message": self.message}


class AtlasError(Exception):
    status_code = 500


class ValidationFailed(AtlasError):
    status_code = 422

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = sorted(problems)
        super().__init__("\n".join(str(p) for p in self.problems))


class NotFound(AtlasError):
    status_code = 404


class Conflict(AtlasError):
    status_code = 409


class Gone(Conflict):
    status_code = 410


class Unauthorized(AtlasError):
    status_code = 401


class Refused(AtlasError):
    status_code = 403


class Throttled(AtlasError):
    status_code = 429

    def __init__(self, message: str, retry_after: float) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class ActionFailed(AtlasError):
    pass


class TemporaryError(ActionFailed):
    def __init__(self, message: str, delay: float | None = None) -> None:
        super().__init__(message)
        self.delay = delay


class PermanentError(ActionFailed):
    pass
