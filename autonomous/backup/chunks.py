"""Content-addressed chunk storage: the bottom layer of the one backup engine.

A repository folder holds ``config.json`` (chunking and compression chosen at creation: an
existing repository keeps them, or deduplication would stop working), ``chunks/<2 hex>/<sha256>``
and ``snapshots/`` (see ``backup_manifest``). A chunk's name is the SHA-256 of its plain bytes;
its file is one header byte (``R`` raw, ``Z`` zstandard) and the payload. Chunks whose sample
prefix does not compress below ``incompressible_ratio`` are stored raw without compressing the
rest. Writes go to a temporary name, are fsynced when asked, and renamed into place.

A repository created with a key file is sealed (``backup_crypto``): chunk files are
AES-256-GCM ciphertext of that same header + payload, and chunk names are keyed HMACs of the
plain bytes instead of their SHA-256.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, BinaryIO

import zstandard
from pyfastcdc import FastCDC

from autonomous.backup.crypto import AuthenticationFailed, Sealer, create_key
from autonomous.backup.crypto import register as register_sealer
from autonomous.backup.crypto import sealer_for

__all__ = ["ChunkDamaged", "ChunkStore", "EngineParams", "open_repository", "repo_lock"]

_RAW, _ZSTD = b"R", b"Z"
_FORMAT = 1


@dataclass(frozen=True)
class EngineParams:
    chunk_min_bytes: int
    chunk_avg_bytes: int
    chunk_max_bytes: int
    compression_level: int
    incompressible_ratio: float
    sample_bytes: int
    workers: int
    fsync: bool

    @classmethod
    def from_policy(cls, p: dict[str, Any]) -> EngineParams:
        return cls(**{f: p[f] for f in cls.__dataclass_fields__})


class ChunkDamaged(Exception):
    """A chunk is missing, unreadable, or its bytes no longer hash to its name."""

    def __init__(self, digest: str, problem: str) -> None:
        super().__init__(f"chunk {digest}: {problem}")
        self.digest = digest
        self.problem = problem


class ChunkStore:
    """Put, get and check chunks under ``root/chunks``. Thread-safe."""

    def __init__(self, root: Path, params: EngineParams, sealer: Sealer | None = None) -> None:
        self.root = Path(root)
        self.params = params
        self.sealer = sealer
        self.dir = self.root / "chunks"
        self._known: set[str] | None = None
        self._claimed: set[str] = set()
        self._sound: set[str] = set()  # chunks re-hashed sound by this store (this backup)
        self.rewritten: set[str] = set()  # damaged chunks rewritten from live data
        self._lock = threading.Lock()
        self._local = threading.local()

    # -- chunking --------------------------------------------------------------------------
    def chunker(self) -> FastCDC:
        p = self.params
        return FastCDC(p.chunk_avg_bytes, min_size=p.chunk_min_bytes, max_size=p.chunk_max_bytes)

    def cut(self, stream: BinaryIO) -> Iterator[memoryview]:
        """Content-defined chunks read from ``stream``; each view is valid until the next."""
        for c in self.chunker().cut_stream(stream):
            yield c.data

    # -- addressing ------------------------------------------------------------------------
    def name_of(self, data: bytes | memoryview) -> str:
        """A chunk's name: SHA-256 of its plain bytes (keyed HMAC in a sealed repository)."""
        if self.sealer is not None:
            return self.sealer.name_of(data)
        return hashlib.sha256(data).hexdigest()

    def path_of(self, digest: str) -> Path:
        return self.dir / digest[:2] / digest

    def known(self) -> set[str]:
        """Every chunk name present (listed once, then kept up to date)."""
        with self._lock:
            if self._known is None:
                self._known = {f.name for d in self.dir.glob("??") for f in d.iterdir()
                               if len(f.name) == 64} if self.dir.exists() else set()
            return self._known

    def has(self, digest: str) -> bool:
        return digest in self.known()

    def begin_pass(self) -> None:
        """Forget which chunks were checked: the next backup re-verifies what it references."""
        with self._lock:
            self._sound.clear()
            self.rewritten = set()

    def sound(self, digest: str) -> bool:
        """Present and re-hashing to its name (checked once per store: a backup re-verifies
        every existing chunk it references instead of trusting the name)."""
        with self._lock:
            if digest in self._sound:
                return True
        if not self.has(digest) or self.check(digest) is not None:
            return False
        with self._lock:
            self._sound.add(digest)
        return True

    # -- write -----------------------------------------------------------------------------
    def put(self, data: bytes | memoryview) -> tuple[str, int, bool]:
        """Store a chunk; returns ``(sha256, bytes written, new)``. A sound existing chunk is
        not rewritten (deduplication); a damaged one is rewritten from ``data``, which hashes
        to its name (the repair), and counted in ``rewritten``."""
        digest = self.name_of(data)
        with self._lock:  # claim it: two workers seeing the same chunk check/write it once
            if digest in self._sound or digest in self._claimed:
                return digest, 0, False
            self._claimed.add(digest)
        try:
            existed = self.has(digest)
            if existed and self.check(digest) is None:
                with self._lock:
                    self._sound.add(digest)
                return digest, 0, False
            written = self._write(digest, data)
            with self._lock:
                self._sound.add(digest)
                if existed:
                    self.rewritten.add(digest)
        finally:
            with self._lock:
                self._claimed.discard(digest)
        return digest, written, True

    def _write(self, digest: str, data: bytes | memoryview) -> int:
        payload = self._encode(data)
        if self.sealer is not None:
            payload = self.sealer.seal(digest, payload)
        path = self.path_of(digest)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.parent / f".tmp-{digest[:16]}-{uuid.uuid4().hex[:8]}"
        with open(tmp, "wb") as f:
            f.write(payload)
            if self.params.fsync:
                os.fsync(f.fileno())
        os.replace(tmp, path)
        known = self.known()
        with self._lock:
            known.add(digest)
        return len(payload)

    def _compressor(self) -> zstandard.ZstdCompressor:
        c = getattr(self._local, "c", None)
        if c is None:
            c = self._local.c = zstandard.ZstdCompressor(level=self.params.compression_level)
        return c

    def _encode(self, data: bytes | memoryview) -> bytes:
        p, z = self.params, self._compressor()
        n = len(data)
        if n > p.sample_bytes:
            sample = z.compress(data[:p.sample_bytes])
            if len(sample) > p.incompressible_ratio * p.sample_bytes:
                return _RAW + bytes(data)
        packed = z.compress(data)
        if len(packed) > p.incompressible_ratio * n:
            return _RAW + bytes(data)
        return _ZSTD + packed

    # -- read ------------------------------------------------------------------------------
    def get(self, digest: str) -> bytes:
        """The chunk's plain bytes, checked against its name; raises ChunkDamaged."""
        try:
            raw = self.path_of(digest).read_bytes()
        except FileNotFoundError:
            raise ChunkDamaged(digest, "missing") from None
        except OSError as exc:
            raise ChunkDamaged(digest, f"unreadable: {exc}") from None
        if self.sealer is not None:
            try:
                raw = self.sealer.open(digest, raw)
            except AuthenticationFailed:
                raise ChunkDamaged(digest, "authentication failed (tampered, truncated or "
                                   "sealed with another key)") from None
        data = self._decode(digest, raw)
        if self.name_of(data) != digest:
            raise ChunkDamaged(digest, "content does not match its name (corrupted)")
        return data

    def _decode(self, digest: str, raw: bytes) -> bytes:
        kind, payload = raw[:1], raw[1:]
        if kind == _RAW:
            return payload
        if kind == _ZSTD:
            try:
                d = getattr(self._local, "d", None)
                if d is None:
                    d = self._local.d = zstandard.ZstdDecompressor()
                return d.decompress(payload)
            except zstandard.ZstdError as exc:
                raise ChunkDamaged(digest, f"zstd stream damaged: {exc}") from None
        raise ChunkDamaged(digest, f"unknown chunk header {kind!r}")

    def check(self, digest: str) -> str | None:
        """None when the chunk is sound, else what is wrong with it."""
        try:
            self.get(digest)
        except ChunkDamaged as exc:
            return exc.problem
        return None

    def delete(self, digest: str) -> int:
        """Remove a chunk; returns the bytes freed."""
        path = self.path_of(digest)
        try:
            size = path.stat().st_size
            path.unlink()
        except FileNotFoundError:
            return 0
        known = self.known()
        with self._lock:
            known.discard(digest)
        return size


