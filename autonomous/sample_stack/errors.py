"""The one error of the sample stack: bad input, answered with 400 and its message.

``FaultError`` (faults) and ``FeatureError`` (features) are kinds of it; ``work`` raises it
directly. Messages name the field, the offending value and what is allowed.
"""

__all__ = ["BadRequest"]


class BadRequest(ValueError):  # noqa: N818 - named after the HTTP answer it becomes
    """Invalid input; answered with 400 and this message."""
