"""The rescaled graph Laplacian a :class:`~deepsphere_gen.nn.ChebConv` filters with, and its checks."""
from __future__ import annotations

import warnings
import weakref

import numpy as np
import scipy.sparse as sp
import torch

from .._warnings import PACKAGE, caller_stacklevel, folder_of
from ..graph import lanczos_ritz
from ._cheb_sparse import to_torch_csr

__all__ = ["Laplacian", "SPECTRUM_TOL"]

#: how far outside [-1, 1] a Ritz value of a given matrix may lie before ChebConv rejects it
SPECTRUM_TOL = 1e-3
#: Lanczos steps of the spectrum check of a matrix given without its graph
_CHECK_STEPS = 30


class Laplacian:
    """Rescaled Laplacian ``L~ = 2 L / lmax - I`` (spectrum in [-1, 1]) of one graph, as torch CSR.

    The one object between a graph and the Chebyshev layers: it converts (scipy, torch
    sparse, or a :class:`~deepsphere_gen.graph.SphereGraph`) to a canonical CSR tensor with
    int32 indices, knows whether the matrix is symmetric (else keeps its transpose for the
    backward pass) and certifies its spectrum:

    - :meth:`from_graph`: written from the graph's weights and its Lanczos bound ``lmax``
      (>= the largest eigenvalue, 1 % margin), symmetric by construction: no check, O(nnz)
      once (HEALPix nside 1024, k = 20, float32: 2.1 GB, a few seconds).
    - :meth:`from_matrix`: a matrix given without its graph is checked: symmetry by one
      transpose (O(nnz)), spectrum by :data:`_CHECK_STEPS` Lanczos steps on its symmetric part
      (Ritz values lie inside the spectrum, so a value outside [-1, 1] proves a wrong
      rescaling).  An unrescaled Laplacian (combinatorial: eigenvalues up to ~2 max degree;
      normalized: up to 2) raises a ValueError that says how to rescale it.

    Layers given the same Laplacian share its tensors; :meth:`to` converts once per dtype and
    device and remembers the result, so convs built from one object stay shared.
    Attributes: ``matrix`` (n, n) CSR, ``transpose`` (CSR or None when symmetric),
    ``spectrum`` (lo, hi): (-1, 1), the bound the graph's ``lmax`` guarantees, or for a
    checked matrix the extreme Ritz values found (inner estimates, within the tolerance).
    """

    def __init__(self, matrix: torch.Tensor, transpose: torch.Tensor | None, spectrum: tuple[float, float],
                 graph=None):
        self.matrix, self.transpose, self.spectrum = matrix, transpose, (float(spectrum[0]), float(spectrum[1]))
        # from_graph's source, weakly (the Laplacian does not keep a graph alive): a wider dtype is
        # written from it while it lives, not cast (see to)
        self._graph = None if graph is None else weakref.ref(graph)
        self._converted: dict = {}

    @property
    def npix(self) -> int:
        return int(self.matrix.shape[0])

    @property
    def dtype(self) -> torch.dtype:
        return self.matrix.dtype

    @property
    def device(self) -> torch.device:
        return self.matrix.device

    @classmethod
    def from_graph(cls, graph, dtype=None, device=None) -> "Laplacian":
        """From a graph with ``to_torch(dtype, device, rescaled=True)`` and ``lmax`` (a SphereGraph)."""
        dtype = dtype or torch.get_default_dtype()
        m = to_torch_csr(graph.to_torch(dtype=dtype, rescaled=True), dtype=dtype, device=device)
        return cls(m, None, (-1.0, 1.0), graph)

    @classmethod
    def from_matrix(cls, matrix, dtype=None, device=None) -> "Laplacian":
        """From a rescaled Laplacian (scipy sparse or torch sparse COO/CSR), checked (class docstring)."""
        m = to_torch_csr(matrix, dtype=dtype, device=device)
        a = _to_scipy(m)
        at = a.T.tocsr()
        at.sort_indices()
        symmetric = (np.array_equal(a.indptr, at.indptr) and np.array_equal(a.indices, at.indices)
                     and np.array_equal(a.data, at.data))
        lo, hi = _check_spectrum(a if symmetric else (a + at) * 0.5)
        transpose = None if symmetric else to_torch_csr(at, dtype=m.dtype, device=m.device)
        return cls(m, transpose, (lo, hi))

    @classmethod
    def of(cls, laplacian, dtype=None, device=None) -> "Laplacian":
        """``laplacian`` as a Laplacian in ``dtype`` (default: its own for tensors, else torch's
        default) on ``device``: a Laplacian is converted (:meth:`to`), a graph goes through
        :meth:`from_graph`, a matrix through :meth:`from_matrix`."""
        if isinstance(laplacian, Laplacian):
            return laplacian.to(dtype=dtype, device=device)
        if hasattr(laplacian, "to_torch") and hasattr(laplacian, "lmax") and not sp.issparse(laplacian):
            return cls.from_graph(laplacian, dtype=dtype, device=device)
        return cls.from_matrix(laplacian, dtype=dtype or torch.get_default_dtype(), device=device)

    def to(self, dtype=None, device=None) -> "Laplacian":
        """This Laplacian in ``dtype`` on ``device`` (self if both match); conversions are memoised.

        To a wider dtype (float32 -> float64, as ``.double()`` asks): written again from the
        graph where this Laplacian came from one, directly or through conversions, and that
        graph is still alive (:meth:`from_graph` holds it by a weak reference: values exact in
        the new dtype, not float32 ones cast: 3e-15 instead of 1.4e-7 off torch_geometric's
        ChebConv); otherwise (a matrix given without its graph, a graph since freed, an
        unpickled Laplacian) cast, with a warning naming the remedy (build it in float64)."""
        dtype = dtype or self.dtype
        device = torch.device(device) if device is not None else self.device
        if dtype == self.dtype and _same_device(device, self.device):
            return self
        key = (dtype, str(device))
        if key not in self._converted:
            graph = None if self._graph is None else self._graph()
            if graph is not None and widens(self.dtype, dtype):
                self._converted[key] = Laplacian.from_graph(graph, dtype=dtype, device=device)
                return self._converted[key]
            warn_if_widened(self.dtype, dtype)
            conv = (lambda t: None if t is None else t.to(dtype=dtype, device=device))
            self._converted[key] = Laplacian(conv(self.matrix), conv(self.transpose), self.spectrum, graph)
        return self._converted[key]

    def __getstate__(self):
        return {"matrix": self.matrix, "transpose": self.transpose, "spectrum": self.spectrum}

    def __setstate__(self, state):
        self.__init__(state["matrix"], state["transpose"], state["spectrum"])

    def __repr__(self) -> str:
        return (f"Laplacian(pixels={self.npix}, nnz={self.matrix.values().numel()}, dtype={self.dtype}, "
                f"symmetric={self.transpose is None}, spectrum in [{self.spectrum[0]:.4g}, {self.spectrum[1]:.4g}])")

    @staticmethod
    def same(a: torch.Tensor, b: torch.Tensor) -> bool:
        """True when two CSR tensors hold the same matrix (same indices and values)."""
        return a is b or (a.shape == b.shape and a.dtype == b.dtype and a.device == b.device
                          and a.values().numel() == b.values().numel()
                          and torch.equal(a.crow_indices(), b.crow_indices())
                          and torch.equal(a.col_indices(), b.col_indices()) and torch.equal(a.values(), b.values()))