def open_repository(root: Path, params: EngineParams, *, key_file: Path | None = None
                    ) -> ChunkStore:
    """Open (or create) a repository; an existing one keeps its own chunking parameters.

    ``key_file``: create the repository sealed with that key (created 0600 when missing), or
    the key to open an existing sealed one with. An existing plain repository stays plain:
    encrypting it in place would rewrite every chunk, so a plan that turns encryption on
    needs a new repository folder (ValueError says so)."""
    root = Path(root)
    cfg = root / "config.json"
    sealer: Sealer | None = None
    if cfg.exists():
        saved = json.loads(cfg.read_text())
        if saved.get("format") != _FORMAT:
            raise ValueError(f"{cfg}: repository format {saved.get('format')!r} is not "
                             f"{_FORMAT}: this engine cannot read it")
        chunking = {k: saved[k] for k in ("chunk_min_bytes", "chunk_avg_bytes",
                                          "chunk_max_bytes")}
        params = EngineParams(**{**asdict(params), **chunking})
        if saved.get("encryption"):
            sealer = sealer_for(root, key_file)
        elif key_file is not None:
            raise ValueError(f"{root}: this repository was created unencrypted; an encrypted "
                             "plan needs a new (empty) repository folder")
    else:
        # owner-only whatever the umask (an operator mounted into a host app keeps the host's),
        # so no one else reads a repository outside the data dir; a folder that already
        # exists (a mount point) keeps its modes, the chunks and snapshots in it do not
        root.mkdir(mode=0o700, parents=True, exist_ok=True)  # parents: the default mode
        for d in (root / "chunks", root / "snapshots"):
            d.mkdir(mode=0o700, exist_ok=True)
        body: dict[str, Any] = {"format": _FORMAT, **{k: getattr(params, k) for k in (
            "chunk_min_bytes", "chunk_avg_bytes", "chunk_max_bytes")}}
        if key_file is not None:
            from autonomous.backup.crypto import load_key

            key = load_key(key_file) if Path(key_file).exists() else create_key(key_file)
            sealer = Sealer(key)
            body["encryption"] = sealer.config(Path(key_file).absolute())
            register_sealer(root, sealer)
        tmp = root / ".config.json.tmp"
        tmp.write_text(json.dumps(body, indent=2))
        os.replace(tmp, cfg)
    return ChunkStore(root, params, sealer)


@contextmanager
def repo_lock(root: Path, *, exclusive: bool) -> Iterator[None]:
    """Advisory lock on the repository (``flock``): backups and prunes take it exclusively,
    so a prune never deletes chunks of a backup still being written; reads share it."""
    root = Path(root)
    root.mkdir(mode=0o700, parents=True, exist_ok=True)
    with open(root / "lock", "a+b") as f:
        fcntl.flock(f.fileno(), fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
        try:
            yield
        finally:
            fcntl.flock(f.fileno(), fcntl.LOCK_UN)
