"""Classical spherical convolutions in harmonic space, on generalized signals.

Conventions: an S2 signal has fragments (batch, channels, 2l+1, 1) holding its real
orthonormal coefficients f^l; an SO(3) signal has fragments (batch, channels, 2l+1,
2l+1) holding its orthonormal Wigner coefficients F^l (see ``harmonic._so3_transform``:
f(R) = sum_l sqrt((2l+1)/8pi^2) sum_mn F^l_mn D^l_mn(R)).  Haar measure with volume
8 pi^2, sphere measure with area 4 pi.  Every layer is the exact integral below, so a
quadrature of the integral on a grid agrees with it (tests); all are generalized
convolutions (weights act on the right of each fragment), hence equivariant.

* :class:`S2Conv` (Esteves et al. 2018), zonal filters h:
  (f * h)(x) = int_SO(3) f(R eta) h(R^-1 x) dR  ->  g^l = 2 pi sqrt(4 pi / (2l+1)) h_l f^l.
* :class:`S2ToSO3Conv` (Cohen et al. 2018):
  (f * psi)(R) = int_S2 f(x) psi(R^-1 x) dx  ->  G^l = sqrt(8 pi^2 / (2l+1)) f^l (psi^l)^T.
* :class:`SO3Conv` (Cohen et al. 2018):
  (f * psi)(R) = int_SO(3) f(Q) psi(R^-1 Q) dQ  ->  G^l = sqrt(8 pi^2 / (2l+1)) F^l (Psi^l)^T.

Sums over input channels are implied.  Filters are learned either freely in harmonic
space (one coefficient per (l, m[, n])) or localised: Esteves-style zonal spectra
linearly interpolated between a few anchor degrees (smooth spectrum = local filter), or
Cohen-style weighted Dirac deltas on a grid of points / rotations near the north pole /
identity (``s2_near_identity_grid``, ``so3_near_identity_grid``).  An optional bias adds
a constant function per output channel (degree 0 only, so equivariant).

* :class:`SO3BatchNorm`: batch normalisation of SO(3) signals with invariant statistics
  (Cohen et al. 2018 normalise their SO(3) features before each ReLU): per channel, the
  batch mean of the mean over SO(3) (degree 0) is removed and every degree is divided by
  the batch RMS over SO(3) (Parseval), so it stays equivariant.
"""
from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

from .._validation import check_positive_int, is_bool
from ..harmonic import real_spherical_harmonics, wigner_D_real
from ._signal import GeneralizedSignal

__all__ = ["S2Conv", "S2ToSO3Conv", "SO3Conv", "SO3BatchNorm", "s2_near_identity_grid", "so3_near_identity_grid"]


def _check_max_beta(max_beta) -> float:
    """``max_beta`` as float, or ValueError unless it is a number in (0, pi] (a kernel radius in radians)."""
    try:
        if is_bool(max_beta):
            raise TypeError
        beta = float(max_beta)
    except (TypeError, ValueError):
        beta = math.nan
    if not 0 < beta <= math.pi:
        raise ValueError(f"max_beta must be a kernel radius in (0, pi] radians, got {max_beta!r}")
    return beta


def s2_near_identity_grid(max_beta: float = math.pi / 8, n_alpha: int = 8, n_beta: int = 3) -> np.ndarray:
    """(n_alpha * n_beta, 2) points (theta, phi) on rings theta = k max_beta / n_beta, k = 1..n_beta;
    ``max_beta`` in (0, pi] (ValueError otherwise)."""
    beta = np.arange(1, n_beta + 1) * _check_max_beta(max_beta) / n_beta
    alpha = 2 * np.pi * np.arange(n_alpha) / n_alpha
    b, a = np.meshgrid(beta, alpha, indexing="ij")
    return np.stack([b.ravel(), a.ravel()], axis=-1)


