"""The sample NEXUS's Neural Router endpoint: ``POST /api/router/route``.

Each call takes the next prompt of the RouteLLM replay data (or the one named by
``{"prompt_sha1": ...}``), asks the operator which model to use (``POST
/api/learning/route`` with the prompt's query class ``<benchmark>/<domain>``), answers with
that model's recorded correctness for the prompt, and sends the outcome back (``POST
/api/learning/feedback`` with the decision id and the measured latency of the routed call),
so the operator learns from it and writes the ``router.*`` series the Neural Router dashboard
shows.

Configured by environment: ``ATLAS_ROUTER_REPLAY`` (the ``mmlu_gsm8k_pairs.csv`` file; relative
to the service's working directory), ``ATLAS_ROUTER_OPERATOR_URL`` (default
``http://127.0.0.1:8791``), the token from ``ATLAS_ROUTER_TOKEN_FILE`` or
``ATLAS_AUTONOMOUS_TOKEN``. Without replay data or an operator the endpoint answers 503 saying
which is missing; the rest of the service is unaffected.
"""

from __future__ import annotations

import csv
import http.client
import json
import os
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit

from autonomous.sample_stack.errors import BadRequest

TYPE_CHECKING = False
if TYPE_CHECKING:
    from autonomous.sample_stack.routes import Answer
    from autonomous.sample_stack.server import Service

__all__ = ["ENV_REPLAY", "NeuralRouter", "Replay", "handle"]

ENV_REPLAY = "ATLAS_ROUTER_REPLAY"
#: the vendored RouteLLM sample (data/README.md) replayed when ENV_REPLAY names no file
SAMPLE_REPLAY = Path(__file__).resolve().parent / "data" / "routellm_pairs_sample.csv"
ENV_URL = "ATLAS_ROUTER_OPERATOR_URL"
ENV_TOKEN_FILE = "ATLAS_ROUTER_TOKEN_FILE"
MODELS = {"weak": "weak_correct", "strong": "strong_correct"}


class Replay:
    """Per-prompt correctness of a weak and a strong model, served in file order (cycling)."""

    def __init__(self, path: Path) -> None:
        csv.field_size_limit(1 << 24)
        with path.open(newline="", encoding="utf-8") as f:
            reader = csv.DictReader(f)
            missing = {"benchmark", "domain", "prompt_sha1", *MODELS.values()} - set(
                reader.fieldnames or ())
            if missing:
                raise ValueError(f"{path}: not RouteLLM pairs (missing {sorted(missing)})")
            self.rows = [(r["benchmark"], r["domain"], r["prompt_sha1"],
                          {m: r[c] == "1" for m, c in MODELS.items()}) for r in reader]
        if not self.rows:
            raise ValueError(f"{path}: no rows")
        self.by_sha = {r[2]: r for r in self.rows}
        self._i = 0
        self._lock = threading.Lock()

    def next(self) -> tuple[str, str, str, dict[str, bool]]:
        with self._lock:
            row = self.rows[self._i % len(self.rows)]
            self._i += 1
            return row


class Unavailable(Exception):
    """Replay data or the operator is missing; answered 503 with this message."""


class NeuralRouter:
    def __init__(self, replay_path: str | None, operator_url: str, token: str | None) -> None:
        self.replay_path = replay_path
        self.url = urlsplit(operator_url)
        self.token = token
        self._replay: Replay | None = None
        self._lock = threading.Lock()
        self.routed = 0
        self.correct = 0

    @classmethod
    def from_env(cls) -> NeuralRouter:
        token = os.environ.get("ATLAS_AUTONOMOUS_TOKEN")
        token_file = os.environ.get(ENV_TOKEN_FILE)
        if token_file and Path(token_file).is_file():
            token = Path(token_file).read_text(encoding="utf-8").strip()
        return cls(os.environ.get(ENV_REPLAY) or str(SAMPLE_REPLAY),
                   os.environ.get(ENV_URL, "http://127.0.0.1:8791"), token)

    def replay(self) -> Replay:
        with self._lock:
            if self._replay is None:
                if not self.replay_path:
                    raise Unavailable(f"router replay data not configured: set {ENV_REPLAY} "
                                      "to the RouteLLM mmlu_gsm8k_pairs.csv file")
                path = Path(self.replay_path)
                if not path.is_file():
                    raise Unavailable(f"router replay data not found at {path.resolve()} "
                                      f"({ENV_REPLAY})")
                try:
                    self._replay = Replay(path)
                except (OSError, ValueError) as e:
                    raise Unavailable(str(e)) from None
            return self._replay

    def _post(self, path: str, body: dict[str, object]) -> dict[str, object]:
        conn = http.client.HTTPConnection(self.url.hostname or "127.0.0.1",
                                          self.url.port or 80, timeout=5)
        headers = {"Content-Type": "application/json"}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        try:
            conn.request("POST", path, json.dumps(body), headers)
            r = conn.getresponse()
            data = r.read()
        except (OSError, http.client.HTTPException) as e:
            raise Unavailable(f"operator at {self.url.geturl()} unreachable: {e} "
                              f"({ENV_URL})") from None
        finally:
            conn.close()
        try:
            out = json.loads(data or b"{}")
        except ValueError:
            out = {"detail": data[:200].decode("utf-8", "replace")}
        if r.status >= 400:
            raise Unavailable(f"operator {path}: {r.status} {out.get('detail', '')}")
        return out

    def route(self, body: object) -> Answer:
        if body is not None and not (isinstance(body, dict) and set(body) <= {"prompt_sha1"}):
            raise BadRequest('body: expected nothing or {"prompt_sha1": "<sha1 of a prompt>"}')
        try:
            replay = self.replay()
            sha = body.get("prompt_sha1") if isinstance(body, dict) else None
            row = replay.by_sha.get(str(sha)) if sha is not None else replay.next()
            if row is None:
                raise BadRequest(f"prompt_sha1: {sha!r} is not in the replay data")
            bench, domain, sha1, correct = row
            qc = f"{bench}/{domain}"
            t0 = time.perf_counter()
            d = self._post("/api/learning/route", {"query_class": qc})
            model = str(d.get("model"))
            if model not in correct:
                return 502, {"error": f"operator chose {model!r}; replay data has "
                                      f"{', '.join(MODELS)}"}
            ok = correct[model]
            latency = (time.perf_counter() - t0) * 1000
            self._post("/api/learning/feedback", {
                "area": f"route:{qc}:{model}", "kind": "route_outcome", "bad": not ok,
                "decision_id": d["decision_id"], "latency_ms": round(latency, 3)})
        except Unavailable as e:
            return 503, {"error": str(e)}
        with self._lock:
            self.routed += 1
            self.correct += int(ok)
        return 200, {"query_class": qc, "prompt_sha1": sha1, "model": model,
                     "propensity": d.get("propensity"), "decision_id": d.get("decision_id"),
                     "correct": ok, "latency_ms": round(latency, 3)}


_router: NeuralRouter | None = None
_router_lock = threading.Lock()


def handle(svc: Service, body: object, q: dict[str, str]) -> Answer:
    """The route hook: one router per process, configured from the environment."""
    global _router
    with _router_lock:
        if _router is None:
            _router = NeuralRouter.from_env()
    return _router.route(body)
