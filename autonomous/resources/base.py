"""Model base classes and the discovery of kinds, policy sections and config sections.

Subsystems add to the resource vocabulary without editing a central file:

* ``autonomous/resources/kinds/<x>.py`` defines ``KINDS = {"Kind": SpecModel}``
* ``autonomous/resources/policy/<x>.py`` defines ``SECTIONS = {"section": Model}``
* ``autonomous/resources/config/<x>.py`` defines ``SECTIONS = {"section": Model}``
"""

from __future__ import annotations

import importlib
import pkgutil
from functools import cache
from types import ModuleType
from typing import Any

from pydantic import BaseModel, ConfigDict

__all__ = ["API_VERSION", "Strict", "config_sections", "discover", "kinds", "policy_sections"]

API_VERSION = "atlas.autonomous/v1"


class Strict(BaseModel):
    """Unknown fields are errors; values are validated on assignment too."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, frozen=False)


def discover(package: ModuleType, attr: str) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for info in sorted(pkgutil.iter_modules(package.__path__), key=lambda m: m.name):
        mod = importlib.import_module(f"{package.__name__}.{info.name}")
        for name, model in getattr(mod, attr, {}).items():
            if name in found:
                raise RuntimeError(f"{attr} entry {name!r} defined twice ({mod.__name__})")
            found[name] = model
    return found


@cache
def kinds() -> dict[str, type[BaseModel]]:
    from autonomous.resources import kinds as pkg

    return discover(pkg, "KINDS")


@cache
def policy_sections() -> dict[str, type[BaseModel]]:
    from autonomous.resources import policy as pkg

    return discover(pkg, "SECTIONS")


@cache
def config_sections() -> dict[str, type[BaseModel]]:
    from autonomous.resources import config as pkg

    return discover(pkg, "SECTIONS")
