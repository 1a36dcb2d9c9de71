"""Command line of a sample service: parse arguments and start-up faults, serve, stop on SIGTERM.

    python -m autonomous.sample_stack --name nexus --port 8000
    python -m autonomous.sample_stack --name robot --port 8002 \\
        --depends-on http://127.0.0.1:8000/health

Faults at start come from flags or from ``ATLAS_SAMPLE_FAULT`` (so a desired state can declare
a crash loop): a comma list of ``crash_on_start``, ``hang``, ``slow=MS``, ``error=STATUS``,
``memory=MB_PER_S``. ``ATLAS_SAMPLE_EXIT_CODE`` sets the exit code of ``crash_on_start``.
SIGTERM or SIGINT stop the service gracefully: exit 0 within a second.
``--admission-policy PATH`` (opt-in) puts the resilience layer's admission control in front of
every request except probes and control endpoints (see ``admission``).
"""

from __future__ import annotations

import argparse
import os
import signal
import threading
import time
from pathlib import Path

from autonomous.sample_stack.features import FeatureError, Features, parse_feature_list
from autonomous.sample_stack.logs import JsonLogger
from autonomous.sample_stack.metrics import PROCESS_START
from autonomous.sample_stack.variant import VARIANTS

TYPE_CHECKING = False
if TYPE_CHECKING:
    from autonomous.resilience.admission import Admission
    from autonomous.sample_stack.server import SampleHTTPServer, Service

__all__ = ["main", "parse_args", "parse_env_faults"]

_DRAIN_S = 0.5
_STOP_SIGNALS = {signal.SIGTERM, signal.SIGINT}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line; bad values exit 2 with argparse's message."""
    p = argparse.ArgumentParser(prog="python -m autonomous.sample_stack",
                                description="A sample ATLAS service (NEXUS/Robot stand-in).")
    p.add_argument("--name", required=True, help="service name; nexus* and robot* get profiles")
    p.add_argument("--port", required=True, type=int, help="TCP port to listen on")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    p.add_argument("--features", help="declared features, e.g. motion,heartbeat,planning=off "
                                      "(default: the profile of --name)")
    p.add_argument("--depends-on", action="append", default=[], metavar="URL",
                   help="dependency URL that must answer 2xx for /ready (repeatable)")
    p.add_argument("--ready-delay-ms", type=int, default=0, help="warm-up before /ready is 200")
    p.add_argument("--log-probes", action="store_true",
                   help="also log successful untraced GETs of /health, /ready and /metrics "
                        "(off by default, like most access logs: a probe that failed or "
                        "carried a traceparent is always logged)")
    p.add_argument("--service-version", default=os.environ.get("ATLAS_SAMPLE_VERSION",
                                                   os.environ.get("ATLAS_SERVICE_VERSION",
                                                                  "1.0.0")),
                   help="version reported by /health (env ATLAS_SAMPLE_VERSION)")
    p.add_argument("--crash-on-start", action="store_true",
                   help="exit at once with --exit-code (a crash loop)")
    p.add_argument("--exit-code", type=int,
                   default=int(os.environ.get("ATLAS_SAMPLE_EXIT_CODE", "1") or 1),
                   help="exit code for --crash-on-start (env ATLAS_SAMPLE_EXIT_CODE)")
    p.add_argument("--admission-policy", metavar="PATH",
                   default=os.environ.get("ATLAS_SAMPLE_ADMISSION_POLICY") or None,
                   help="opt-in admission control (priorities, 429 + Retry-After when shed) "
                        "with the resilience policy of a desired-state root or one PolicySet "
                        "YAML file (env ATLAS_SAMPLE_ADMISSION_POLICY)")
    p.add_argument("--admission-mode", default=os.environ.get("ATLAS_SAMPLE_ADMISSION_MODE",
                                                              "governed"),
                   help="governance mode whose policy applies when PATH is a root "
                        "(default governed; env ATLAS_SAMPLE_ADMISSION_MODE)")
    p.add_argument("--variant", choices=VARIANTS,
                   default=os.environ.get("ATLAS_SAMPLE_VARIANT", "good") or "good",
                   help="how this version behaves: good, slow, errors or never_ready "
                        "(env ATLAS_SAMPLE_VARIANT; see sample_stack/variant.py)")
    p.add_argument("--state-file", metavar="PATH",
                   help="a data file this version migrates at start: it is rewritten as "
                        "'schema=VERSION' (what an update touching its data does)")
    args = p.parse_args(argv)
    if not 0 < args.port < 65536:
        p.error(f"--port: {args.port} is out of range; allowed: 1 to 65535")
    if not 0 <= args.exit_code <= 255:
        p.error(f"--exit-code: {args.exit_code} is out of range; allowed: 0 to 255")
    return args


