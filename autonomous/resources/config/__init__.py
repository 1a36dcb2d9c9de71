"""Operator config sections: each module defines ``SECTIONS = {"name": Model}``."""
