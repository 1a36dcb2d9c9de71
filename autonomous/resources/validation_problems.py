"""pydantic validation errors as :class:`Problem` values: ``FILE:LINE: field.path: message``,
with the allowed fields named for an unknown one."""

from __future__ import annotations

import typing
from typing import Any

from pydantic import BaseModel

from autonomous.core.errors import Problem
from autonomous.resources.yaml_lines import Document, format_path, line_for

__all__ = ["allowed_fields", "is_secret_path", "problem_from"]

# Fields whose values are secrets (environment variables): never echoed in a message.
SECRET_FIELDS = frozenset({"env"})


def is_secret_path(path: tuple) -> bool:
    """True for a value under an ``env`` mapping (``spec.env.DB_PASSWORD``) or the ``env``
    field itself (``env: "DB_PASSWORD=..."`` written as a string)."""
    return any(str(p) in SECRET_FIELDS for p in path)


def problem_from(err: Any, doc: Document, prefix: tuple, model: type[BaseModel], *,
                  override_path: tuple | None = None, suffix: str = "") -> Problem:
    loc = tuple(x for x in err["loc"] if isinstance(x, int) or "[" not in str(x))
    path = override_path if override_path is not None else prefix + loc
    etype = err["type"]
    if etype == "extra_forbidden":
        allowed = allowed_fields(model, loc[:-1])
        msg = f"unknown field {loc[-1]!r}" + (f"; allowed: {', '.join(allowed)}" if allowed else "")
    elif etype == "missing":
        msg = f"missing required field {loc[-1]!r}" if loc else "missing required field"
        path = path[:-1] if path else path
        line = line_for(doc, path)
        return Problem(doc.file, line, format_path(path + (loc[-1],) if loc else path), msg + suffix)
    else:
        msg = err["msg"]
        msg = msg.removeprefix("Value error, ")
        if "input" in err and not isinstance(err["input"], (dict, list)):
            msg = f"{'(value hidden)' if is_secret_path(path) else repr(err['input'])}: {msg}"
    return Problem(doc.file, line_for(doc, path), format_path(path), msg + suffix)


def allowed_fields(model: type[BaseModel], loc: tuple) -> list[str]:
    current: Any = model
    for part in loc:
        if isinstance(part, int):
            continue
        fields = getattr(current, "model_fields", None)
        if not fields or part not in fields:
            return []
        current = inner_model(fields[part].annotation)
        if current is None:
            return []
    fields = getattr(current, "model_fields", None)
    return sorted(fields) if fields else []


def inner_model(annotation: Any) -> Any:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in typing.get_args(annotation):
        found = inner_model(arg)
        if found is not None:
            return found
    return None
