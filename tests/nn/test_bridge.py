"""Graph <-> harmonic bridges: exactness on Gauss-Legendre grids, healpy agreement, gradients, errors."""
import healpy as hp
import numpy as np
import pytest
import torch

from deepsphere_gen.harmonic import (SHT, SphericalSynthesis, default_iterations, real_to_healpy_alm, rotate_coefficients,
                                     rotate_map, synthesis)
from deepsphere_gen.equivariance import assert_map_equivariant
from deepsphere_gen.models import HybridClassifier
from deepsphere_gen.nn import GeneralizedSignal, MapToSignal, S2InputLayer, SignalToMap
from deepsphere_gen.sampling import (DriscollHealySampling, EquiangularSampling, GaussLegendreSampling, HealpixSampling,
                                     McEwenWiauxSampling)


def _coeffs(L, B, C, seed=0):
    return torch.randn(B, L * L, C, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def test_round_trip_exact_on_gauss_legendre():
    L = 6
    s = GaussLegendreSampling(L)
    a = _coeffs(L, 2, 3)
    x = synthesis(a, s, L)
    sig = MapToSignal(s, L, 3, dtype=torch.float64)(x)
    assert sig.type == (1,) * L and sig.channels == 3
    for l, f in enumerate(sig.fragments):  # fragment l = coefficients of degree l, channels first
        torch.testing.assert_close(f[..., 0], a[:, l * l:(l + 1) ** 2].transpose(1, 2), atol=1e-12, rtol=0)
    back = SignalToMap(s, L, dtype=torch.float64)(sig)
    torch.testing.assert_close(back, x, atol=1e-12, rtol=0)


def test_healpix_coefficients_match_healpy_map2alm():
    nside, L = 8, 12
    s = HealpixSampling(nside)
    x = torch.randn(1, s.npix, 1, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    sig = MapToSignal(s, L, 1, dtype=torch.float64, iterations=3)(x)
    ours = torch.cat([f[:, 0, :, 0] for f in sig.fragments], dim=1)[:, :, None]
    ring = hp.reorder(x[0, :, 0].numpy(), n2r=True)
    ref = hp.map2alm(ring, lmax=L - 1, iter=3, use_pixel_weights=False)
    alm = real_to_healpy_alm(ours[0, :, 0], L)
    np.testing.assert_allclose(np.asarray(alm), ref, atol=1e-10)


@pytest.mark.parametrize("s", [GaussLegendreSampling(8), DriscollHealySampling(8), McEwenWiauxSampling(8),
                               HealpixSampling(4)], ids=["gl", "dh", "mw", "healpix"])
def test_default_iterations_are_the_analysis_rule(s):
    """The adapters defaulted to 3 Jacobi iterations everywhere (7 transforms per forward on exact grids): now
    harmonic.default_iterations (3 on HEALPix, as healpy's map2alm; 0 on GL, DH, MW), with the same coefficients."""
    exact = not isinstance(s, HealpixSampling)
    for adapter in (MapToSignal(s, 8, 2), S2InputLayer(8, 2, 1, sampling=s)):
        assert adapter.sht.iterations == default_iterations(s) == (0 if exact else 3)
    if not exact:  # the hybrid's bridge (HEALPix) keeps its 3
        hybrid = HybridClassifier(4, pool_levels=0, graph_channels=(2,), bandlimits=(8, 4), harmonic_channels=(2,),
                                  cache=False)
        assert hybrid.bridge.sht.iterations == 3
    x = synthesis(_coeffs(8, 2, 2, seed=5), s, 8)
    default = MapToSignal(s, 8, 2, dtype=torch.float64)(x).to_coefficients()
    if exact:  # the iterations change nothing on an exact grid (measured: 1e-15 relative)
        steps = MapToSignal(s, 8, 2, dtype=torch.float64, iterations=3)(x).to_coefficients()
        torch.testing.assert_close(default, steps, atol=1e-13, rtol=0)
    else:  # on HEALPix they do: the default is not the plain analysis
        plain = MapToSignal(s, 8, 2, dtype=torch.float64, iterations=0)(x).to_coefficients()
        assert (default - plain).abs().max() > 1e-3 * default.abs().max()


def test_bridge_is_equivariant_on_gauss_legendre():
    L = 5
    s = GaussLegendreSampling(L)
    bridge = MapToSignal(s, L, 2, dtype=torch.float64)
    a = _coeffs(L, 2, 2, seed=3)
    R = torch.tensor([0.3, 1.1, -0.7], dtype=torch.float64)
    lhs = bridge(synthesis(rotate_coefficients(a, R), s, L))
    rhs = bridge(synthesis(a, s, L)).rotate(R)
    for f, g in zip(lhs.fragments, rhs.fragments):
        torch.testing.assert_close(f, g, atol=1e-12, rtol=0)
    # and back: SignalToMap(R signal) == R map
    out = SignalToMap(s, L, dtype=torch.float64)
    torch.testing.assert_close(out(rhs), rotate_map(out(bridge(synthesis(a, s, L))), s, R, L=L), atol=1e-12, rtol=0)


def test_gradients_flow_through_both_bridges():
    L = 4
    s = GaussLegendreSampling(L)
    x = synthesis(_coeffs(L, 1, 1), s, L).requires_grad_(True)
    torch.autograd.gradcheck(lambda m: SignalToMap(s, L, dtype=torch.float64)(MapToSignal(s, L, 1, dtype=torch.float64)(m)),
                             (x,), eps=1e-6, atol=1e-8)


@pytest.mark.parametrize("s", [GaussLegendreSampling(6), HealpixSampling(4)], ids=["gl", "healpix"])
def test_signal_to_map_is_the_sht_synthesis(s):
    """SignalToMap only synthesises: its transform is a SphericalSynthesis (it was a full SHT), with the SHT's output."""
    L = 6
    bridge = SignalToMap(s, L, dtype=torch.float64)
    assert isinstance(bridge.sht, SphericalSynthesis)
    sig = GeneralizedSignal([torch.randn(2, 3, 2 * l + 1, 1, dtype=torch.float64) for l in range(L)])
    assert torch.equal(bridge(sig), SHT(s, L, dtype=torch.float64).inverse(sig.to_coefficients()))


def test_signal_to_map_pads_lower_bandlimit_and_flattens_tau():
    L = 6
    s = GaussLegendreSampling(L)
    sig = GeneralizedSignal([torch.randn(2, 3, 2 * l + 1, 2, dtype=torch.float64) for l in range(3)])
    y = SignalToMap(s, L, dtype=torch.float64)(sig)
    assert y.shape == (2, s.npix, 6)
    # channel k * tau + t of the map is column t of channel k
    ref = synthesis(torch.cat([sig.fragments[l][:, 1, :, 0] for l in range(3)], 1)[:, :, None], s, 3)
    torch.testing.assert_close(y[:, :, 2:3], ref, atol=1e-12, rtol=0)


def test_bad_inputs_raise():
    s = GaussLegendreSampling(4)
    b = MapToSignal(s, 4, 2, dtype=torch.float64)
    with pytest.raises(ValueError, match="channels"):
        b(torch.zeros(1, s.npix, 3, dtype=torch.float64))
    with pytest.raises(ValueError, match="pixels"):
        b(torch.zeros(1, s.npix + 1, 2, dtype=torch.float64))
    bad = torch.zeros(1, s.npix, 2, dtype=torch.float64)
    bad[0, 0, 0] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        b(bad)
    with pytest.raises(ValueError, match="uniform type"):
        SignalToMap(s, 4, dtype=torch.float64)(GeneralizedSignal([torch.zeros(1, 1, 1, 1), torch.zeros(1, 1, 3, 2)]))
    with pytest.raises(ValueError, match="exceeds"):
        SignalToMap(s, 2)(GeneralizedSignal([torch.zeros(1, 1, 2 * l + 1, 1) for l in range(3)]))


def test_grid_without_weights_is_refused_at_construction():
    """A lat-lon grid without quadrature weights can only synthesise: the adapter, which only analyses,
    was built and failed at its first call; now it is refused at once, with the SHT's message."""
    nlat = 64
    s = EquiangularSampling(32, np.pi * (np.arange(nlat) + 0.5) / nlat, 128, None)
    with pytest.raises(ValueError, match=r"^EquiangularSampling\(.*\) has no quadrature weights: no analysis possible"):
        MapToSignal(s, 32, 1)
    SignalToMap(s, 32)  # the synthesis needs no weights


def test_to_coefficients_of_several_channels_is_the_per_channel_columns():
    """channels * tau columns, channel k's at k * tau + t: what MapToSignal takes (tau = 1) and SignalToMap gives."""
    a = _coeffs(4, 2, 3)
    sig = MapToSignal(None, 4, 3, dtype=torch.float64)(a)
    assert torch.equal(sig.to_coefficients(), a)
    x = GeneralizedSignal([torch.randn(2, 3, 2 * l + 1, 2, dtype=torch.float64) for l in range(4)])
    c = x.to_coefficients()
    assert c.shape == (2, 16, 6)
    for k in range(3):
        one = GeneralizedSignal([f[:, k:k + 1] for f in x.fragments]).to_coefficients()
        assert torch.equal(c[..., 2 * k:2 * k + 2], one)
    assert torch.equal(SignalToMap(GaussLegendreSampling(4), 4, dtype=torch.float64).coefficients(x), c)


def test_bridge_round_trip_is_map_equivariant():
    """Map -> signal -> map on Gauss-Legendre (L = 5) and, across samplings, GL -> DH at the
    same bandlimit: exact, so the public map helper sees float64 precision."""
    L = 5
    gl, dh = GaussLegendreSampling(L), DriscollHealySampling(L)
    to_sig = MapToSignal(gl, L, 2, dtype=torch.float64)
    assert_map_equivariant(lambda m: SignalToMap(gl, L, dtype=torch.float64)(to_sig(m)), gl, L=L, channels=2,
                           tol=1e-12)
    assert_map_equivariant(lambda m: SignalToMap(dh, L, dtype=torch.float64)(to_sig(m)), gl, dh, L=L, channels=2,
                           tol=1e-12)