def so3_near_identity_grid(max_beta: float = math.pi / 8, n_alpha: int = 8, n_beta: int = 3,
                           n_gamma: int = 3, max_gamma: float = 2 * math.pi) -> np.ndarray:
    """(n_alpha * n_beta * n_gamma, 3) ZYZ rotations Rz(a) Ry(b) Rz(g - a) near the identity.

    b = k max_beta / n_beta (k = 1..n_beta), a on n_alpha equispaced longitudes, g on
    n_gamma equispaced values of [-max_gamma, max_gamma) (or [0, 2 pi) when max_gamma = 2 pi); ``max_beta`` in
    (0, pi] (ValueError otherwise).
    """
    beta = np.arange(1, n_beta + 1) * _check_max_beta(max_beta) / n_beta
    alpha = 2 * np.pi * np.arange(n_alpha) / n_alpha
    if math.isclose(max_gamma, 2 * math.pi):
        gamma = 2 * np.pi * np.arange(n_gamma) / n_gamma
    else:
        gamma = np.linspace(-max_gamma, max_gamma, n_gamma)
    b, a, g = np.meshgrid(beta, alpha, gamma, indexing="ij")
    return np.stack([a.ravel(), b.ravel(), (g - a).ravel()], axis=-1)


def _float_dtype(dtype) -> torch.dtype:
    """``dtype`` or torch's default; ValueError unless floating point."""
    dtype = dtype or torch.get_default_dtype()
    if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
        raise ValueError(f"dtype must be a floating-point torch dtype, got {dtype!r}")
    return dtype


def _check_bandlimits(L, L_out) -> tuple[int, int]:
    L = check_positive_int(L, "bandlimit L")
    L_out = L if L_out is None else L_out
    if isinstance(L_out, bool) or int(L_out) != L_out or not 1 <= L_out <= L:
        raise ValueError(f"output bandlimit L_out must be an integer in [1, L={L}], got {L_out!r}")
    return int(L), int(L_out)


class _Conv(nn.Module):
    """Bookkeeping shared by the three convolutions: bandlimits, channels, dtype, tables, input checks, bias.

    Filter tables (interpolation matrix, spherical harmonics / Wigner-D at the kernel grid)
    are computed in float64 and held as non-persistent buffers in the layer's dtype; a
    float64 copy is kept for the inexact ones, and every dtype/device change
    (``.double()``, ``.to(...)``) casts the buffers again from it, so a layer built in
    float32 and moved to float64 has float64-accurate tables.
    """

    def __init__(self, L, in_channels, out_channels, L_out, bias: bool, bias_scale: float, dtype):
        super().__init__()
        self.L, self.L_out = _check_bandlimits(L, L_out)
        self.in_channels = check_positive_int(in_channels, "in_channels")
        self.out_channels = check_positive_int(out_channels, "out_channels")
        self.bias = nn.Parameter(torch.zeros(out_channels, dtype=dtype)) if bias else None
        self._bias_scale = bias_scale  # degree-0 coefficient of the constant function 1
        self._tables64: dict[str, torch.Tensor] = {}  # float64 copies of the inexact tables

    def _table(self, name: str, values, dtype: torch.dtype, exact: bool = False) -> None:
        """Register ``values`` (float64) as buffer ``name`` in ``dtype``; ``exact``: no float64
        copy needed (e.g. 0/1 entries, representable in every dtype)."""
        t = torch.as_tensor(values, dtype=torch.float64)
        if not exact:
            self._tables64[name] = t
        self.register_buffer(name, t.to(dtype), persistent=False)

    @property
    def dtype(self) -> torch.dtype:
        """Current dtype of the parameters and tables."""
        return next(iter(self.parameters())).dtype

    def _apply(self, fn, *args, **kwargs):
        super()._apply(fn, *args, **kwargs)
        for name, t in self._tables64.items():
            buf = getattr(self, name)
            setattr(self, name, t.to(device=buf.device, dtype=buf.dtype))
        return self

    def _check(self, x, so3_in: bool) -> None:
        if not isinstance(x, GeneralizedSignal):
            raise ValueError(f"{type(self).__name__} expects a GeneralizedSignal, got {type(x).__name__}")
        want = tuple(2 * l + 1 for l in range(self.L)) if so3_in else (1,) * self.L
        what = "an SO(3) signal (tau_l = 2l+1)" if so3_in else "an S2 signal (tau_l = 1)"
        if x.type != want and x.L == self.L:
            raise ValueError(f"{type(self).__name__} expects {what}, got type {x.type}")
        x.check(L=self.L, channels=self.in_channels, type=want, name=f"{type(self).__name__} input", dtype=self.dtype)

    def _add_bias(self, out: list[torch.Tensor]) -> list[torch.Tensor]:
        if self.bias is not None:
            out[0] = out[0] + (self._bias_scale * self.bias).view(1, -1, 1, 1)
        return out

    def extra_repr(self) -> str:
        n = sum(p.numel() for p in self.parameters())
        return f"L={self.L}->{self.L_out}, channels={self.in_channels}->{self.out_channels}, params={n}"


