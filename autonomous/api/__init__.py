"""The PUSH API: FastAPI routers per subsystem, mountable into an existing app."""
