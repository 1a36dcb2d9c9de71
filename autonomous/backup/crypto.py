"""Encryption and authentication of a backup repository (for copies that leave the host).

A repository created with a key file is *sealed*: every chunk file and every manifest is
AES-256-GCM ciphertext (a random 96-bit nonce per object; the object's name is the associated
data, so a chunk moved under another name, a flipped byte or a swapped manifest fails
authentication), and chunk names are HMAC-SHA256 of the plain bytes under a key derived from
the repository key instead of their bare SHA-256 (so the names in a stolen repository do not
confirm that it holds a known file). ``config.json`` records the algorithm and the key's id
(never the key) and where the key file was.

The key: 32 random bytes, hex, in a file the operator creates with mode 0600 (its folder
0700) on first use — ``<data_dir>/keys/backup-<plan>.key``. **Recovery procedure**: a sealed
repository cannot be read without its key, so copy the key file to a place that does not share
the repository's fate (a password manager, a printed copy of its 64 hex digits, another
host); on a new host put it back (any path, mode 0600) and point to it with
``ATLAS_BACKUP_KEY_FILE`` or ``--key-file`` when restoring. A wrong key is refused by its id
before anything is read.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
import threading
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

__all__ = ["ALGORITHM", "AuthenticationFailed", "Sealer", "create_key", "load_key",
           "plan_key_file", "register", "sealer_for"]

ALGORITHM = "AES-256-GCM"
_SEALED = b"E"
_NONCE = 12
_registry: dict[Path, Sealer] = {}
_registry_lock = threading.Lock()


class AuthenticationFailed(Exception):
    """Ciphertext that does not authenticate: tampered, truncated, or another key."""


def create_key(path: Path) -> bytes:
    """Write a new random key to ``path`` (0600, folder 0700); refuse to overwrite one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    key = secrets.token_bytes(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(key.hex() + "\n")
    return key


def load_key(path: Path) -> bytes:
    """Read a key file; ValueError saying what is wrong with it."""
    path = Path(path)
    try:
        text = path.read_text().strip()
    except FileNotFoundError:
        raise ValueError(f"{path}: backup key file not found; restore it from your key copy "
                         "(see the recovery procedure) or set ATLAS_BACKUP_KEY_FILE") from None
    if path.stat().st_mode & 0o077:
        raise ValueError(f"{path}: backup key file is readable by others; chmod 600 it")
    try:
        key = bytes.fromhex(text)
    except ValueError:
        raise ValueError(f"{path}: not a backup key (64 hex digits expected)") from None
    if len(key) != 32:
        raise ValueError(f"{path}: not a backup key (64 hex digits expected)")
    return key


class Sealer:
    """Names, seals and opens the objects of one sealed repository."""

    def __init__(self, key: bytes) -> None:
        self._aead = AESGCM(key)
        self._name_key = hmac.new(key, b"atlas-backup chunk names", hashlib.sha256).digest()
        self.key_id = hashlib.sha256(b"atlas-backup key id" + key).hexdigest()[:16]

    def name_of(self, data: bytes | memoryview) -> str:
        return hmac.new(self._name_key, data, hashlib.sha256).hexdigest()

    def seal(self, name: str, plain: bytes) -> bytes:
        nonce = secrets.token_bytes(_NONCE)
        return _SEALED + nonce + self._aead.encrypt(nonce, plain, name.encode())

    def open(self, name: str, blob: bytes) -> bytes:
        if blob[:1] != _SEALED or len(blob) < 1 + _NONCE + 16:
            raise AuthenticationFailed(f"{name}: not a sealed object")
        try:
            return self._aead.decrypt(blob[1:1 + _NONCE], blob[1 + _NONCE:], name.encode())
        except InvalidTag:
            raise AuthenticationFailed(f"{name}: authentication failed (tampered, truncated "
                                       "or sealed with another key)") from None

    def config(self, key_file: Path) -> dict[str, Any]:
        return {"algorithm": ALGORITHM, "key_id": self.key_id, "key_file": str(key_file)}


def register(repo: Path, sealer: Sealer | None) -> None:
    with _registry_lock:
        if sealer is None:
            _registry.pop(Path(repo).absolute(), None)
        else:
            _registry[Path(repo).absolute()] = sealer


def sealer_for(repo: Path, key_file: Path | None = None) -> Sealer | None:
    """The Sealer of ``repo`` (None for a plain repository). A sealed repository opened for
    the first time in this process loads its key from ``key_file`` (only that one, when
    given), else ``ATLAS_BACKUP_KEY_FILE``, else the key file recorded in its config; the
    key's id must match. Raises ValueError when no matching key can be loaded."""
    repo = Path(repo).absolute()
    with _registry_lock:
        found = _registry.get(repo)
    if found is not None:
        return found
    cfg_path = repo / "config.json"
    if not cfg_path.exists():
        return None
    enc = json.loads(cfg_path.read_text()).get("encryption")
    if not enc:
        return None
    if enc.get("algorithm") != ALGORITHM:
        raise ValueError(f"{cfg_path}: encryption {enc.get('algorithm')!r} is not {ALGORITHM}")
    # an explicit key is the only one tried; else the environment's, else the recorded one
    candidates = [key_file] if key_file else [
        p for p in (os.environ.get("ATLAS_BACKUP_KEY_FILE"), enc.get("key_file")) if p]
    problems = []
    for cand in candidates:
        try:
            sealer = Sealer(load_key(Path(cand)))
        except ValueError as exc:
            problems.append(str(exc))
            continue
        if sealer.key_id != enc["key_id"]:
            problems.append(f"{cand}: key id {sealer.key_id} is not this repository's "
                            f"({enc['key_id']})")
            continue
        register(repo, sealer)
        return sealer
    raise ValueError(f"{repo}: encrypted repository and no matching key: "
                     + ("; ".join(problems) or "no key file given (ATLAS_BACKUP_KEY_FILE)"))


def plan_key_file(plan: str, spec: dict[str, Any], repo: Path, data_dir: Path) -> Path | None:
    """The key file a BackupPlan's repository is sealed with, or None for a plain one.
    ``encryption: auto`` seals a repository outside the data dir."""
    mode = spec.get("encryption", "auto")
    data_dir = Path(data_dir).absolute()
    outside = not Path(repo).absolute().is_relative_to(data_dir)
    if mode == "off" or (mode == "auto" and not outside):
        return None
    raw = spec.get("key_file") or f"{{data_dir}}/keys/backup-{plan}.key"
    return Path(raw.replace("{data_dir}", str(data_dir))).absolute()