class S2Conv(_Conv):
    """S2 -> S2 convolution with zonal (axisymmetric) filters (Esteves et al. 2018).

    Input: S2 signal (batch, C_in, 2l+1, 1), l < L; output (batch, C_out, 2l+1, 1), l < L_out.
    Filters: zonal coefficients h_l per (C_in, C_out); ``n_anchors`` (>= 2) learns them at
    ``n_anchors`` equispaced degrees and interpolates linearly (localised filters);
    None learns every h_l.  Parameters C_in C_out (n_anchors or L_out) (+ C_out bias).
    ``dtype``: of parameters and tables (default torch's default dtype; see :class:`_Conv`).
    """

    def __init__(self, L: int, in_channels: int, out_channels: int, L_out: int | None = None,
                 n_anchors: int | None = None, bias: bool = True, dtype: torch.dtype | None = None):
        dtype = _float_dtype(dtype)
        super().__init__(L, in_channels, out_channels, L_out, bias, math.sqrt(4 * math.pi), dtype)
        n = self.L_out if n_anchors is None else int(n_anchors)
        if n_anchors is not None and not 2 <= n <= self.L_out:
            raise ValueError(f"n_anchors must be in [2, L_out={self.L_out}], got {n_anchors!r}")
        if n_anchors is None:
            self._table("interp", np.eye(self.L_out), dtype, exact=True)
        else:
            self._table("interp", _linear_interpolation(n, self.L_out), dtype)
        # unit-variance inputs -> unit-variance degree-0 outputs
        scale = 1.0 / (2 * math.pi * math.sqrt(4 * math.pi) * math.sqrt(in_channels))
        self.weight = nn.Parameter(torch.randn(in_channels, out_channels, n, dtype=dtype) * scale)
        self._gain = [2 * math.pi * math.sqrt(4 * math.pi / (2 * l + 1)) for l in range(self.L_out)]

    def filters(self) -> torch.Tensor:
        """Zonal filter coefficients h_l, (C_in, C_out, L_out)."""
        return self.weight @ self.interp

    def forward(self, x: GeneralizedSignal) -> GeneralizedSignal:
        self._check(x, so3_in=False)
        h = self.filters()
        out = [torch.einsum("bcmt,cd->bdmt", x.fragments[l], h[:, :, l] * g) for l, g in enumerate(self._gain)]
        return GeneralizedSignal(self._add_bias(out), check_values=False)


def _linear_interpolation(n: int, L: int) -> np.ndarray:
    """(n, L) matrix: values at n equispaced anchor degrees -> linear interpolation at l = 0..L-1."""
    anchors = np.linspace(0, L - 1, n)
    out = np.zeros((n, L))
    for l in range(L):
        k = min(int(np.searchsorted(anchors, l, side="right")) - 1, n - 2)
        t = (l - anchors[k]) / (anchors[k + 1] - anchors[k])
        out[k, l], out[k + 1, l] = 1 - t, t
    return out


