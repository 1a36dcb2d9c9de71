"""Migration scripts, one module per component (``COMPONENT`` + ``MIGRATIONS``)."""
