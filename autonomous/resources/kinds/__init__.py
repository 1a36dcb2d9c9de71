"""Desired-state kinds: each module defines ``KINDS = {"Kind": SpecModel}``."""
