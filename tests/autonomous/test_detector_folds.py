"""Cross-validation over NAB categories (autonomous.health_monitor.nab_folds)."""

from __future__ import annotations

import numpy as np
import pytest

from autonomous.health_monitor.nab import RULES, NabFile, Scorer, choose
from autonomous.health_monitor.nab_folds import Procedure, Table, fold_mean, loco, nested
from autonomous.health_monitor.stream_detector import StreamParams

CATS = ("a", "b", "c", "d")
N = 1000


def _corpus(per_cat: int = 2) -> list[NabFile]:
    return [NabFile(f"{c}/{i}.csv", np.arange(float(N)), np.zeros(N), [(500, 549)])
            for c in CATS for i in range(per_cat)]


def _hit(at: int | None) -> np.ndarray:
    d = np.zeros(N)
    if at is not None:
        d[at] = 1
    return d


def _random_run(rng: np.random.Generator, keys: list[str]) -> dict[str, np.ndarray]:
    """Per file: a miss, or a hit somewhere in the window, plus 0-3 false alarms."""
    out = {}
    for k in keys:
        d = _hit(None if rng.random() < 0.3 else int(rng.integers(500, 550)))
        d[rng.integers(160, 1000, int(rng.integers(0, 4)))] = 1
        out[k] = d
    return out


def test_table_pick_agrees_with_choose() -> None:
    rng = np.random.default_rng(5)
    files = _corpus()
    keys = [f.key for f in files]
    runs = [_random_run(rng, keys) for _ in range(12)]
    sc = Scorer(files)
    for prof in ("standard", "reward_low_FP_rate"):
        table = Table(sc, runs, keys, prof)
        for rule in RULES:
            proc = Procedure(rule, tuple(range(len(runs))), rule)
            for cats in (list(CATS), ["a", "c", "d"], ["b", "d"]):
                ks = [k for k in keys if k[0] in cats]
                assert table.pick(proc, cats) == choose(sc, runs, ks, prof, rule)
        assert table.pooled(3, list(CATS)) == pytest.approx(sc.score(runs[3], keys, 0.5, prof))


def test_loco_scores_the_pick_of_the_other_categories() -> None:
    # A hits every window at its left edge except in "d", where it misses; B hits everywhere
    # late (row 548). Holding "d" out, A is chosen on a/b/c and scores 0 on d.
    files = _corpus(1)
    keys = [f.key for f in files]
    a = {k: _hit(None if k.startswith("d") else 500) for k in keys}
    b = {k: _hit(548) for k in keys}
    table = Table(Scorer(files), [a, b], keys, "standard")
    folds = loco(table, Procedure("both", (0, 1), "mean"))
    assert [f.held_out for f in folds] == list(CATS)
    assert [f.candidate for f in folds] == [0, 0, 0, 0]
    assert [f.score for f in folds] == pytest.approx([100.0, 100.0, 100.0, 0.0])
    assert fold_mean(folds) == pytest.approx(75.0)
    # with B alone the procedure has no choice: its late hit everywhere
    late = loco(table, Procedure("B", (1,), "mean"))
    assert {f.candidate for f in late} == {1}
    assert late[0].score == pytest.approx(float(table.scores([1], ["a"])[0, 0]))
    with pytest.raises(ValueError, match="rule 'median'"):
        Procedure("x", (0,), "median")
    with pytest.raises(ValueError, match="no candidates"):
        Procedure("x", (), "mean")


def test_nested_chooses_the_procedure_inside_the_fold() -> None:
    # Two procedures: "A" (candidate A alone) and "B" (candidate B alone). On a/b/c A is
    # perfect, B late; on d A misses. Holding d out, the inner LOCO on a/b/c prefers A
    # (100 > B's late score), so the nested figure on d is A's 0; holding a out, the inner
    # LOCO on b/c/d sees A miss d and B's late hits, and takes B.
    files = _corpus(1)
    keys = [f.key for f in files]
    a = {k: _hit(None if k.startswith("d") else 500) for k in keys}
    b = {k: _hit(548) for k in keys}
    table = Table(Scorer(files), [a, b], keys, "standard")
    procs = [Procedure("A", (0,), "mean"), Procedure("B", (1,), "mean")]
    folds = {f.held_out: f for f in nested(table, procs)}
    late = float(table.scores([1], ["a"])[0, 0])
    assert folds["d"].procedure == "A" and folds["d"].score == pytest.approx(0.0)
    assert folds["d"].inner == pytest.approx({"A": 100.0, "B": late})
    assert folds["a"].inner["A"] == pytest.approx(200.0 / 3)  # b, c 100; d 0
    assert folds["a"].procedure == ("B" if late > 200.0 / 3 else "A")
    # one procedure: nested is its plain LOCO
    single = nested(table, procs[:1])
    assert [f.score for f in single] == [f.score for f in loco(table, procs[0])]


