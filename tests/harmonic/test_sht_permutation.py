"""The NESTED <-> RING permutations of the HEALPix SHT: int32, chunked, bit-identical to the int64 ones.

Ground truth: ``healpy.ring2nest`` / ``healpy.reorder`` (the permutation), ``numpy.argsort`` /
``numpy.take`` (inverse and gathers), the SHT with the former int64 permutation and on RING
input (bit for bit), and ``healpy.map2alm`` / ``alm2map`` (to rounding).
"""
import dataclasses

import healpy as hp
import numpy as np
import pytest
import torch

from deepsphere_gen.harmonic import SHT, healpy_alm_to_real, real_to_healpy_alm
from deepsphere_gen.harmonic import _permutation
from deepsphere_gen.harmonic._sht_ducc import DuccEngine
from deepsphere_gen.harmonic._sht_geometry import RingGeometry
from deepsphere_gen.sampling import HealpixSampling


@pytest.fixture
def small_chunks(monkeypatch):
    """Chunks of 1000 indices / pixels, so that small maps take several (and a partial last one)."""
    monkeypatch.setattr(_permutation, "CHUNK", 1000)
    monkeypatch.setattr(HealpixSampling, "COORD_CHUNK", 1000)


@pytest.mark.parametrize("nside", [1, 16, 64])
def test_rings_order_is_int32_ring2nest(nside, small_chunks):
    order = HealpixSampling(nside).rings().order
    assert order.dtype == np.int32
    assert np.array_equal(order, hp.ring2nest(nside, np.arange(12 * nside**2)))


