"""S2 -> S2 (Esteves), S2 -> SO(3) and SO(3) -> SO(3) (Cohen) convolutions in harmonic space.

Ground truth: a direct quadrature of each convolution integral (Gauss-Legendre grids on
the sphere and on SO(3), exact for these bandlimits), evaluated point by point with
real_spherical_harmonics / wigner_D_real; equivariance through the one definition.
"""
import math

import numpy as np
import pytest
import torch

from deepsphere_gen.equivariance import assert_equivariant
from deepsphere_gen.harmonic import SO3Transform, euler_to_matrix, random_rotations, real_spherical_harmonics, wigner_D_real
from deepsphere_gen.nn import (
    GeneralizedSignal,
    S2Conv,
    S2ToSO3Conv,
    SO3BatchNorm,
    SO3Conv,
    s2_near_identity_grid,
    so3_near_identity_grid,
)
from deepsphere_gen.sampling import GaussLegendreSampling
from deepsphere_gen.sampling.so3 import GaussLegendreSO3Sampling

from ._signals import s2_signal, so3_signal

L = 4


def eval_s2(coeffs, theta, phi):
    """sum_lm c_lm Y_lm at points; coeffs (..., L*L) -> (..., n)."""
    Lc = int(round(math.sqrt(coeffs.shape[-1])))
    Y = torch.as_tensor(real_spherical_harmonics(Lc, theta, phi))
    return coeffs @ Y.T


def inverse_rotated(angles, xyz):
    """Points R^-1 x for every rotation and point: (P, n) colatitudes and longitudes."""
    q = torch.einsum("pji,xj->pxi", euler_to_matrix(angles), torch.as_tensor(xyz))
    return torch.arccos(q[..., 2].clamp(-1, 1)), torch.atan2(q[..., 1], q[..., 0])


def flat(fragments):
    return torch.cat([f[..., 0] for f in fragments], dim=-1)  # (B, C, L*L)


def build64(make, route):
    """A float64 layer: built in float64 (``dtype=``) or built in float32 then ``.double()``."""
    return make(dtype=torch.float64) if route == "dtype" else make(dtype=torch.float32).double()


ROUTES = pytest.mark.parametrize("route", ["dtype", "double"])


@ROUTES
@torch.no_grad()
def test_s2_to_so3_matches_quadrature(route):
    torch.manual_seed(0)
    kernel = s2_near_identity_grid()
    conv = build64(lambda **kw: S2ToSO3Conv(L, 2, 3, kernel_grid=kernel, bias=False, **kw), route)
    x = s2_signal()
    y = conv(x)
    grid = GaussLegendreSO3Sampling(L)
    got = SO3Transform(grid).inverse(y.fragments)  # (B, P, C_out)
    quad = GaussLegendreSampling(L + 1)  # exact for products of two degree < L harmonics
    w = torch.as_tensor(quad.weights)
    f = eval_s2(flat(x.fragments), quad.theta, quad.phi)  # (B, C_in, npix)
    # psi = sum_p w_p delta_{x_p}: coefficients from float64 harmonics at the kernel points, not the layer's tables
    psi = conv.weight @ torch.as_tensor(real_spherical_harmonics(L, kernel[:, 0], kernel[:, 1]))  # (C_in, C_out, L*L)
    R = torch.as_tensor(grid.angles)
    th, ph = inverse_rotated(R, quad.xyz)
    Y = torch.as_tensor(real_spherical_harmonics(L, th.reshape(-1).numpy(), ph.reshape(-1).numpy())).reshape(len(R), -1, L * L)
    psi_rot = torch.einsum("cdk,pxk->cdpx", psi, Y)  # psi(R^-1 x)
    want = torch.einsum("bcx,cdpx,x->bpd", f, psi_rot, w)
    torch.testing.assert_close(got, want, rtol=0, atol=1e-11 * float(want.abs().max()))