class S2ToSO3Conv(_Conv):
    """S2 -> SO(3) convolution (Cohen et al. 2018): output G^l = sqrt(8pi^2/(2l+1)) sum_c f_c^l psi_c^l^T.

    Input: S2 signal (batch, C_in, 2l+1, 1), l < L; output: SO(3) signal
    (batch, C_out, 2l+1, 2l+1), l < L_out.  ``kernel_grid``: None (free filter
    coefficients psi^l_n, C_in C_out L_out^2 parameters) or (n, 2) points (theta, phi):
    psi = sum_p w_p delta_{x_p}, i.e. psi^l_n = sum_p w_p Y_ln(x_p) (C_in C_out n
    parameters; ``s2_near_identity_grid()`` gives Cohen's localised kernel).
    ``dtype``: of parameters and tables (default torch's default dtype; see :class:`_Conv`).
    """

    def __init__(self, L: int, in_channels: int, out_channels: int, L_out: int | None = None,
                 kernel_grid=None, bias: bool = True, dtype: torch.dtype | None = None):
        dtype = _float_dtype(dtype)
        super().__init__(L, in_channels, out_channels, L_out, bias, math.sqrt(8 * math.pi**2), dtype)
        Lo = self.L_out
        if kernel_grid is None:
            basis = np.eye(Lo * Lo)
        else:
            grid = np.asarray(kernel_grid, dtype=np.float64)
            if grid.ndim != 2 or grid.shape[1] != 2 or not np.isfinite(grid).all():
                raise ValueError(f"kernel_grid must be finite (n, 2) points (theta, phi), got shape {grid.shape}")
            basis = real_spherical_harmonics(Lo, grid[:, 0], grid[:, 1])  # (n, Lo^2)
        self._table("basis", basis, dtype, exact=kernel_grid is None)
        n = basis.shape[0]
        self.weight = nn.Parameter(torch.randn(in_channels, out_channels, n, dtype=dtype) / math.sqrt(in_channels * n))
        self._gain = [math.sqrt(8 * math.pi**2 / (2 * l + 1)) for l in range(Lo)]

    def filters(self) -> list[torch.Tensor]:
        """Filter coefficients psi^l, list over l of (C_in, C_out, 2l+1)."""
        psi = self.weight @ self.basis
        return [psi[:, :, l * l : (l + 1) * (l + 1)] for l in range(self.L_out)]

    def forward(self, x: GeneralizedSignal) -> GeneralizedSignal:
        self._check(x, so3_in=False)
        out = [self._gain[l] * torch.einsum("bcm,cdn->bdmn", x.fragments[l][..., 0], psi)
               for l, psi in enumerate(self.filters())]
        return GeneralizedSignal(self._add_bias(out), check_values=False)


class SO3Conv(_Conv):
    """SO(3) -> SO(3) convolution (Cohen et al. 2018): G^l = sqrt(8pi^2/(2l+1)) sum_c F_c^l Psi_c^l^T.

    Input: SO(3) signal (batch, C_in, 2l+1, 2l+1), l < L; output (batch, C_out, 2l+1,
    2l+1), l < L_out.  ``kernel_grid``: None (free Psi^l, C_in C_out sum_l (2l+1)^2
    parameters) or (n, 3) ZYZ rotations: psi = sum_p w_p delta_{R_p}, i.e.
    Psi^l = sum_p w_p sqrt((2l+1)/8pi^2) D^l(R_p) (``so3_near_identity_grid()``).
    ``dtype``: of parameters and tables (default torch's default dtype; see :class:`_Conv`).
    """

    def __init__(self, L: int, in_channels: int, out_channels: int, L_out: int | None = None,
                 kernel_grid=None, bias: bool = True, dtype: torch.dtype | None = None):
        dtype = _float_dtype(dtype)
        super().__init__(L, in_channels, out_channels, L_out, bias, math.sqrt(8 * math.pi**2), dtype)
        Lo = self.L_out
        if kernel_grid is None:
            bases = [torch.eye((2 * l + 1) ** 2, dtype=torch.float64).reshape(-1, 2 * l + 1, 2 * l + 1)
                     for l in range(Lo)]
        else:
            grid = torch.as_tensor(np.asarray(kernel_grid, dtype=np.float64))
            if grid.dim() != 2 or grid.shape[1] != 3 or not bool(torch.isfinite(grid).all()):
                raise ValueError(f"kernel_grid must be finite (n, 3) ZYZ rotations, got shape {tuple(grid.shape)}")
            bases = [math.sqrt((2 * l + 1) / (8 * math.pi**2)) * wigner_D_real(l, grid) for l in range(Lo)]
        for l, b in enumerate(bases):
            self._table(f"basis{l}", b, dtype, exact=kernel_grid is None)
        n = bases[-1].shape[0] if kernel_grid is not None else None
        if n is None:
            self.weight = nn.ParameterList(
                nn.Parameter(torch.randn(in_channels, out_channels, b.shape[0], dtype=dtype)
                             / math.sqrt(in_channels * (2 * l + 1)))
                for l, b in enumerate(bases)
            )
        else:
            self.weight = nn.Parameter(torch.randn(in_channels, out_channels, n, dtype=dtype) / math.sqrt(in_channels * n))
        self._gain = [math.sqrt(8 * math.pi**2 / (2 * l + 1)) for l in range(Lo)]

    def filters(self) -> list[torch.Tensor]:
        """Filter coefficients Psi^l, list over l of (C_in, C_out, 2l+1, 2l+1)."""
        out = []
        for l in range(self.L_out):
            w = self.weight[l] if isinstance(self.weight, nn.ParameterList) else self.weight
            out.append(torch.einsum("cdp,pmn->cdmn", w, getattr(self, f"basis{l}")))
        return out

    def forward(self, x: GeneralizedSignal) -> GeneralizedSignal:
        self._check(x, so3_in=True)
        out = [self._gain[l] * torch.einsum("bcmk,cdnk->bdmn", x.fragments[l], psi)
               for l, psi in enumerate(self.filters())]
        return GeneralizedSignal(self._add_bias(out), check_values=False)


