"""Mount the whole operator into an existing FastAPI app (the real PUSH) with one call.

``mount(app, root)`` builds the operator, includes every router and error handler, installs
the middlewares the standalone app has (admission, tracing, body guard — the same install
functions, in the same order) and chains the controllers' lifespan around the host app's own
lifespan: the host's startup runs first and its shutdown last, with the operator's controllers
(and the services they supervise) running in between.

It lives in ``controllers/`` because it builds an ``Operator``; ``autonomous/`` never imports
``controllers/``.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

from fastapi import FastAPI

from autonomous.api.app import include_routes, install_middleware
from controllers.operator import Operator

__all__ = ["mount"]


def mount(app: FastAPI, root: str | Path, *, data_dir: str | Path | None = None,
          operator: Operator | None = None) -> Operator:
    """Mount routers, middlewares and the controllers' lifespan into ``app``; returns the
    built operator (its ``ctx`` holds the store, governance, status board...).

    Call it before the app starts serving (middlewares cannot be added afterwards).
    """
    op = operator or Operator(root, data_dir=data_dir)
    ctx = op.ctx or op.build()
    include_routes(app, ctx)
    install_middleware(app, ctx)
    host_lifespan: Callable[[Any], Any] = app.router.lifespan_context

    @contextlib.asynccontextmanager
    async def chained(host: Any) -> AsyncIterator[Any]:
        async with host_lifespan(host) as state:
            async with op.lifespan(host):
                yield state

    app.router.lifespan_context = chained
    return op
