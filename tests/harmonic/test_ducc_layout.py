"""The ducc0 engine's coefficient conversion: per-order / per-degree blocks (large L) against the
per-coefficient tables (small L), bit for bit, and the SHT through the blocks against healpy.

Ground truth: the tables (themselves pinned to ``healpy_tables``' whole-table formula in
``test_sht_ducc0.py``), the SHT on the table path (bit for bit), and ``healpy.map2alm`` /
``alm2map`` with ``real_to_healpy_alm`` (to rounding).
"""
import healpy as hp
import numpy as np
import pytest
import torch

from deepsphere_gen.harmonic import SHT, healpy_alm_to_real, real_to_healpy_alm
from deepsphere_gen.harmonic import _ducc_layout
from deepsphere_gen.harmonic._ducc_layout import DuccLayout
from deepsphere_gen.sampling import GaussLegendreSampling, HealpixSampling, McEwenWiauxSampling

BITS = {np.dtype(np.float32): np.uint32, np.dtype(np.float64): np.uint64}


def _same_bits(a, b):
    return a.shape == b.shape and a.dtype == b.dtype and np.array_equal(a.view(BITS[a.dtype]), b.view(BITS[b.dtype]))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("K", [1, 3])
@pytest.mark.parametrize("L", [1, 2, 3, 7, 40])
def test_blocks_equal_tables_bit_for_bit(L, K, dtype):
    """to_ducc / to_real give the tables' gathers times their factors, to the bit (signed zeros of
    the m = 0 imaginary parts included); K maps at once."""
    layout, rng = DuccLayout(L), np.random.default_rng(L)
    (to_ducc, to_real), (f, g) = layout.tables(), layout.table_factors(dtype)
    nalm = L * (L + 1) // 2
    real = rng.standard_normal((K, L * L)).astype(dtype)
    pairs = rng.standard_normal((K, 2 * nalm)).astype(dtype)
    got = layout.to_ducc(real, np.empty((K, 2 * nalm), dtype), layout.factors(dtype))
    assert _same_bits(got, np.take(real, to_ducc, axis=1) * f)
    got = layout.to_real(pairs, np.full((K, L * L), np.nan, dtype), layout.factors(dtype))
    assert _same_bits(got, np.take(pairs, to_real, axis=1) * g)


@pytest.fixture
def blocks(monkeypatch):
    """Every L takes the per-order / per-degree path."""
    monkeypatch.setattr(_ducc_layout, "TABLE_MAX_L", 0)


def _operators(sht, maps, coeffs):
    """analysis, synthesis and both adjoints (as gradients)."""
    a, y = sht(maps), sht.inverse(coeffs)
    ga, gy = torch.autograd.grad((a * a).sum() + (y * y).sum(), (maps, coeffs))
    return [a, y, ga, gy]


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("sampling,L,B,C", [(HealpixSampling(16), 40, 1, 1), (HealpixSampling(16), 40, 2, 3),
                                            (GaussLegendreSampling(24), 24, 1, 1), (McEwenWiauxSampling(16), 16, 2, 1)])
def test_sht_through_blocks_equals_tables(sampling, L, B, C, dtype, monkeypatch):
    """Forced at small L, the block path gives every operator of the table path bit for bit (ring
    functions, ducc0's 2D grids, several maps), and keeps no per-coefficient array."""
    g = torch.Generator().manual_seed(5)
    maps = torch.randn(B, sampling.npix, C, generator=g, dtype=dtype, requires_grad=True)
    coeffs = torch.randn(B, L * L, C, generator=g, dtype=dtype, requires_grad=True)
    ref = _operators(SHT(sampling, L, dtype=dtype), maps, coeffs)
    monkeypatch.setattr(_ducc_layout, "TABLE_MAX_L", 0)
    sht = SHT(sampling, L, dtype=dtype)
    for x, y in zip(_operators(sht, maps, coeffs), ref):
        assert torch.equal(x, y)
    kept = sht.engine_for(maps)._tables
    assert kept and all(entry[0] is None for entry in kept.values())
    assert max(a.size for entry in kept.values() for a in entry[1]) <= 3 * 2 * L  # O(L) factor rows only


def test_blocks_match_healpy(blocks):
    """The block path against healpy's own transforms (NESTED HEALPix, float64)."""
    nside, L = 16, 40
    S, rng = HealpixSampling(nside), np.random.default_rng(2)
    sht = SHT(S, L, dtype=torch.float64, iterations=0)  # healpy's iter=0
    m = rng.standard_normal(S.npix)
    ours = sht(torch.from_numpy(m)[None, :, None])[0, :, 0].numpy()
    ref = healpy_alm_to_real(hp.map2alm(hp.reorder(m, n2r=True), lmax=L - 1, iter=0, use_weights=False,
                                        use_pixel_weights=False), L)
    np.testing.assert_allclose(ours, ref, rtol=0, atol=1e-12 * np.abs(ref).max())
    a = rng.standard_normal(L * L)
    ours = sht.inverse(torch.from_numpy(a)[None, :, None])[0, :, 0].numpy()
    ref = hp.reorder(hp.alm2map(real_to_healpy_alm(a, L), nside, lmax=L - 1), r2n=True)
    np.testing.assert_allclose(ours, ref, rtol=0, atol=1e-12 * np.abs(ref).max())


def test_tables_up_to_table_max_l_blocks_above():
    """The dispatch is by L alone: int64 tables at TABLE_MAX_L, none one above."""
    for L, tables in ((_ducc_layout.TABLE_MAX_L, True), (_ducc_layout.TABLE_MAX_L + 1, False)):
        eng = SHT(GaussLegendreSampling(L), L).engine_for(torch.zeros(0))
        to_ducc = eng._precision(np.float32)[0]
        assert (to_ducc is not None) == tables
        if tables:
            assert to_ducc.dtype == np.int64 and to_ducc.size == L * (L + 1)


def test_blocks_refuse_arrays_of_another_bandlimit():
    """The blocks' gathers clip their indices: a coefficient or pair array of another width is
    refused by name instead of converted from clipped entries."""
    lay = DuccLayout(8)
    f = lay.factors(np.float64)
    with pytest.raises(ValueError, match="ducc0 layout of L = 8"):
        lay.to_ducc(np.zeros((1, 63)), np.zeros((1, 72)), f)
    with pytest.raises(ValueError, match="ducc0 layout of L = 8"):
        lay.to_real(np.zeros((1, 70)), np.zeros((1, 64)), f)
    lay.to_ducc(np.zeros((2, 64)), np.zeros((2, 72)), f)  # the right widths pass


def test_engine_kept_bytes(monkeypatch):
    """What the ducc0 engine reports keeping: the two int32 permutations and, with tables, the int64
    indices of both directions and one precision's factors; with blocks only O(L) factor rows."""
    S, L = HealpixSampling(8), 24
    maps = torch.randn(1, S.npix, 1, dtype=torch.float32)
    sht = SHT(S, L, dtype=torch.float32)
    sht(maps), sht.inverse(torch.randn(1, L * L, 1))
    perms = 2 * 4 * S.npix
    assert sht.engine_for(maps).kept_bytes() == perms + (L * (L + 1) + L * L) * (8 + 4)
    monkeypatch.setattr(_ducc_layout, "TABLE_MAX_L", 0)
    blocks = SHT(S, L, dtype=torch.float32)
    blocks(maps), blocks.inverse(torch.randn(1, L * L, 1))
    assert perms < blocks.engine_for(maps).kept_bytes() < perms + 4 * 6 * L + 4 * 2 * L