class SO3BatchNorm(nn.Module):
    """Equivariant batch normalisation of an SO(3) signal (batch, C, 2l+1, 2l+1), l < L.

    Per channel c, with f_c(R) = sum_l sqrt((2l+1)/8pi^2) tr(F^l D^l(R)^T) and Haar volume 8 pi^2:
    mean mu_c = E_batch[F^0_c] / sqrt(8 pi^2) (the batch mean of the SO(3) average) and
    variance var_c = E_batch[int (f_c - mu_c)^2 dR] / 8 pi^2 (Parseval: squared Frobenius
    norms of all fragments, F^0 centred).  Output (f - mu) w / sqrt(var + eps) + b: the
    statistics are rotation invariant, so the layer commutes with rotations.  Running
    averages (``momentum``) are used in eval mode, as in ``torch.nn.BatchNorm1d``.
    Parameters: 2 C (w, b).
    """

    def __init__(self, channels: int, momentum: float = 0.1, eps: float = 1e-5):
        super().__init__()
        check_positive_int(channels, "channels")
        if not 0 < momentum <= 1 or not eps > 0:
            raise ValueError(f"need 0 < momentum <= 1 and eps > 0, got {momentum!r} and {eps!r}")
        self.channels, self.momentum, self.eps = int(channels), float(momentum), float(eps)
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))
        self.register_buffer("running_mean", torch.zeros(channels))  # of the SO(3) average
        self.register_buffer("running_var", torch.ones(channels))

    def forward(self, x: GeneralizedSignal) -> GeneralizedSignal:
        if not isinstance(x, GeneralizedSignal):
            raise ValueError(f"SO3BatchNorm expects a GeneralizedSignal, got {type(x).__name__}")
        x.check(channels=self.channels, type=tuple(2 * l + 1 for l in range(x.L)), name="SO3BatchNorm input")
        root = math.sqrt(8 * math.pi**2)
        if self.training:
            if x.batch < 2 and x.L == 1:
                raise ValueError("SO3BatchNorm needs a batch of at least 2 constant signals in training mode")
            mean = x.fragments[0][:, :, 0, 0].mean(0) / root
            var = ((x.fragments[0][:, :, 0, 0] / root - mean) ** 2).mean(0)
            for f in x.fragments[1:]:
                var = var + f.square().sum(dim=(2, 3)).mean(0) / root**2
            with torch.no_grad():
                self.running_mean.lerp_(mean.detach().to(self.running_mean.dtype), self.momentum)
                self.running_var.lerp_(var.detach().to(self.running_var.dtype), self.momentum)
        else:
            mean, var = self.running_mean, self.running_var
        scale = (self.weight / torch.sqrt(var + self.eps)).view(1, -1, 1, 1)
        shift = (root * (self.bias - mean * scale.view(-1))).view(1, -1, 1, 1)
        out = [x.fragments[0] * scale + shift] + [f * scale for f in x.fragments[1:]]
        return GeneralizedSignal(out, check_values=False)

    def extra_repr(self) -> str:
        return f"channels={self.channels}, momentum={self.momentum}, eps={self.eps}"
