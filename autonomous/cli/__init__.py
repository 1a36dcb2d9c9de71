"""The ``atlas-autonomous`` command line. Commands live in ``cmd_<name>.py`` modules, each with
``register(subparsers)``; ``controllers.cli`` adds the ones that need controllers (run, plan)."""
