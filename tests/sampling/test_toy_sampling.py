"""A sampling defined only here gets the SHT (and a graph) without any edit in the library.

``ReducedGaussSampling``: Gauss-Legendre colatitudes, a different number of samples on
every ring (2L - 1 + 2i), every other ring shifted by half a sample, and pixels stored
south ring first with each ring's samples reversed: nothing the harmonic package has
seen.  It declares its rings (with that pixel order), per-ring quadrature weights and its
bandlimit, the three things ``Sampling`` asks for.
"""
import numpy as np
import pytest
import torch

from deepsphere_gen.harmonic import SHT, real_spherical_harmonics
from deepsphere_gen.sampling import Rings, Sampling

F64 = torch.float64


class ReducedGaussSampling(Sampling):
    name = "reduced-gauss"

    def __init__(self, L: int):
        self.L = L
        x, w = np.polynomial.legendre.leggauss(L)
        self.ring_theta = np.arccos(x[::-1])
        self.ring_w = w[::-1]
        self.ring_nphi = 2 * L - 1 + 2 * np.arange(L)
        self.ring_phi0 = np.where(np.arange(L) % 2 == 1, np.pi / self.ring_nphi, 0.0)
        start = np.concatenate([[0], np.cumsum(self.ring_nphi)[:-1]])
        # pixel order: rings from the south, samples in decreasing longitude
        pix_start = np.concatenate([[0], np.cumsum(self.ring_nphi[::-1])[:-1]])[::-1]
        self.order = np.concatenate([pix_start[i] + self.ring_nphi[i] - 1 - np.arange(self.ring_nphi[i])
                                     for i in range(L)])
        theta = np.repeat(self.ring_theta, self.ring_nphi)
        phi = np.concatenate([self.ring_phi0[i] + 2 * np.pi * np.arange(n) / n for i, n in enumerate(self.ring_nphi)])
        self.theta, self.phi = np.empty(theta.size), np.empty(phi.size)
        self.theta[self.order], self.phi[self.order] = theta, phi
        self._start = start

    @property
    def max_bandlimit(self) -> int:
        return self.L

    @property
    def weights(self) -> np.ndarray:
        w = np.empty(self.npix)
        w[self.order] = np.repeat(self.ring_w * 2 * np.pi / self.ring_nphi, self.ring_nphi)
        return w

    def rings(self) -> Rings:
        return Rings(theta=self.ring_theta, nphi=self.ring_nphi, phi0=self.ring_phi0, start=self._start,
                     order=self.order, weights=self.ring_w * 2 * np.pi / self.ring_nphi)

    def cache_key(self) -> str:
        return f"reduced-gauss-L{self.L}"


@pytest.mark.parametrize("engine", ["ducc0", "torch"])
def test_toy_sampling_gets_an_exact_sht(engine):
    L = 9
    S = ReducedGaussSampling(L)
    assert S.weights.sum() == pytest.approx(4 * np.pi)
    sht = SHT(S, L, dtype=F64, engine=engine)
    a = torch.randn(2, L * L, 3, dtype=F64)
    Y = torch.as_tensor(real_spherical_harmonics(L, S.theta, S.phi))  # (npix, L*L) in the toy's pixel order
    f = sht.inverse(a)
    torch.testing.assert_close(f, torch.einsum("pi,bic->bpc", Y, a), atol=1e-13, rtol=0)
    torch.testing.assert_close(sht(f), a, atol=1e-12, rtol=0)  # exact quadrature: analysis inverts
    with pytest.raises(ValueError, match="too large"):
        SHT(S, L + 1)


def test_toy_sampling_gets_a_graph(tmp_path):
    from deepsphere_gen.graph import build_graph

    S = ReducedGaussSampling(6)
    g = build_graph(S, k=6, cache_dir=tmp_path)
    W = g.weights
    assert W.shape == (S.npix, S.npix) and abs(W - W.T).max() == 0 and W.nnz >= 6 * S.npix