def test_ring_permutation_made_only_when_read(monkeypatch):
    """Rings.order is made at its first read and kept: the SHT on RING maps never makes it (and still equals
    healpy's transform), the SHT on NESTED maps makes it once, and a second read of the same rings reuses it."""
    calls = []
    made = HealpixSampling._ring_to_nest

    def counted(self):
        calls.append(self.nside)
        return made(self)

    monkeypatch.setattr(HealpixSampling, "_ring_to_nest", counted)
    nside, L = 8, 24
    S = HealpixSampling(nside)
    ring_sht = SHT(S, L, dtype=torch.float64, order="RING", iterations=0)  # healpy's iter=0
    maps = torch.randn(1, S.npix, 1, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    a = ring_sht(maps)
    y = ring_sht.inverse(a)
    assert calls == [] and ring_sht.geometry.order is None
    ref = healpy_alm_to_real(hp.map2alm(maps[0, :, 0].numpy(), lmax=L - 1, iter=0, use_weights=False,
                                        use_pixel_weights=False), L)
    np.testing.assert_allclose(a[0, :, 0].numpy(), ref, atol=1e-12 * np.abs(ref).max())
    ref = hp.alm2map(real_to_healpy_alm(a[0, :, 0].numpy(), L), nside, lmax=L - 1)
    np.testing.assert_allclose(y[0, :, 0].numpy(), ref, atol=1e-12 * np.abs(ref).max())
    sht = SHT(S, L, dtype=torch.float64, iterations=0)
    assert calls == [nside]
    nested = torch.empty_like(maps)
    nested[:, sht.geometry.order] = maps
    assert torch.equal(sht(nested), a)
    r = S.rings()
    assert r.order is r.order and calls == [nside, nside]
    assert np.array_equal(r.order, hp.ring2nest(nside, np.arange(S.npix)))


def test_gather_and_inverse_equal_numpy(small_chunks):
    rng = np.random.default_rng(0)
    order = rng.permutation(4321).astype(np.int32)
    assert np.array_equal(_permutation.inverse_permutation(order), np.argsort(order))
    x = rng.standard_normal((3, 4321, 2))
    assert np.array_equal(_permutation.gather(x, order, 1), np.take(x, order, axis=1))  # non-contiguous chunks of out
    out = np.empty_like(x)
    assert _permutation.gather(x, order, 1, out=out) is out and np.array_equal(out, np.take(x, order, axis=1))
    assert np.array_equal(_permutation.gather(x[0, :, 0], order, 0), x[0, order, 0])
    assert _permutation.is_identity(np.arange(4321, dtype=np.int32)) and not _permutation.is_identity(order)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("nside,L,B,C", [(16, 48, 1, 1), (64, 96, 1, 1), (32, 64, 2, 3)])
def test_nested_sht_bit_identical_to_int64_permutation_and_ring_input(nside, L, B, C, dtype, small_chunks):
    S = HealpixSampling(nside)
    sht = SHT(S, L, dtype=dtype, iterations=0)  # one analysis: the engine's (old.analysis), healpy's iter=0
    ring_sht = SHT(S, L, dtype=dtype, order="RING", iterations=0)
    old = DuccEngine(dataclasses.replace(sht.geometry, order=hp.ring2nest(nside, np.arange(S.npix))))  # int64
    assert sht.geometry.order.dtype == np.int32 and old.geom.order.dtype == np.int64
    g = torch.Generator().manual_seed(nside)
    maps = torch.randn(B, S.npix, C, generator=g, dtype=dtype)
    coeffs = torch.randn(B, L * L, C, generator=g, dtype=dtype)
    n2r = hp.nest2ring(nside, np.arange(S.npix))
    ring_maps = torch.empty_like(maps)
    ring_maps[:, n2r] = maps  # healpy.reorder(n2r=True) of every map
    a = sht(maps)
    assert torch.equal(a, old.analysis(maps)) and torch.equal(a, ring_sht(ring_maps))
    y = sht.inverse(coeffs)
    assert torch.equal(y, old.synthesis(coeffs)) and torch.equal(y[:, sht.geometry.order], ring_sht.inverse(coeffs))
    # healpy on the RING maps (its own engine: equal to rounding)
    tol = 1e-12 if dtype == torch.float64 else 2e-5
    ref = healpy_alm_to_real(hp.map2alm(hp.reorder(maps[0, :, 0].double().numpy(), n2r=True), lmax=L - 1, iter=0,
                                        use_weights=False, use_pixel_weights=False), L)
    np.testing.assert_allclose(a[0, :, 0].double().numpy(), ref, atol=tol * np.abs(ref).max())
    ref = hp.reorder(hp.alm2map(real_to_healpy_alm(coeffs[0, :, 0].double().numpy(), L), nside, lmax=L - 1), r2n=True)
    np.testing.assert_allclose(y[0, :, 0].double().numpy(), ref, atol=tol * np.abs(ref).max())


def test_bad_ring_order_is_refused():
    class Broken(HealpixSampling):
        def rings(self):
            r = super().rings()
            bad = r.order.copy()
            bad[3] = self.npix
            return dataclasses.replace(r, order=bad)

    with pytest.raises(ValueError, match="outside"):
        RingGeometry.from_sampling(Broken(4), 8)


def test_a_ring_order_that_repeats_a_pixel_is_refused(small_chunks):
    """In range but not a permutation (pixel 4 twice, pixel 3 never): refused by name, not a gather
    reading the garbage of an unwritten inverse slot through mode='clip' (reviewer's repro)."""
    with pytest.raises(ValueError, match=r"not a permutation: 1 pixel\(s\) never appear \(e.g. 1\)"):
        _permutation.inverse_permutation(np.array([0, 0, 2, 3], np.int32))

    class Repeating(HealpixSampling):
        def rings(self):
            r = super().rings()
            bad = r.order.copy()
            bad[3] = bad[4]
            return dataclasses.replace(r, order=bad)

    sht = SHT(Repeating(4), 8, dtype=torch.float64)
    with pytest.raises(ValueError, match="not a permutation"):
        sht.inverse(torch.zeros(1, 64, 1, dtype=torch.float64))  # the engine (and the inverse) made at the first call
