"""ATLAS Autonomous: a one-host operator that supervises, heals, updates and learns.

Layers (checked by tests/autonomous/test_layers.py):

    controllers/  ──►  autonomous/ (api → subsystems → store/graph → core)

``autonomous`` never imports ``controllers``.
"""

__version__ = "0.1.0"
__all__ = ["__version__"]
