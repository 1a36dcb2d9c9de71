"""YAML loading that remembers where every value came from.

``load_documents(text, file)`` returns one :class:`Document` per YAML document, each with
its data and a map from field path (tuple of keys / indexes) to 1-based line number.
Syntax errors and duplicate keys become :class:`~autonomous.core.errors.Problem` values
instead of exceptions, so a caller can report every problem in every file at once.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from autonomous.core.errors import Problem

__all__ = ["Document", "ParseLimits", "format_path", "line_for", "load_documents"]

Path_ = tuple[str | int, ...]

# libyaml's parser builds the same nodes (with line marks) several times faster; the pure-Python
# loader is the fallback where PyYAML was built without it
_COMPOSER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def _compose(text: str) -> list[Node | None]:
    """Nodes of every document. On a syntax error the pure-Python parser runs again for its
    message, which names what libyaml's leaves out (the undefined alias, the bad character)."""
    try:
        return list(yaml.compose_all(text, Loader=_COMPOSER))
    except yaml.YAMLError:
        if _COMPOSER is yaml.SafeLoader:
            raise
        return list(yaml.compose_all(text, Loader=yaml.SafeLoader))


@dataclass(frozen=True)
class ParseLimits:
    """Bounds on one file's parse: an alias bomb, a huge file or deep nesting becomes a
    problem with file:line instead of minutes of CPU, gigabytes of memory or RecursionError."""

    max_file_bytes: int = 4 * 1024 * 1024
    max_nodes: int = 200_000  # values built, aliases expanded included
    max_alias_expansions: int = 10_000
    max_depth: int = 100


class _LimitExceeded(Exception):
    def __init__(self, line: int, message: str) -> None:
        super().__init__(message)
        self.line, self.message = line, message


@dataclass
class Document:
    file: str
    index: int
    line: int
    data: Any
    lines: dict[Path_, int] = field(default_factory=dict)


def format_path(path: Path_) -> str:
    out = ""
    for p in path:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out


def line_for(doc: Document, path: Path_) -> int:
    """Line of ``path`` or of its nearest ancestor present in the document."""
    p = tuple(path)
    while p:
        if p in doc.lines:
            return doc.lines[p]
        p = p[:-1]
    return doc.line


class _Builder:
    def __init__(self, file: str, problems: list[Problem], limits: ParseLimits) -> None:
        self.file = file
        self.problems = problems
        self.limits = limits
        self.lines: dict[Path_, int] = {}
        self._scalar = yaml.SafeLoader("")  # used only for scalar resolution/construction
        self._nodes = 0
        self._expansions = 0
        self._seen: set[int] = set()

    def _count(self, node: Node, path: Path_) -> None:
        line = node.start_mark.line + 1
        self._nodes += 1
        if self._nodes > self.limits.max_nodes:
            raise _LimitExceeded(line, f"more than {self.limits.max_nodes} values (aliases "
                                       "expanded); refusing the file (an alias bomb?)")
        if len(path) > self.limits.max_depth:
            raise _LimitExceeded(line, f"nested deeper than {self.limits.max_depth} levels")
        if isinstance(node, (MappingNode, SequenceNode)):
            if id(node) in self._seen:
                self._expansions += 1
                if self._expansions > self.limits.max_alias_expansions:
                    raise _LimitExceeded(line, f"more than {self.limits.max_alias_expansions} "
                                               "alias expansions; refusing the file")
            self._seen.add(id(node))

    def build(self, node: Node, path: Path_) -> Any:
        self._count(node, path)
        self.lines[path] = node.start_mark.line + 1
        if isinstance(node, MappingNode):
            out: dict[Any, Any] = {}
            self._flatten_merge(node)
            for key_node, value_node in node.value:
                key = self.build(key_node, path + ("<key>",))
                self.lines.pop(path + ("<key>",), None)
                if isinstance(key, (str, int)):
                    step: str | int = key
                else:
                    step = str(key)
                if not isinstance(key, (str, int, float, bool)) and key is not None:
                    self.problems.append(Problem(self.file, key_node.start_mark.line + 1,
                                                 format_path(path), "mapping keys must be scalars"))
                    continue
                if key in out:
                    self.problems.append(Problem(
                        self.file, key_node.start_mark.line + 1, format_path(path + (str(key),)),
                        f"duplicate key {key!r} (first defined on line "
                        f"{self.lines.get(path + (step,), '?')}); remove one of them"))
                    continue
                out[key] = self.build(value_node, path + (step,))
                self.lines[path + (step,)] = key_node.start_mark.line + 1
            return out
        if isinstance(node, SequenceNode):
            return [self.build(n, path + (i,)) for i, n in enumerate(node.value)]
        assert isinstance(node, ScalarNode)
        return self._scalar.construct_object(node, deep=True)

    def _flatten_merge(self, node: MappingNode) -> None:
        self._scalar.flatten_mapping(node)