@ROUTES
@torch.no_grad()
def test_so3_to_so3_matches_quadrature(route):
    torch.manual_seed(1)
    kernel = torch.as_tensor(so3_near_identity_grid())
    conv = build64(lambda **kw: SO3Conv(L, 2, 3, kernel_grid=kernel.numpy(), bias=False, **kw), route)
    x = so3_signal()
    y = conv(x)
    out_grid = GaussLegendreSO3Sampling(L)
    got = SO3Transform(out_grid).inverse(y.fragments)  # (B, P, C_out)
    quad = GaussLegendreSO3Sampling(L)  # exact for products of two degree < L Wigner functions
    f = SO3Transform(quad).inverse(x.fragments)  # (B, Q, C_in)
    w = torch.as_tensor(quad.weights)
    R, Q = torch.as_tensor(out_grid.angles), torch.as_tensor(quad.angles)
    want = 0
    for l in range(L):
        c = math.sqrt((2 * l + 1) / (8 * math.pi**2))
        psi = c * torch.einsum("cdp,pmn->cdmn", conv.weight, wigner_D_real(l, kernel))  # float64, not the tables
        D_rinv_q = wigner_D_real(l, R).transpose(-1, -2)[:, None] @ wigner_D_real(l, Q)[None]  # D(R^-1 Q)
        psi_rq = c * torch.einsum("cdmn,pqmn->cdpq", psi, D_rinv_q)  # psi(R^-1 Q)
        want = want + torch.einsum("bqc,cdpq,q->bpd", f, psi_rq, w)
    torch.testing.assert_close(got, want, rtol=0, atol=1e-11 * float(want.abs().max()))


@ROUTES
@torch.no_grad()
def test_s2_conv_matches_quadrature(route):
    torch.manual_seed(2)
    conv = build64(lambda **kw: S2Conv(L, 2, 3, n_anchors=3, bias=False, **kw), route)
    x = s2_signal()
    y = conv(x)
    pts = GaussLegendreSampling(3)  # a few output points
    got = eval_s2(flat(y.fragments), pts.theta, pts.phi)  # (B, C_out, n)
    quad = GaussLegendreSO3Sampling(L)
    R = torch.as_tensor(quad.angles)
    w = torch.as_tensor(quad.weights)
    north = euler_to_matrix(R)[:, :, 2]  # R eta
    th, ph = torch.arccos(north[:, 2].clamp(-1, 1)), torch.atan2(north[:, 1], north[:, 0])
    f_eta = eval_s2(flat(x.fragments), th.numpy(), ph.numpy())  # (B, C_in, Q)
    # zonal coefficients (C_in, C_out, L): the anchors (l = 0, 1.5, 3) interpolated linearly in float64
    h = torch.as_tensor(np.apply_along_axis(lambda a: np.interp(np.arange(L), [0, 1.5, 3], a), -1, conv.weight.numpy()))
    zonal = torch.zeros(*h.shape[:2], L * L, dtype=torch.float64)
    for l in range(L):
        zonal[:, :, l * l + l] = h[:, :, l]
    qt, qp = inverse_rotated(R, pts.xyz)
    Y = torch.as_tensor(real_spherical_harmonics(L, qt.reshape(-1).numpy(), qp.reshape(-1).numpy())).reshape(len(R), -1, L * L)
    want = torch.einsum("bcq,cdk,qxk,q->bdx", f_eta, zonal, Y, w)
    torch.testing.assert_close(got, want, rtol=0, atol=1e-11 * float(want.abs().max()))


def test_s2_conv_is_zonal_multiplier_and_anchors_interpolate():
    conv = S2Conv(6, 1, 1, n_anchors=3, bias=False).double()
    h = conv.filters()[0, 0]
    a = conv.weight[0, 0]
    assert torch.allclose(h[[0, 5]], a[[0, 2]]) and torch.allclose(h[1], 0.6 * a[0] + 0.4 * a[1])
    x = s2_signal(L=6, C=1)
    y = conv(x)
    for l in range(6):
        gain = 2 * math.pi * math.sqrt(4 * math.pi / (2 * l + 1)) * h[l]
        assert torch.allclose(y.fragments[l], gain * x.fragments[l])


