"""A sample ATLAS stack: small real HTTP services standing in for NEXUS (:8000) and Robot (:8002).

Run one with ``python -m autonomous.sample_stack --name nexus --port 8000``. Standard library
only, so a restarted service answers ``/health`` within milliseconds of Python starting. Modules:
``cli`` (arguments, start-up faults), ``server`` (HTTP routing), ``faults`` (fault injection),
``metrics`` (Prometheus text exposition), ``work`` (the work endpoints), ``features`` (feature
flags), ``logs`` (JSON log lines and W3C trace context), ``router`` (the Neural Router
endpoint, replaying RouteLLM pairs through the operator's ``/api/learning/route``).

This file stays tiny: it is imported before every start of a sample service.
"""

__all__: list[str] = []