def test_nested_never_looks_at_the_held_out_category() -> None:
    # Whatever the candidates do on the held-out category, the procedure and the setting
    # chosen for that fold stay the same (only its score there changes).
    rng = np.random.default_rng(11)
    files = _corpus()
    keys = [f.key for f in files]
    runs = [_random_run(rng, keys) for _ in range(10)]
    procs = [Procedure(f"{lo}-{hi}, {rule}", tuple(range(lo, hi)), rule)
             for lo, hi in ((0, 4), (0, 10), (4, 10)) for rule in RULES]
    sc = Scorer(files)
    base = {f.held_out: f for f in nested(Table(sc, runs, keys, "standard"), procs)}
    for c in CATS:
        for _ in range(3):
            other = [{k: (_random_run(rng, [k])[k] if k.startswith(c) else r[k]) for k in keys}
                     for r in runs]
            fold = {f.held_out: f for f in nested(Table(sc, other, keys, "standard"), procs)}[c]
            assert (fold.procedure, fold.candidate) == (base[c].procedure, base[c].candidate)
            assert fold.inner == base[c].inner


def test_bench_procedures_cover_the_candidate_grids() -> None:
    from dataclasses import replace

    from bench import nab_eval

    settings = nab_eval.grid(nab_eval.policy_params())
    procs = nab_eval.procedures(settings)
    assert len(procs) == len(nab_eval.GRIDS) * len(nab_eval.OPINION_SETS) * len(RULES) * 2
    assert sum(p.smooth for p in procs) == len(procs) // 2
    assert set(nab_eval.CLEAN) <= set(nab_eval.GRIDS)
    assert nab_eval.CURRENT in {p.name for p in procs}
    for p in procs:
        allowed = nab_eval.GRIDS[nab_eval.grid_of(p)]
        fams = set(nab_eval.OPINIONS) if " + opinions" in p.name else {"none"}
        assert p.name.endswith(" smoothed") == p.smooth
        members = set(p.members)
        for i, s in enumerate(settings):
            assert (i in members) == (s.opinion in fams and all(
                getattr(s, k) in v for k, v in allowed.items()))
    # the policy in force is a setting of the grid (the defaults are picked from it)
    base = nab_eval.policy_params()
    assert base in settings and replace(base, quiet=0) in settings
    assert len(settings) == len(set(settings))


def test_smoothed_pick_is_the_centre_of_a_good_region() -> None:
    # Five candidates in a chain (grid neighbours i-1, i+1). S (0) hits both windows at the
    # left edge (100) but its neighbour (1) misses both (0); 2-4 hit one at the edge and one
    # later (a plateau just below 100). Plain: S; smoothed: S scores (100 + 0) / 2 = 50 and
    # the plateau's middle (3) wins. Without 1 among the members S has no bad neighbour.
    files = [NabFile(f"a/{i}.csv", np.arange(float(N)), np.zeros(N), [(500, 549)])
             for i in range(2)]
    keys = [f.key for f in files]
    top = {k: _hit(500) for k in keys}
    none = {k: _hit(None) for k in keys}
    good = {keys[0]: _hit(500), keys[1]: _hit(520)}
    runs = [top, none, good, good, good]
    chain = [tuple(j for j in (i - 1, i, i + 1) if 0 <= j < 5) for i in range(5)]
    table = Table(Scorer(files), runs, keys, "standard", chain)
    plateau = float(table.scores([3], ["a"])[0, 0])
    assert 50.0 < plateau < 100.0
    for rule in RULES:
        assert table.pick(Procedure("p", (0, 1, 2, 3, 4), rule), ["a"]) == 0
        assert table.pick(Procedure("s", (0, 1, 2, 3, 4), rule, smooth=True), ["a"]) == 3
        assert table.pick(Procedure("s", (0, 2, 3, 4), rule, smooth=True), ["a"]) == 0


def test_bench_neighbours_are_one_grid_step_apart() -> None:
    from bench import nab_eval

    settings = nab_eval.grid(nab_eval.policy_params())
    near = nab_eval.neighbours(settings)
    fields = list(nab_eval.GRID)

    def steps(a: StreamParams, b: StreamParams) -> list[int]:
        out = [abs(nab_eval.GRID[k].index(getattr(a, k)) - nab_eval.GRID[k].index(getattr(b, k)))
               for k in fields]
        ks, args = nab_eval.OPINIONS[a.opinion]
        return out + [abs(ks.index(a.opinion_k) - ks.index(b.opinion_k)),
                      abs(args.index(a.opinion_arg) - args.index(b.opinion_arg))]

    some = [0, len(settings) // 2, len(settings) - 1]
    some += [i for i, s in enumerate(settings) if s.opinion == "season"][:3]
    for i in some:
        assert near[i][0] == i
        for j in near[i][1:]:
            assert settings[j].opinion == settings[i].opinion
            d = steps(settings[i], settings[j])
            assert max(d) == 1 and sum(d) == 1
    # a corner of the grid (opinion none) has one neighbour per field; a season corner two more
    assert settings[0].opinion == "none" and len(near[0]) == 1 + len(fields)
    assert len(near[some[3]]) == 3 + len(fields)
