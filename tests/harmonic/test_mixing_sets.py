"""Degree-mixing sets: definition, MST vs scipy, RMST, size/cost table and scaling."""
import numpy as np
import pytest
import scipy.sparse as sp
from scipy.sparse.csgraph import connected_components, minimum_spanning_tree

from deepsphere_gen.harmonic import (
    admissible_pairs,
    fit_scaling_exponent,
    full_mixing_set,
    log_spaced_degrees,
    mixing_set,
    mixing_set_table,
    mst_mixing_set,
    pair_cost,
    rmst_mixing_set,
)


def _graph(L, pairs):
    rows = [a for a, b in pairs if a != b]
    cols = [b for a, b in pairs if a != b]
    w = [pair_cost(a, b) for a, b in pairs if a != b]
    return sp.coo_matrix((w, (rows, cols)), shape=(L, L)).tocsr()


def test_full_set_matches_definition():
    L = 7
    for l in range(L):
        brute = {(a, b) for a in range(L) for b in range(L) if abs(a - b) <= l <= a + b and a <= b}
        assert set(admissible_pairs(L, l)) == brute
    s = full_mixing_set(L)
    # total triples = number of (l1 <= l2, l) with the triangle condition and l < L
    n = sum(1 for a in range(L) for b in range(a, L) for l in range(L) if b - a <= l <= a + b)
    assert s.size == n
    assert s.cost == sum(pair_cost(a, b) for a in range(L) for b in range(a, L) for l in range(L) if b - a <= l <= a + b)


@pytest.mark.parametrize("L", [5, 8, 16])
def test_mst_is_minimum_spanning_tree(L):
    s = mst_mixing_set(L)
    assert s.pairs[0] == tuple((a, a) for a in range(L))  # G^0 has loops only: all kept
    for l in range(1, L):
        tree = s.pairs[l]
        assert set(tree) <= set(admissible_pairs(L, l))
        assert len(tree) == L - 1  # spanning tree edge count
        g = _graph(L, tree)
        n_comp, _ = connected_components(g, directed=False)
        assert n_comp == 1  # spanning; with L-1 edges and connected => acyclic
        ref = minimum_spanning_tree(_graph(L, admissible_pairs(L, l)))
        assert ref.nnz == L - 1
        assert sum(pair_cost(a, b) for a, b in tree) == int(ref.sum())


def test_rmst_subset_and_reachability():
    L = 32
    s, full = rmst_mixing_set(L), full_mixing_set(L)
    nodes = log_spaced_degrees(L)
    assert nodes == [0, 1, 2, 4, 8, 16, 31]
    for l in range(L):
        assert set(s.pairs[l]) <= set(full.pairs[l])
        assert len(s.pairs[l]) >= 1
        used = {d for p in s.pairs[l] for d in p}
        assert used <= set(nodes) | {l}
        if l:
            assert (0, l) in s.pairs[l]
            # forest on the subset: acyclic (edges = nodes touched - components)
            g = _graph(L, s.pairs[l])
            n_comp, lab = connected_components(g, directed=False)
            touched = len(used)
            comps = len({lab[d] for d in used})
            assert len(s.pairs[l]) == touched - comps
    assert max(len(p) for p in s.pairs) <= len(nodes)


def test_table_and_scaling_exponents():
    Ls = (8, 16, 32, 64, 128)
    rows = mixing_set_table(Ls)
    assert [r["L"] for r in rows] == list(Ls)
    for r in rows:
        assert r["rmst_cost"] < r["mst_cost"] < r["full_cost"]
        assert r["rmst_size"] < r["mst_size"] < r["full_size"]
    exp_full = fit_scaling_exponent(Ls[1:], [r["full_cost"] for r in rows[1:]])
    exp_mst = fit_scaling_exponent(Ls[1:], [r["mst_cost"] for r in rows[1:]])
    exp_rmst = fit_scaling_exponent(Ls[1:], [r["rmst_cost"] for r in rows[1:]], log_factor=True)
    assert 4.8 < exp_full < 5.2  # O(L^5)
    assert 3.8 < exp_mst < 4.2  # O(L^4)
    assert exp_rmst < 3.1  # O(L^3 log L) (the log-spaced costs are geometric: ~L^3)
    # full size: the number of admissible triples grows like L^3
    assert 2.8 < fit_scaling_exponent(Ls, [r["full_size"] for r in rows]) < 3.1


def test_pairs_by_input_and_bad_input():
    s = mst_mixing_set(6, 4)
    assert len(s.pairs) == 4
    by = s.pairs_by_input()
    assert sum(len(v) for v in by.values()) == s.size
    with pytest.raises(ValueError, match="unknown mixing set"):
        mixing_set("dense", 4)
    with pytest.raises(ValueError, match="L_out"):
        full_mixing_set(4, 5)
    with pytest.raises(ValueError, match="positive integer"):
        rmst_mixing_set(0)
    with pytest.raises(ValueError, match="two bandlimits"):
        fit_scaling_exponent([8], [1.0])
    assert np.isclose(fit_scaling_exponent([2, 4, 8], [4, 16, 64]), 2.0)
