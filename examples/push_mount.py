"""An existing FastAPI app (standing in for PUSH ``atlas_adapter/atlas_http_api.py``) with its
own route and lifespan, and the whole operator mounted into it with one call.

    ATLAS_AUTONOMOUS_ROOT=/path/to/tree uvicorn examples.push_mount:app --port 8792

The tree defaults to this repository (its config/, desired_state/, policies/).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import AsyncIterator
from pathlib import Path

from fastapi import FastAPI

from controllers.mount import mount

ROOT = Path(os.environ.get("ATLAS_AUTONOMOUS_ROOT", Path(__file__).resolve().parent.parent))


@contextlib.asynccontextmanager
async def push_lifespan(app: FastAPI) -> AsyncIterator[None]:
    app.state.push_ready = True  # PUSH's own startup (connections, caches...)
    yield
    app.state.push_ready = False


app = FastAPI(title="PUSH", lifespan=push_lifespan)


@app.get("/push/ping")
def ping() -> dict[str, object]:
    return {"push": "pong", "ready": getattr(app.state, "push_ready", False)}


operator = mount(app, ROOT, data_dir=os.environ.get("ATLAS_AUTONOMOUS_DATA_DIR"))