KERNEL_LAYERS = {  # layers with inexact tables (interpolation weights, harmonics, Wigner-D)
    "s2": lambda **kw: S2Conv(L, 2, 3, n_anchors=3, **kw),
    "s2_so3": lambda **kw: S2ToSO3Conv(L, 2, 3, kernel_grid=s2_near_identity_grid(), **kw),
    "so3": lambda **kw: SO3Conv(L, 2, 3, kernel_grid=so3_near_identity_grid(), **kw),
    "s2_free": lambda **kw: S2Conv(L, 2, 3, L_out=3, **kw),
    "s2_so3_free": lambda **kw: S2ToSO3Conv(L, 2, 3, L_out=3, **kw),
    "so3_free": lambda **kw: SO3Conv(L, 2, 3, L_out=3, **kw),
}


@pytest.mark.parametrize("name", list(KERNEL_LAYERS))
def test_dtype_argument_and_tables_follow_dtype_changes(name):
    make = KERNEL_LAYERS[name]

    def tables(m):
        return dict(m.named_buffers())

    def dtypes(m):
        return {t.dtype for t in [*m.parameters(), *m.buffers()]}

    f64, f32 = make(dtype=torch.float64), make(dtype=torch.float32)
    assert dtypes(f64) == {torch.float64} and f64.dtype == torch.float64
    assert dtypes(f32) == {torch.float32} and f32.dtype == torch.float32
    assert dtypes(make()) == {torch.get_default_dtype()}
    # .double() of a float32 layer gives the float64 tables (not float32 values cast up), .float() the float32 ones
    up = make(dtype=torch.float32).double()
    assert dtypes(up) == {torch.float64} and up.dtype == torch.float64
    for key, t in tables(f64).items():
        assert torch.equal(tables(up)[key], t), key
    down = up.float()
    for key, t in tables(f32).items():
        assert torch.equal(tables(down)[key], t), key
    with pytest.raises(ValueError, match="dtype"):
        make(dtype=torch.int64)


LAYERS = {
    "s2": (lambda: S2Conv(L, 2, 3, n_anchors=3), s2_signal),
    "s2_free": (lambda: S2Conv(L, 2, 3, L_out=3), s2_signal),
    "s2_so3": (lambda: S2ToSO3Conv(L, 2, 3, kernel_grid=s2_near_identity_grid()), s2_signal),
    "s2_so3_free": (lambda: S2ToSO3Conv(L, 2, 3, L_out=3), s2_signal),
    "so3": (lambda: SO3Conv(L, 2, 3, kernel_grid=so3_near_identity_grid()), so3_signal),
    "so3_free": (lambda: SO3Conv(L, 2, 3, L_out=3), so3_signal),
}


@pytest.mark.parametrize("name", list(LAYERS))
@pytest.mark.parametrize("dtype,tol", [(torch.float64, 1e-12), (torch.float32, 2e-6)])
def test_equivariance(name, dtype, tol):
    torch.manual_seed(0)
    make, data = LAYERS[name]
    layer = make().to(dtype)
    assert_equivariant(layer, data(dtype=dtype), list(random_rotations(3, seed=1)), lambda s, a: s.rotate(a), tol=tol)


def test_shapes_parameters_and_bias():
    conv = S2ToSO3Conv(5, 1, 20, L_out=3, kernel_grid=s2_near_identity_grid())
    assert sum(p.numel() for p in conv.parameters()) == 1 * 20 * 24 + 20
    y = conv(s2_signal(L=5, C=1, dtype=torch.float32))
    assert y.type == (1, 3, 5) and y.channels == 20
    so3 = SO3Conv(3, 20, 40, kernel_grid=so3_near_identity_grid())
    assert sum(p.numel() for p in so3.parameters()) == 20 * 40 * 72 + 40
    free = SO3Conv(3, 2, 4, bias=False)
    assert sum(p.numel() for p in free.parameters()) == 2 * 4 * (1 + 9 + 25)
    # the bias is a constant function: only degree 0 changes
    conv = S2Conv(3, 1, 2).double()
    x = s2_signal(L=3, C=1)
    y0 = conv(x)
    with torch.no_grad():
        conv.bias.fill_(1.0)
    y1 = conv(x)
    assert torch.allclose(y1.fragments[0] - y0.fragments[0], torch.full_like(y0.fragments[0], math.sqrt(4 * math.pi)))
    assert all(torch.equal(a, b) for a, b in zip(y0.fragments[1:], y1.fragments[1:]))


