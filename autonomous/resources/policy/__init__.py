"""Policy sections: each module defines ``SECTIONS = {"name": Model}`` (all fields required)."""
