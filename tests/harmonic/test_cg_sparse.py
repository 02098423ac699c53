"""Sparse real Clebsch-Gordan tensors: equal to the dense ones, at most 2 non-zeros per (m1, m2)."""
import numpy as np
import pytest
import torch

from deepsphere_gen.harmonic import clebsch_gordan
from deepsphere_gen.harmonic._cg_sparse import sparse_clebsch_gordan, sparse_from_dense


def to_dense(s, l1, l2, l):
    out = np.zeros((2 * l1 + 1, 2 * l2 + 1, 2 * l + 1))
    out[s.m1, s.m2, s.M] = s.values
    return out


TRIPLES = [(l1, l2, l) for l1 in range(6) for l2 in range(6) for l in range(abs(l1 - l2), l1 + l2 + 1)]
TRIPLES += [(20, 31, 25), (40, 40, 1), (3, 45, 44), (30, 30, 60)]


def test_equals_dense_tensor():
    for l1, l2, l in TRIPLES:
        s = sparse_clebsch_gordan(l1, l2, l)
        dense = clebsch_gordan(l1, l2, l).numpy()
        assert np.abs(to_dense(s, l1, l2, l) - dense).max() <= 16 * np.finfo(float).eps, (l1, l2, l)
        # no duplicate coordinates, sorted
        flat = (s.m1 * (2 * l2 + 1) + s.m2) * (2 * l + 1) + s.M
        assert np.all(np.diff(flat) > 0)


def test_selection_rule():
    """Non-zero only at |M| in {|m1| + |m2|, ||m1| - |m2||}: at most 2 per (m1, m2)."""
    for l1, l2, l in TRIPLES:
        s = sparse_clebsch_gordan(l1, l2, l)
        a, b, M = np.abs(s.m1 - l1), np.abs(s.m2 - l2), np.abs(s.M - l)
        assert np.all((M == a + b) | (M == np.abs(a - b))), (l1, l2, l)
        _, counts = np.unique(s.m1 * (2 * l2 + 1) + s.m2, return_counts=True)
        assert counts.max() <= 2
        assert s.values.size <= 2 * (2 * l1 + 1) * (2 * l2 + 1)
        assert np.all(s.values != 0)


def test_orthonormal_columns():
    """sum_{m1, m2} C[m1, m2, M] C[m1, m2, M'] = delta (the dense tensor's normalisation)."""
    l1, l2, l = 7, 9, 5
    C = to_dense(sparse_clebsch_gordan(l1, l2, l), l1, l2, l).reshape(-1, 2 * l + 1)
    assert np.allclose(C.T @ C, np.eye(2 * l + 1), atol=1e-14)


def test_from_dense_drops_residue():
    C = clebsch_gordan(4, 5, 3)
    noisy = C + 1e-18 * (C == 0)
    s = sparse_from_dense(noisy)
    ref = sparse_clebsch_gordan(4, 5, 3)
    assert s.values.size == ref.values.size
    assert np.abs(to_dense(s, 4, 5, 3) - C.numpy()).max() < 1e-17
    assert sparse_from_dense(C.numpy()).values.size == ref.values.size


def test_bad_input():
    with pytest.raises(ValueError, match="triangle"):
        sparse_clebsch_gordan(1, 1, 3)
    with pytest.raises(ValueError, match="non-negative integer"):
        sparse_clebsch_gordan(-1, 1, 1)
    with pytest.raises(ValueError, match="3 axes"):
        sparse_from_dense(torch.zeros(3, 3))


def test_read_only_cached():
    s = sparse_clebsch_gordan(2, 3, 4)
    assert sparse_clebsch_gordan(2, 3, 4) is s
    with pytest.raises(ValueError):
        s.values[0] = 1.0
