"""The one module that owns SQLite. Import :class:`Store` from here; nobody else connects."""

from autonomous.store.db import Store

__all__ = ["Store"]
