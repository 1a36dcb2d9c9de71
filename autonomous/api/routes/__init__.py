"""One module per resource; each defines ``router`` (an APIRouter with its prefix).

Modules are discovered and included in name order by ``autonomous.api.app.create_app``.
"""
