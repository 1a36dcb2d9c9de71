"""Secret redaction for log lines and span attributes.

Values of sensitive keys (authorization, token, password, secret, api key, cookie, ...) are
replaced by ``[REDACTED]``; inside free text, ``Authorization: Bearer xyz``, ``token=xyz``,
``"password": "xyz"`` and URL credentials ``scheme://user:pass@host`` are masked too.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Any

__all__ = ["REDACTED", "is_secret_key", "redact_fields", "redact_text", "redact_value"]

REDACTED = "[REDACTED]"
_KEY = re.compile(r"(authori[sz]ation|passw(or)?d|passwd|secret|token|api[-_]?key|cookie|"
                  r"credential|private[-_]?key|session[-_]?id)", re.IGNORECASE)
_PATTERNS = [
    (re.compile(r"(?i)\b(authorization\s*[:=]\s*)(bearer|basic|token)?\s*[^\s,;\"']+"),
     lambda m: f"{m.group(1)}{(m.group(2) + ' ') if m.group(2) else ''}{REDACTED}"),
    (re.compile(r"(?i)\b(bearer\s+)[A-Za-z0-9._~+/=-]{6,}"), lambda m: m.group(1) + REDACTED),
    (re.compile(r"(?i)([\"']?(?:[a-z_-]*(?:passw(?:or)?d|secret|token|api[-_]?key|cookie)"
                r"[a-z_-]*)[\"']?\s*[:=]\s*)(\"[^\"]*\"|'[^']*'|[^\s,;&}]+)"),
     lambda m: m.group(1) + (f'"{REDACTED}"' if m.group(2)[:1] == '"' else REDACTED)),
    (re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://[^/\s:@]+:)([^@\s/]+)(@)"),
     lambda m: m.group(1) + REDACTED + m.group(3)),
]


@lru_cache(maxsize=4096)
def is_secret_key(key: str) -> bool:
    """True for field names whose value is a secret."""
    return bool(_KEY.search(key))


_HINT = re.compile(r"auth|bearer|passw|secret|token|key|cookie|://", re.IGNORECASE)


def redact_text(text: str) -> str:
    """Mask secrets inside free text (a substring pre-check skips clean text quickly)."""
    if _HINT.search(text) is None:
        return text
    for pattern, repl in _PATTERNS:
        text = pattern.sub(repl, text)
    return text


def redact_value(key: str, value: Any) -> Any:
    """The value with secrets masked: whole value for a secret key, else recursively."""
    if is_secret_key(key) and value not in (None, "", False):
        return REDACTED
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, dict):
        return redact_fields(value)
    if isinstance(value, (list, tuple)):
        return [redact_value("", v) for v in value]
    return value


def redact_fields(fields: dict[str, Any]) -> dict[str, Any]:
    """A copy of ``fields`` with every secret masked."""
    return {str(k): redact_value(str(k), v) for k, v in fields.items()}