def widens(src: torch.dtype, dst: torch.dtype) -> bool:
    """True when a cast from ``src`` to ``dst`` asks for more precision than ``src``'s values hold."""
    return src.is_floating_point and dst.is_floating_point and torch.finfo(dst).eps < torch.finfo(src).eps


#: folders whose frames a cast warning skips to reach the user's call: this package, torch.nn
#: (``Module.to`` / ``.double()`` / ``_apply``)
_INNER = (PACKAGE, folder_of(torch.nn.__file__))


def warn_if_widened(src: torch.dtype, dst: torch.dtype) -> None:
    """Warn (UserWarning) when a Laplacian's values are cast from ``src`` to a wider ``dst``: they keep
    ``src``'s rounding.  The warning points at the first caller outside this package and torch.nn (the
    user's ``.double()``, ``Laplacian.to``, or layer or model built with another dtype), so each such
    line of the user's code warns once under Python's default filter."""
    if not widens(src, dst):
        return
    warnings.warn(f"Laplacian cast from {src} to {dst}: its values keep {src}'s rounding (~{torch.finfo(src).eps:.0e} "
                  f"relative, e.g. 1e-7 off torch_geometric's ChebConv in float64 instead of 1e-15); build it in {dst} "
                  f"(the layer or model with dtype={dst}, or Laplacian.from_graph / from_matrix(..., dtype={dst})) for "
                  "exact values", stacklevel=caller_stacklevel(_INNER))


def _same_device(a: torch.device, b: torch.device) -> bool:
    return a.type == b.type and (a.index is None or b.index is None or a.index == b.index)


def _to_scipy(m: torch.Tensor) -> sp.csr_matrix:
    """CPU float64 scipy copy of a CSR tensor (for the checks)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        crow, col, val = (t.detach().cpu().numpy() for t in (m.crow_indices(), m.col_indices(), m.values()))
    a = sp.csr_matrix((val.astype(np.float64), col, crow), shape=tuple(m.shape))
    a.sort_indices()
    return a


def _check_spectrum(a: sp.csr_matrix) -> tuple[float, float]:
    """(lo, hi) Ritz interval of symmetric ``a``; ValueError when it leaves [-1, 1] by more than
    :data:`SPECTRUM_TOL`."""
    n = a.shape[0]
    if n <= 64:
        e = np.linalg.eigvalsh(a.toarray())
        lo, hi = float(e[0]), float(e[-1])
    else:
        theta = lanczos_ritz(a.dot, n, max_steps=_CHECK_STEPS)
        lo, hi = float(theta[0]), float(theta[-1])
    if lo < -1 - SPECTRUM_TOL or hi > 1 + SPECTRUM_TOL:
        raise ValueError(
            f"the Laplacian given to ChebConv has eigenvalues in about [{lo:.4g}, {hi:.4g}], outside [-1, 1]: "
            "Chebyshev filters need the RESCALED Laplacian 2 L / lmax - I with lmax >= the largest eigenvalue "
            "of L (a raw combinatorial Laplacian reaches ~2x the largest degree, a normalized one 2). "
            "Rescale it with deepsphere_gen.graph.rescale_laplacian(L, deepsphere_gen.graph.estimate_lmax(L)), "
            "or pass the SphereGraph itself (or nn.Laplacian.from_graph(graph))"
        )
    return lo, hi
