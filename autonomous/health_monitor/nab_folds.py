"""Cross-validation over NAB categories: leave-one-category-out and its nested form.

A *candidate* is one detector setting's detections (0/1 per row) on every file; a
*procedure* is how a setting is chosen from a set of candidates (a grid) on some categories:
a subset of the candidates, a selection rule (``nab.RULES``) and whether each candidate is
judged with its grid neighbours (``smooth``). ``Table`` holds the raw NAB
score of every candidate on every file for one profile, so every choice below is arithmetic
on it (no re-scoring).

* ``loco(table, procedure, cats)``: for each category, the procedure picks a candidate on the
  other categories; the figure is that candidate's score on the held-out one.
* ``nested(table, procedures, cats)``: for each held-out category, the *procedure itself*
  (grid and rule) is chosen by an inner leave-one-category-out on the other categories only
  (best inner mean; ties: the first procedure listed), then applied to those categories and
  scored on the held-out one. Nothing about the held-out category reaches any choice: this is
  the figure that cannot flatter a procedure picked after seeing LOCO results.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from autonomous.health_monitor.nab import PROFILES, RULES, Scorer, category

__all__ = ["Fold", "Procedure", "Table", "fold_mean", "loco", "nested", "raw_row"]


@dataclass(frozen=True)
class Procedure:
    """A way of choosing a setting: which candidates (``members``, indices) and which rule.

    ``smooth``: each member is judged by the mean of its own and its grid neighbours' scores
    (``Table.neighbours``, only those among the members): the pick is the centre of a good
    region of the grid rather than its highest point, which a few files can make.
    """

    name: str
    members: tuple[int, ...]
    rule: str
    smooth: bool = False

    def __post_init__(self) -> None:
        if self.rule not in RULES:
            raise ValueError(f"procedure {self.name}: rule {self.rule!r}: one of {RULES}")
        if not self.members:
            raise ValueError(f"procedure {self.name}: no candidates")


@dataclass(frozen=True)
class Fold:
    """One held-out category: the procedure used, the candidate it picked, the score there."""

    held_out: str
    procedure: str
    candidate: int
    score: float
    inner: dict[str, float]  # inner LOCO mean of every procedure (nested only)


class Table:
    """Raw NAB score of every candidate on every file (one profile), by category."""

    def __init__(self, sc: Scorer, candidates: Sequence[dict[str, np.ndarray]],
                 keys: Sequence[str], profile: str,
                 neighbours: Sequence[Sequence[int]] | None = None,
                 raw: np.ndarray | None = None) -> None:
        """``raw`` (candidates × categories, from ``raw_rows``) instead of scoring
        ``candidates`` here: many candidates need not be held in memory at once."""
        self.profile = profile
        self.cats = sorted({category(k) for k in keys})
        cols = {c: [k for k in keys if category(k) == c] for c in self.cats}
        # per category: the summed raw score of each candidate over the category's files
        self.raw = raw if raw is not None else np.array(
            [raw_row(sc, run, cols, profile) for run in candidates])
        # per candidate: itself and the candidates one grid step away (smoothed procedures)
        self.neighbours = [tuple(n) for n in neighbours] if neighbours is not None else [
            (i,) for i in range(len(self.raw))]
        a_tp, a_fn, _ = PROFILES[profile]
        n_win = np.array([sum(len(sc.weights[k].windows) for k in cols[c]) for c in self.cats])
        self.null, self.span = -a_fn * n_win, (a_tp + a_fn) * n_win

    def _cols(self, cats: Sequence[str]) -> list[int]:
        return [self.cats.index(c) for c in cats]

    def scores(self, members: Sequence[int], cats: Sequence[str]) -> np.ndarray:
        """Normalised score (0-100) of each member on each category: (members, cats)."""
        j = self._cols(cats)
        return 100.0 * (self.raw[np.ix_(list(members), j)] - self.null[j]) / self.span[j]

    def pooled(self, member: int, cats: Sequence[str]) -> float:
        """Normalised score of one candidate over the files of ``cats`` together."""
        j = self._cols(cats)
        return float(100.0 * (self.raw[member, j].sum() - self.null[j].sum())
                     / self.span[j].sum())

    def pick(self, proc: Procedure, cats: Sequence[str]) -> int:
        """The candidate ``proc`` chooses on ``cats`` (ties: the first member)."""
        members = list(proc.members)
        j = self._cols(cats)
        per = (self.raw[:, j].sum(axis=1, keepdims=True) if proc.rule == "pooled"
               else 100.0 * (self.raw[:, j] - self.null[j]) / self.span[j])
        if proc.smooth:
            inside = set(members)
            per = np.array([per[[k for k in self.neighbours[i] if k in inside]].mean(axis=0)
                            for i in members])
        else:
            per = per[members]
        marks = per.min(axis=1) if proc.rule == "maximin" else per.mean(axis=1)
        return members[int(np.argmax(marks))]


def raw_row(sc: Scorer, run: dict[str, np.ndarray], cols: dict[str, list[str]],
            profile: str) -> list[float]:
    """One candidate's summed raw score per category (``cols``: category → its files)."""
    return [sum(sc.file_raw(run, k, profile) for k in ks) for ks in cols.values()]


def loco(table: Table, proc: Procedure, cats: Sequence[str] | None = None) -> list[Fold]:
    """Leave-one-category-out of ``proc`` over ``cats`` (default: all of the table's)."""
    cats = list(table.cats if cats is None else cats)
    folds = []
    for c in cats:
        i = table.pick(proc, [o for o in cats if o != c])
        folds.append(Fold(c, proc.name, i, float(table.scores([i], [c])[0, 0]), {}))
    return folds


def fold_mean(folds: Sequence[Fold]) -> float:
    """The mean held-out score of ``folds``."""
    return float(np.mean([f.score for f in folds]))


def nested(table: Table, procs: Sequence[Procedure],
           cats: Sequence[str] | None = None) -> list[Fold]:
    """Nested leave-one-category-out: the procedure is chosen inside each outer fold."""
    cats = list(table.cats if cats is None else cats)
    folds = []
    for c in cats:
        train = [o for o in cats if o != c]
        inner = {p.name: fold_mean(loco(table, p, train)) for p in procs}
        best = max(procs, key=lambda p: (inner[p.name], -procs.index(p)))
        i = table.pick(best, train)
        folds.append(Fold(c, best.name, i, float(table.scores([i], [c])[0, 0]), inner))
    return folds