def parse_env_faults(text: str) -> tuple[bool, list[dict[str, object]]]:
    """``ATLAS_SAMPLE_FAULT`` → (crash on start?, faults to activate), or ValueError."""
    from autonomous.sample_stack.faults import validate

    crash, faults = False, []
    keys = {"slow": "delay_ms", "error": "status", "memory": "mb_per_s"}
    for item in (t.strip() for t in text.split(",") if t.strip()):
        kind, _, value = item.partition("=")
        if kind in ("crash_on_start", "exit_on_start"):
            crash = True
        elif kind == "hang" and not value:
            faults.append(validate({"kind": "hang"}))
        elif kind in keys and value:
            try:
                num = float(value) if kind != "error" else int(value)
            except ValueError:
                raise ValueError(f"ATLAS_SAMPLE_FAULT: {item!r}: {value!r} is not a number"
                                 ) from None
            faults.append(validate({"kind": kind, keys[kind]: num}))
        else:
            raise ValueError(f"ATLAS_SAMPLE_FAULT: {item!r} is not one of crash_on_start, hang, "
                             "slow=MS, error=STATUS, memory=MB_PER_S")
    return crash, faults


def _startup_ms() -> float | None:
    return None if PROCESS_START is None else round((time.time() - PROCESS_START) * 1000, 1)


def main(argv: list[str] | None = None) -> int:
    """Run one sample service until SIGTERM/SIGINT; the exit status."""
    args = parse_args(argv)
    log = JsonLogger(args.name)
    try:
        crash, env_faults = parse_env_faults(os.environ.get("ATLAS_SAMPLE_FAULT", ""))
        feats = (Features(parse_feature_list(args.features)) if args.features is not None
                 else Features.for_profile(args.name))
    except (ValueError, FeatureError) as e:
        log.error(str(e))
        return 2
    if crash or args.crash_on_start:
        log.error("crashing on start (injected fault)", exit_code=args.exit_code)
        return int(args.exit_code)
    if args.state_file:
        try:
            _migrate(Path(args.state_file), args.service_version)
        except OSError as e:
            log.error(f"--state-file {args.state_file}: {e}")
            return 2
    signal.pthread_sigmask(signal.SIG_BLOCK, _STOP_SIGNALS)  # before any thread: all inherit it
    return _serve(args, log, feats, env_faults)


def _migrate(path: Path, version: str) -> None:
    """The data file written as this version's schema (atomically: a reader sees the old or
    the new content, never a torn one)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(f"schema={version}\n")
    os.replace(tmp, path)


def _serve(args: argparse.Namespace, log: JsonLogger, feats: Features,
           env_faults: list[dict[str, object]]) -> int:
    from autonomous.sample_stack.server import Service, make_server

    try:
        admission = _admission(args, log)
        svc = Service(args.name, version=args.service_version, features=feats,
                      depends_on=args.depends_on, ready_delay_s=args.ready_delay_ms / 1000.0,
                      log=log, admission=admission, log_probes=args.log_probes,
                      variant_name=args.variant)
        server = make_server(svc, args.host, args.port)
    except ValueError as e:
        log.error(str(e))
        return 2
    except OSError as e:
        log.error(f"cannot listen on {args.host}:{args.port}: {e.strerror or e}", errno=e.errno)
        return 1
    for fault in env_faults:
        svc.faults.activate(fault)
    # logged before serving (the socket already listens; early connections wait in its
    # backlog), so "started" is always the first line, before any request's line
    log.info("started", host=args.host, port=args.port, pid=os.getpid(),
             version=args.service_version, features=feats.snapshot(),
             faults=sorted(svc.faults.snapshot()), startup_ms=_startup_ms())
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                     name="http", daemon=True).start()
    svc.readiness.start()
    from autonomous.sample_stack import heartbeat

    beat_stop = threading.Event()
    if heartbeat.start(svc, args.port, beat_stop) is not None:
        log.info("heartbeat agent on", operator=os.environ.get("ATLAS_AUTONOMOUS_URL"))
    sig = signal.sigwait(_STOP_SIGNALS)
    beat_stop.set()
    return _stop(svc, server, log, signal.Signals(sig).name)


def _admission(args: argparse.Namespace, log: JsonLogger) -> Admission | None:
    """The opt-in admission core; imported only when asked for (it needs pydantic and YAML to
    read the policy), so a plain service keeps its fast start. ValueError when the policy is
    bad."""
    if not args.admission_policy:
        return None
    from autonomous.sample_stack.admission import make_admission

    adm = make_admission(args.admission_policy, args.admission_mode,
                         on_problem=lambda text: log.error("admission policy edit refused; "
                                                           "the last good one stays",
                                                           problems=text))
    log.info("admission control on", policy=str(args.admission_policy),
             mode=args.admission_mode)
    return adm


def _stop(svc: Service, server: SampleHTTPServer, log: JsonLogger, signame: str) -> int:
    log.info("stopping", signal=signame)
    t0 = time.monotonic()
    server.shutdown()  # no new connections are accepted
    svc.readiness.stop()
    hung = svc.faults.active("hang")  # hung requests never finish: do not wait for them
    while not hung and svc.inflight() and time.monotonic() - t0 < _DRAIN_S:
        time.sleep(0.01)
    left = svc.inflight()
    server.server_close()
    log.info("stopped", signal=signame, abandoned_requests=left,
             stop_ms=round((time.monotonic() - t0) * 1000, 1))
    return 0
