"""The patch under every learned proposal: one scalar of a git-tracked YAML file.

A patch names the file (relative to the operator's root), the key path, the value it was
computed against and the new value. Applying edits only that scalar's characters (the rest of
the file — comments, order, quoting — stays byte for byte), refuses when the value in force is
no longer the one the patch was computed against, and in a git checkout commits the file with
argv ``git`` and a message naming the proposal. The inverse patch is the revert.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

Key = str | int


class PatchConflict(Exception):
    """The file no longer holds the value the patch was computed against."""


@dataclass(frozen=True)
class Patch:
    file: str
    path: tuple[Key, ...]
    old: Any
    new: Any

    def inverse(self) -> "Patch":
        return Patch(self.file, self.path, self.new, self.old)


def _value_node(root: Node, path: tuple[Key, ...], file: str) -> ScalarNode:
    node = root
    for key in path:
        nxt: Node | None = None
        if isinstance(node, MappingNode) and isinstance(key, str):
            nxt = next((v for k, v in node.value if isinstance(k, ScalarNode) and k.value == key), None)
        elif isinstance(node, SequenceNode) and isinstance(key, int) and 0 <= key < len(node.value):
            nxt = node.value[key]
        if nxt is None:
            raise PatchConflict(f"{file}: {'.'.join(map(str, path))}: not present")
        node = nxt
    if not isinstance(node, ScalarNode):
        raise PatchConflict(f"{file}:{node.start_mark.line + 1}: {'.'.join(map(str, path))}: not a scalar")
    return node


def _dump_scalar(value: Any) -> str:
    """One-line YAML for a scalar (safe_dump ends a bare scalar document with ``...``)."""
    text = yaml.safe_dump(value, default_flow_style=True, width=1 << 30).strip()
    return text.removesuffix("...").strip()


def apply_patch(root: Path, patch: Patch) -> str:
    """Write the patch into ``root / patch.file``; returns the new text."""
    target = root / patch.file
    text = target.read_text(encoding="utf-8")
    doc = yaml.compose(text, Loader=yaml.SafeLoader)
    if doc is None:
        raise PatchConflict(f"{patch.file}: empty document")
    node = _value_node(doc, patch.path, patch.file)
    current = yaml.safe_load(text[node.start_mark.index:node.end_mark.index] or "null")
    if current != patch.old:
        raise PatchConflict(
            f"{patch.file}:{node.start_mark.line + 1}: {'.'.join(map(str, patch.path))}: "
            f"in force {current!r}, patch computed against {patch.old!r}"
        )
    new_text = text[:node.start_mark.index] + _dump_scalar(patch.new) + text[node.end_mark.index:]
    if yaml.safe_load(new_text) is None:
        raise PatchConflict(f"{patch.file}: patch would empty the document")
    target.write_text(new_text, encoding="utf-8")
    return new_text


def commit_if_checkout(root: Path, file: str, message: str) -> str | None:
    """Commit ``file`` when ``root`` is a git checkout; returns the commit id or None."""
    probe = subprocess.run(
        ["git", "-C", str(root), "rev-parse", "--is-inside-work-tree"],
        capture_output=True, text=True, check=False,
    )
    if probe.returncode != 0 or probe.stdout.strip() != "true":
        return None
    subprocess.run(["git", "-C", str(root), "add", "--", file], check=True, capture_output=True)
    subprocess.run(
        ["git", "-C", str(root), "commit", "-q", "-m", message, "--", file],
        check=True, capture_output=True,
    )
    head = subprocess.run(
        ["git", "-C", str(root), "rev-parse", "HEAD"], check=True, capture_output=True, text=True
    )
    return head.stdout.strip()