def test_bad_inputs():
    with pytest.raises(ValueError, match="L_out"):
        S2Conv(4, 1, 1, L_out=5)
    with pytest.raises(ValueError, match="n_anchors"):
        S2Conv(4, 1, 1, n_anchors=1)
    with pytest.raises(ValueError, match="kernel_grid"):
        S2ToSO3Conv(4, 1, 1, kernel_grid=np.zeros((5, 3)))
    with pytest.raises(ValueError, match="kernel_grid"):
        SO3Conv(4, 1, 1, kernel_grid=np.full((5, 3), np.nan))
    with pytest.raises(ValueError, match="SO\\(3\\) signal"):
        SO3Conv(L, 2, 1)(s2_signal())
    with pytest.raises(ValueError, match="S2 signal"):
        S2ToSO3Conv(L, 2, 1)(so3_signal())
    with pytest.raises(ValueError, match="channels"):
        S2Conv(L, 3, 1)(s2_signal())
    with pytest.raises(ValueError, match="GeneralizedSignal"):
        S2Conv(L, 2, 1)(torch.zeros(2, 16, 2))


def test_so3_batchnorm_statistics_match_grid_quadrature():
    # ground truth: mean and variance over batch x SO(3) by Gauss-Legendre quadrature of the samples
    torch.manual_seed(0)
    x = so3_signal(L=3, C=3, B=5)
    x = GeneralizedSignal([x.fragments[0] + 4.0] + x.fragments[1:])  # large common offset
    bn = SO3BatchNorm(3).double()
    with torch.no_grad():
        bn.weight.copy_(torch.tensor([1.0, 2.0, 0.5]))
        bn.bias.copy_(torch.tensor([0.0, -1.0, 3.0]))
    y = bn(x)
    sampling = GaussLegendreSO3Sampling(3)
    w = torch.as_tensor(sampling.weights) / (8 * math.pi**2)  # probability weights on SO(3)
    f = SO3Transform(sampling).inverse(y.fragments)  # (B, npoints, C)
    mean = (f * w[None, :, None]).sum(1).mean(0)
    var = ((f - mean) ** 2 * w[None, :, None]).sum(1).mean(0)
    assert torch.allclose(mean, bn.bias.detach(), atol=1e-10)
    assert torch.allclose(var, bn.weight.detach() ** 2, rtol=1e-4)
    # eval mode uses the running averages (momentum 1: the last batch's statistics)
    bn1 = SO3BatchNorm(3, momentum=1.0).double()
    bn1(x)
    bn1.eval()
    assert all(torch.allclose(a, b) for a, b in zip(bn1(x).fragments, SO3BatchNorm(3).double()(x).fragments))


@pytest.mark.parametrize("dtype,tol", [(torch.float64, 1e-12), (torch.float32, 2e-6)])
def test_so3_batchnorm_is_equivariant(dtype, tol):
    bn = SO3BatchNorm(2).to(dtype)
    assert_equivariant(bn, so3_signal(B=3, dtype=dtype), list(random_rotations(3, seed=2)), lambda s, a: s.rotate(a),
                       tol=tol)


def test_so3_batchnorm_bad_inputs():
    with pytest.raises(ValueError, match="channels"):
        SO3BatchNorm(0)
    with pytest.raises(ValueError, match="momentum"):
        SO3BatchNorm(2, momentum=0.0)
    with pytest.raises(ValueError, match="channels"):
        SO3BatchNorm(3)(so3_signal())
    with pytest.raises(ValueError, match="type"):
        SO3BatchNorm(2)(s2_signal())
    with pytest.raises(ValueError, match="GeneralizedSignal"):
        SO3BatchNorm(2)(torch.zeros(2, 1, 1, 1))
