"""Scoring a fitted scikit-learn IsolationForest on one row in ~100 µs.

``IsolationForest.decision_function`` walks its trees one by one in Python (about 10 ms for a
single row with 100 trees); :class:`FastForest` packs the trees into arrays and walks all of
them at once with numpy, level by level. It computes the same number
(``score_samples - offset_``, path length = edges to the leaf + c(leaf size)); a test
compares the two.
"""

from __future__ import annotations

import importlib
from concurrent.futures import Future
from typing import Any, Self

import numpy as np

__all__ = ["FastForest", "ForestFitter", "fit_forest", "fit_forest_isolated"]


def _c(n: np.ndarray) -> np.ndarray:
    """Average path length of an unsuccessful BST search among ``n`` points (sklearn's c(n))."""
    n = np.asarray(n, float)
    out = np.zeros_like(n)
    big = n > 2
    out[n == 2] = 1.0
    out[big] = 2.0 * (np.log(n[big] - 1.0) + np.euler_gamma) - 2.0 * (n[big] - 1.0) / n[big]
    return out


class FastForest:
    """Array form of a fitted IsolationForest: ``decision(x)`` for one row."""

    def __init__(self, forest: Any) -> None:
        trees = [e.tree_ for e in forest.estimators_]
        width = max(t.node_count for t in trees)
        shape = (len(trees), width)
        self.left = np.full(shape, -1, dtype=np.int64)
        self.right = np.full(shape, -1, dtype=np.int64)
        self.feature = np.zeros(shape, dtype=np.int64)
        self.threshold = np.zeros(shape)
        self.size = np.ones(shape)
        for i, (t, feats) in enumerate(zip(trees, forest.estimators_features_)):
            n = t.node_count
            self.left[i, :n], self.right[i, :n] = t.children_left, t.children_right
            self.feature[i, :n] = np.asarray(feats)[np.maximum(t.feature, 0)]
            self.threshold[i, :n] = t.threshold
            self.size[i, :n] = t.n_node_samples
        self.depth = max(int(e.get_depth()) for e in forest.estimators_)
        self.norm = float(_c(np.array([forest._max_samples]))[0])
        self.offset = float(forest.offset_)
        self.base = np.arange(len(trees), dtype=np.int64) * width  # flat index of each root
        self.left, self.right = self.left.ravel(), self.right.ravel()
        self.feature, self.threshold = self.feature.ravel(), self.threshold.ravel()
        self.size = self.size.ravel()

    def decision(self, x: np.ndarray) -> float:
        """``IsolationForest.decision_function`` of one row (negative: outlier)."""
        node = self.base.copy()  # flat index per tree: row offset + node id
        edges = np.zeros(len(node))
        for _ in range(self.depth):
            left = self.left.take(node)
            inner = left != -1
            if not inner.any():
                break
            go_left = x.take(self.feature.take(node)) <= self.threshold.take(node)
            child = np.where(go_left, left, self.right.take(node))
            node = np.where(inner, self.base + child, node)
            edges += inner
        depth = edges + _c(self.size.take(node))
        return float(-(2.0 ** (-depth.mean() / self.norm)) - self.offset)


def fit_forest(matrix: np.ndarray, n_estimators: int, contamination: float) -> FastForest:
    """Fit a scikit-learn IsolationForest and return its array form."""
    from sklearn.ensemble import IsolationForest

    forest = IsolationForest(n_estimators=n_estimators, contamination=contamination,
                             random_state=0)
    return FastForest(forest.fit(matrix))


def _preload() -> None:
    """Import scikit-learn in the child (the slow part of its start)."""
    importlib.import_module("sklearn.ensemble")


class ForestFitter:
    """A short-lived child process for ``fit_forest``: scikit-learn and SciPy (about 115 MB)
    never enter the operator's memory, and the fit's CPU is off its event loop.

    Entering starts the child and has it import scikit-learn at once, so that its start-up
    (about two seconds) overlaps what the caller does before ``fit`` (reading the history);
    leaving stops it."""

    def __enter__(self) -> Self:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        self._pool = ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn"))
        self._pool.submit(_preload)
        return self

    def submit(self, matrix: np.ndarray, n_estimators: int, contamination: float
               ) -> Future[FastForest]:
        """Start the fit in the child; the caller goes on and takes ``.result()`` later."""
        return self._pool.submit(fit_forest, matrix, n_estimators, contamination)

    def fit(self, matrix: np.ndarray, n_estimators: int, contamination: float) -> FastForest:
        return self.submit(matrix, n_estimators, contamination).result()

    def __exit__(self, *exc: object) -> None:
        # the child exits as soon as it reads the pool's sentinel; the pool's own thread reaps
        # it, so the caller does not wait the ~0.3 s that takes
        self._pool.shutdown(wait=False, cancel_futures=True)


def fit_forest_isolated(matrix: np.ndarray, n_estimators: int, contamination: float,
                        fitter: ForestFitter | None = None) -> FastForest:
    """``fit_forest`` in a child process (``fitter``'s, or a new one)."""
    if fitter is not None:
        return fitter.fit(matrix, n_estimators, contamination)
    with ForestFitter() as own:
        return own.fit(matrix, n_estimators, contamination)
