"""Backup engine benchmark, side by side with restic on the same tree in the same run.

Builds a mixed tree (default 1 GiB; ``--quick`` 200 MiB): unique random binaries
(incompressible), duplicated binaries, generated service logs (compressible), and edited
copies of binaries (a few bytes inserted in the middle: content-defined chunking finds the
shared parts). Then, for ATLAS and for restic: full backup, a second backup after a change (an
"incremental" for ATLAS; restic always uses its parent), restore; prints throughput (MiB/s of
the tree), the dedup ratio (tree bytes / unique chunk bytes before compression) and the stored
size. Needs the Debian package ``restic`` for the peer column.

    python3 bench/bench_backup.py [--quick] [--size-mib N] [--keep]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from autonomous.backup.chunks import EngineParams
from autonomous.resilience.disaster_recovery import DisasterRecovery
from autonomous.resources.loader import load_tree
from bench._common import write_result  # noqa: E402

MIB = 1 << 20


def build_tree(root: Path, size_mib: int, seed: int = 7) -> int:
    """The mixed tree; returns its size in bytes."""
    rng = random.Random(seed)
    unit = max(1, size_mib // 20)  # 20 units: 8 random, 2 dup, 6 logs, 2+2 edited
    (root / "bin").mkdir(parents=True)
    (root / "logs").mkdir()
    (root / "edited").mkdir()
    for i in range(8):
        (root / "bin" / f"blob{i}.bin").write_bytes(os.urandom(unit * MIB))
    for i in range(2):
        shutil.copy(root / "bin" / f"blob{i}.bin", root / "bin" / f"dup{i}.bin")
    for i in range(6):
        _write_log(root / "logs" / f"service{i}.log", unit * MIB, rng)
    for i in range(2):
        data = os.urandom(unit * MIB)
        (root / "edited" / f"v1-{i}.bin").write_bytes(data)
        mid = len(data) // 2
        (root / "edited" / f"v2-{i}.bin").write_bytes(data[:mid] + b"INSERTED" * 16 + data[mid:])
    return sum(p.stat().st_size for p in root.rglob("*") if p.is_file())


def _write_log(path: Path, size: int, rng: random.Random) -> None:
    paths = ["/api/move", "/api/heartbeat", "/api/plan", "/health", "/metrics", "/api/vision"]
    levels = ["INFO"] * 8 + ["WARN", "ERROR"]
    with open(path, "w") as f:
        written, i = 0, 0
        while written < size:
            lines = []
            for _ in range(2000):
                i += 1
                lines.append(f"2025-01-01T{i // 3600 % 24:02d}:{i // 60 % 60:02d}:{i % 60:02d}."
                             f"{rng.randrange(1000):03d}Z {rng.choice(levels)} nexus "
                             f"req={rng.getrandbits(48):012x} path={rng.choice(paths)} "
                             f"status={rng.choice((200, 200, 200, 201, 404, 503))} "
                             f"latency_ms={rng.randrange(1, 900)}\n")
            chunk = "".join(lines)
            f.write(chunk)
            written += len(chunk)


def change_tree(root: Path) -> None:
    """What changes between the first and the second backup: logs grow, one blob is edited."""
    for log in sorted((root / "logs").glob("*.log"))[:2]:
        with open(log, "a") as f:
            f.write("2025-01-02T00:00:00.000Z INFO nexus appended after the first backup\n" * 500)
    blob = root / "bin" / "blob7.bin"
    with open(blob, "r+b") as f:
        f.seek(blob.stat().st_size // 3)
        f.write(os.urandom(MIB))


def timed(fn, *a, **kw):
    t0 = time.perf_counter()
    out = fn(*a, **kw)
    return out, time.perf_counter() - t0


def atlas(tree: Path, work: Path, total: int, sealed: bool = True) -> dict:
    pol = load_tree(Path(__file__).resolve().parents[1]).tree.policies["governed"]
    params = EngineParams.from_policy(pol["resilience"]["backup"])
    key = work / "keys" / "bench.key" if sealed else None  # restic always encrypts
    dr = DisasterRecovery(work / "atlas-repo", params, root=tree.parent, data_dir=work,
                          key_file=key)
    spec = {"paths": [tree.name], "exclude": []}
    full, t_full = timed(dr.create_full_backup, "bench", spec)
    _, t_inc1 = timed(dr.create_incremental_backup, "bench", spec)  # nothing changed
    change_tree(tree)
    inc, t_inc = timed(dr.create_incremental_backup, "bench", spec)  # after a change
    restored, t_restore = timed(dr.restore_from_disaster, inc["id"], work / "atlas-restore")
    stored = sum(p.stat().st_size for p in (work / "atlas-repo").rglob("*") if p.is_file())
    unique = full["stats"]["new_bytes"]
    return {"full_s": t_full, "inc1_s": t_inc1, "inc_s": t_inc, "restore_s": t_restore,
            "dedup": full["stats"]["bytes"] / unique, "stored": stored,
            "restored_bytes": restored["bytes"], "params": params, "sealed": sealed}


def restic(tree: Path, work: Path) -> dict | None:
    if shutil.which("restic") is None:
        return None
    env = {**os.environ, "RESTIC_PASSWORD": "bench", "RESTIC_REPOSITORY": str(work / "rr"),
           "RESTIC_CACHE_DIR": str(work / "restic-cache")}

    def run(*args: str) -> str:
        return subprocess.run(["restic", *args], env=env, check=True, capture_output=True,
                              text=True).stdout

    run("init", "--repository-version", "2")
    _, t_full = timed(run, "backup", str(tree))
    _, t_inc1 = timed(run, "backup", str(tree))  # nothing changed (restic uses the parent)
    unique = _restic_unique_bytes(tree, work, env)
    change_tree(tree)
    _, t_inc = timed(run, "backup", str(tree))
    _, t_restore = timed(run, "restore", "latest", "--target", str(work / "restic-restore"))
    stored = sum(p.stat().st_size for p in (work / "rr").rglob("*") if p.is_file())
    logical = sum(p.stat().st_size for p in tree.rglob("*") if p.is_file())
    return {"full_s": t_full, "inc1_s": t_inc1, "inc_s": t_inc, "restore_s": t_restore,
            "stored": stored, "dedup": logical / unique}


def _restic_unique_bytes(tree: Path, work: Path, env: dict) -> int:
    """Unique plaintext bytes restic keeps: a second repository without compression, where
    ``stats --mode raw-data`` is the deduplicated plaintext size (restic 0.14 reports no
    uncompressed size for compressed repositories). Not timed."""
    env2 = {**env, "RESTIC_REPOSITORY": str(work / "rr-plain")}
    for args in (["init", "--repository-version", "2"],
                 ["backup", "--compression", "off", str(tree)]):
        subprocess.run(["restic", *args], env=env2, check=True, capture_output=True)
    out = subprocess.run(["restic", "stats", "--json", "--mode", "raw-data"], env=env2,
                         check=True, capture_output=True, text=True).stdout
    shutil.rmtree(work / "rr-plain", ignore_errors=True)
    return int(json.loads(out)["total_size"])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="200 MiB tree")
    ap.add_argument("--size-mib", type=int, default=None)
    ap.add_argument("--keep", action="store_true", help="keep the work folder")
    ap.add_argument("--plain", action="store_true",
                    help="ATLAS without encryption (default: sealed, AES-256-GCM, as restic "
                    "always encrypts)")
    args = ap.parse_args()
    size = args.size_mib or (200 if args.quick else 1024)
    work = Path(tempfile.mkdtemp(prefix="atlas-bench-backup-"))
    try:
        total = build_tree(work / "tree_a", size)
        shutil.copytree(work / "tree_a", work / "tree_b")  # restic gets its own, same content
        a = atlas(work / "tree_a", work, total, sealed=not args.plain)
        r = restic(work / "tree_b", work)
        rows = report(total, a, r)
        write_result("bench_backup", {k: round(x, 3) for k, x, _ in rows},
                     {k: None if y is None else round(y, 3) for k, _, y in rows},
                     {"quick": args.quick, "tree_mib": round(total / MIB), "sealed": a["sealed"],
                      "peer": "restic" if r else "restic not installed"})
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    return 0


def report(total: int, a: dict, r: dict | None) -> list[tuple[str, float, float | None]]:
    mib = total / MIB
    p = a["params"]
    print(f"tree: {mib:.0f} MiB (random, duplicated, logs, edited copies); 2 cores")
    print(f"atlas chunking: avg {p.chunk_avg_bytes // 1024} KiB, zstd level "
          f"{p.compression_level}, {p.workers} workers, fsync {p.fsync}")
    print("atlas repository: " + ("sealed (AES-256-GCM, keyed chunk names)" if a["sealed"]
                                  else "plain (--plain)") + "; restic: encrypted (AES-256 + "
          "Poly1305), as always")
    print("throughput = tree MiB / wall seconds")
    rows = [("full backup MiB/s", mib / a["full_s"], r and mib / r["full_s"]),
            ("incremental, unchanged", mib / a["inc1_s"], r and mib / r["inc1_s"]),
            ("incremental, changed", mib / a["inc_s"], r and mib / r["inc_s"]),
            ("restore MiB/s", mib / a["restore_s"], r and mib / r["restore_s"]),
            ("dedup ratio", a["dedup"], r and r["dedup"]),
            ("stored MiB", a["stored"] / MIB, r and r["stored"] / MIB)]
    keys = ("full_mib_per_s", "incremental_unchanged_mib_per_s", "incremental_changed_mib_per_s",
            "restore_mib_per_s", "dedup_ratio", "stored_mib")
    print(f"{'':24}{'atlas':>12}{'restic':>12}{'atlas/restic':>14}")
    for name, x, y in rows:
        ratio = f"{x / y:>14.2f}" if y else f"{'n/a':>14}"
        ys = f"{y:>12.2f}" if y else f"{'n/a':>12}"
        print(f"{name:24}{x:>12.2f}{ys}{ratio}")
    if r is None:
        print("restic not installed (apt-get install -y restic): peer column is n/a")
    return [(k, x, y) for k, (_, x, y) in zip(keys, rows)]


if __name__ == "__main__":
    sys.exit(main())
