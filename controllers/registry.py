"""Discovery of controllers: every ``controllers/<x>.py`` module may define ``CONTROLLERS``,
a list of Controller subclasses; they run in the order of their ``order`` attribute."""

from __future__ import annotations

import importlib
import pkgutil

from controllers.base import Controller

__all__ = ["controller_classes"]


def controller_classes() -> list[type[Controller]]:
    import controllers

    found: list[type[Controller]] = []
    for info in sorted(pkgutil.iter_modules(controllers.__path__), key=lambda m: m.name):
        mod = importlib.import_module(f"controllers.{info.name}")
        found += getattr(mod, "CONTROLLERS", [])
    return sorted(found, key=lambda c: (getattr(c, "order", 100), c.name))
