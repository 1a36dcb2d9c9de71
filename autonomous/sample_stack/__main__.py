"""``python -m autonomous.sample_stack``: start one sample service (see ``cli.main``).

Start-up speed matters (a killed service must answer /health again within milliseconds), so
``http.server`` is imported here with ``ssl`` hidden: ``http.client`` imports ``ssl`` (~8 ms)
only to offer HTTPS clients, which a sample service never uses. This runs only in a service's
own process, never when the package is imported as a library.
"""

import importlib
import sys

if "ssl" not in sys.modules:
    sys.modules["ssl"] = None  # type: ignore[assignment]
    try:
        importlib.import_module("http.server")
    finally:
        del sys.modules["ssl"]

from autonomous.sample_stack.cli import main

__all__: list[str] = []

raise SystemExit(main())
