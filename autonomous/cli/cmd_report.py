"""``atlas-autonomous report``: Markdown and HTML from a live run.

Asks the running operator (``--url`` or the root's config) what runs and how it does, reads
the checkout's files, a junit XML (``--junit``) and the benchmarks' result JSON files
(``--bench-dir``, default ``$ATLAS_BENCH_RESULTS`` or ``bench/results``), measures the cheap figures live, and writes
``report.md`` and ``report.html`` into ``--out``.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from autonomous.cli.client import ApiClient, add_client_args

__all__ = ["register"]


def register(sub: Any) -> None:
    p = sub.add_parser("report", help="write report.md and report.html from a live run")
    add_client_args(p)
    p.add_argument("--out", default="report", help="folder for report.md and report.html")
    p.add_argument("--junit", default=None, help="junit XML of a test run (pytest --junitxml)")
    p.add_argument("--bench-dir", default=None,
                   help="benchmark result JSON files (default: $ATLAS_BENCH_RESULTS, else "
                   "bench/results of the checkout)")
    p.set_defaults(func=cmd_report)


def cmd_report(args: Any) -> int:
    from autonomous.reporting.bench_figures import results_dir
    from autonomous.reporting.collect import REPO, collect
    from autonomous.reporting.render import html_page, markdown

    client = ApiClient(args)
    bench = Path(args.bench_dir) if args.bench_dir else results_dir(REPO)
    try:
        report = collect(client.base, client.token,
                         junit_xml=Path(args.junit) if args.junit else None, bench_dir=bench)
    except ConnectionError as exc:
        print(f"{exc}; is it running? start it with 'atlas-autonomous run' (or pass --url)",
              file=sys.stderr)
        return 1
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "report.md").write_text(markdown(report))
    (out / "report.html").write_text(html_page(report))
    done = sum(c.status == "done" for c in report.checklist)
    print(f"wrote {out / 'report.md'} and {out / 'report.html'}: {done}/"
          f"{len(report.checklist)} features done, {len(report.next_steps)} next steps")
    return 0
