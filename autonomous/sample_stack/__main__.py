"""``python -m autonomous.sample_stack``: start one sample service (see ``cli.main``)."""

from autonomous.sample_stack.cli import main

__all__: list[str] = []

raise SystemExit(main())