_BRACKETS = re.compile(r"[\[\]{}]")
_INDENT = re.compile(r"^[ \t?:-]*", re.M)


def _depth_bound(text: str) -> int:
    """An upper bound of the nesting depth: running bracket depth (quotes ignored, so it can
    only over-count) plus the widest indentation (each block level needs a column)."""
    depth = deepest = 0
    for m in _BRACKETS.finditer(text):
        depth += 1 if m.group() in "[{" else -1
        deepest = max(deepest, depth)
    indent = max((len(m.group()) for m in _INDENT.finditer(text)), default=0)
    return deepest + indent + 1


def _depth_problem(text: str, file: str, limit: int) -> Problem | None:
    """The first line nested deeper than ``limit`` flow/block levels, checked on the token
    stream before composing (the composer recurses once per level)."""
    if _depth_bound(text) <= limit:
        return None  # cannot be that deep: skip the token scan (it costs as much as a parse)
    try:
        return _first_too_deep(yaml.scan(text, Loader=_COMPOSER), file, limit)
    except yaml.YAMLError:
        # libyaml scans ahead in batches and, from PyYAML 6.0.4, stops at its own depth;
        # without libyaml, that scan was already the pure-Python one below
        if _COMPOSER is yaml.SafeLoader:
            return None
    try:  # the pure-Python scanner goes token by token without recursing: it finds the line
        return _first_too_deep(yaml.scan(text, Loader=yaml.SafeLoader), file, limit)
    except yaml.YAMLError:
        return None  # a syntax error before the limit: the composer reports it with its line


def _first_too_deep(tokens: Iterator[yaml.Token], file: str, limit: int) -> Problem | None:
    depth = 0
    for tok in tokens:
        if isinstance(tok, (yaml.BlockMappingStartToken, yaml.BlockSequenceStartToken,
                            yaml.FlowMappingStartToken, yaml.FlowSequenceStartToken)):
            depth += 1
            if depth > limit:
                return Problem(file, tok.start_mark.line + 1, "",
                               f"nested deeper than {limit} levels")
        elif isinstance(tok, (yaml.BlockEndToken, yaml.FlowMappingEndToken,
                              yaml.FlowSequenceEndToken)):
            depth -= 1
    return None


def load_documents(text: str, file: str, limits: ParseLimits | None = None
                   ) -> tuple[list[Document], list[Problem]]:
    """Parse every document in ``text`` within ``limits``; never raises on bad YAML."""
    limits = limits or ParseLimits()
    problems: list[Problem] = []
    docs: list[Document] = []
    try:
        deep = _depth_problem(text, file, limits.max_depth)
        if deep is not None:
            return [], [deep]
        nodes = _compose(text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else 0
        msg = f"YAML syntax error: {exc.problem or exc.context}"
        if exc.context and exc.problem:
            msg += f" ({exc.context})"
        return [], [Problem(file, line, "", msg)]
    except yaml.YAMLError as exc:
        return [], [Problem(file, 0, "", f"YAML error: {exc}")]
    for i, node in enumerate(nodes):
        if node is None:
            continue
        b = _Builder(file, problems, limits)
        try:
            data = b.build(node, ())
        except _LimitExceeded as exc:
            problems.append(Problem(file, exc.line, "", exc.message))
            continue
        except yaml.YAMLError as exc:
            problems.append(Problem(file, node.start_mark.line + 1, "", f"YAML error: {exc}"))
            continue
        if data is None:
            continue
        docs.append(Document(file, i, node.start_mark.line + 1, data, b.lines))
    return docs, problems
