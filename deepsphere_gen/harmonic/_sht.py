"""Real spherical harmonic transforms on any iso-latitude sampling: thin modules over two engines.

Names (one meaning each, everywhere):

- *analysis*: maps (batch, npix, channels) -> coefficients (batch, L*L, channels), by the
  sampling's theta rule (quadrature weights, or McEwen-Wiaux's exact rule), plus
  ``iterations`` Jacobi refinements ``a <- a + analysis(maps - synthesis(a))`` (healpy's
  ``map2alm(iter=n)``, for HEALPix; by default healpy's 3 on HEALPix, 0 on the other samplings:
  :data:`HEALPIX_ITERATIONS`, :func:`default_iterations`).  :class:`SphericalAnalysis`, ``SHT.forward`` (alias
  ``SHT.analysis``) and the functional :func:`analysis`.
- *synthesis*: coefficients -> maps, exact for band-limited signals.
  :class:`SphericalSynthesis`, ``SHT.inverse`` (alias ``SHT.synthesis``) and :func:`synthesis`.

Coefficients: real orthonormal basis, flat index l*l + l + m (no Condon-Shortley phase; docs/conventions.md);
maps in the sampling's pixel order (HEALPix: NESTED, or RING with ``order="RING"``).

Engines, chosen per call by the input's device (:data:`ENGINE_FOR_DEVICE`: device type ->
name, overridable with ``engine=``), then by name (:data:`ENGINES`: name -> engine class; an
unknown name, from either, is refused listing the valid ones):

- ``"ducc0"`` (CPU): ducc0's transforms in autograd Functions (``_sht_ducc``: why);
- ``"torch"`` (CUDA and any other device; the reference on CPU): ring / FFT plan + Legendre
  values computed on the fly in blocks (``_sht_rings``, ``_sht_legendre``).

Neither stores an L^3 Legendre table: memory grows as L^2.  The sampling declares its
rings, quadrature and bandlimit (``Sampling.rings()``, ``Sampling.max_bandlimit``), so a
new sampling needs no edit here (``_sht_geometry``).
"""
from __future__ import annotations

from collections import OrderedDict

import torch

from .._devices import check_device
from .._validation import check_dtype, check_finite, check_nonnegative_int
from ..sampling import HealpixSampling, check_sampling
from ._sht_ducc import DuccEngine
from ._sht_geometry import RingGeometry, max_bandlimit
from ._sht_legendre import DEFAULT_BLOCK_BYTES
from ._sht_torch import TorchEngine

__all__ = [
    "SHT",
    "SphericalAnalysis",
    "SphericalSynthesis",
    "analysis",
    "synthesis",
    "max_bandlimit",
    "clear_sht_cache",
    "HEALPIX_ITERATIONS",
    "default_iterations",
    "ENGINE_FOR_DEVICE",
    "ENGINES",
]

#: engine name used for inputs on each device type; device types not listed use "torch".
ENGINE_FOR_DEVICE = {"cpu": "ducc0"}
#: engine name -> engine class: the one dispatch table.  A class gives ``device_types`` (None:
#: any), ``cache_key(dtype, device)`` (inputs sharing a key share one engine) and
#: ``build(geometry, dtype, device, block_bytes)``.
ENGINES = {"ducc0": DuccEngine, "torch": TorchEngine}
#: the dtypes an SHT is built and runs in (ducc0 transforms float32 and float64 only)
DTYPES = (torch.float32, torch.float64)


class _Transform(torch.nn.Module):
    """Shared part of the SHT modules: geometry, dtype / device anchor, engines, input checks.

    Parameters
    ----------
    sampling : full-sky sampling that declares its rings (``rings()``) and, for the
        analysis, quadrature weights or an exact theta rule.
    L : bandlimit (exclusive); at most ``sampling.max_bandlimit``.
    dtype, device : of the accepted tensors (``.to()`` changes them); dtype torch.float32 or
        torch.float64 (ValueError otherwise); a device this machine lacks is refused here,
        listing the valid ones.
    order : "NESTED" (maps in the sampling's own pixel order; HEALPix: NESTED) or "RING"
        (maps already ring-major: HEALPix RING order).
    engine : None (by device, :data:`ENGINE_FOR_DEVICE`) or a key of :data:`ENGINES`: "ducc0"
        (CPU only) or "torch".
    check_input : reject NaN / inf / UNSEEN values (one host synchronisation per call);
        shape, dtype and device are always checked.
    block_bytes : budget of one block of Legendre values of the torch engine.

    A grid without quadrature weights (nor an exact theta rule) takes the synthesis only: its
    analysis is refused (ValueError), by :class:`SphericalAnalysis` at construction, by ``SHT``
    at the call.

    The module holds no table in its state dict: engines are built at the first call on
    each (device, dtype) and cached on the module (ducc0: conversion tables of 3 L^2
    entries up to L = 1024, O(L) arrays above, and the NESTED <-> RING permutations; torch:
    O(L^2 + npix) buffers).
    """

    def __init__(self, sampling, L: int, dtype: torch.dtype = torch.float32, device=None, order: str = "NESTED",
                 engine: str | None = None, check_input: bool = True, block_bytes: int = DEFAULT_BLOCK_BYTES):
        super().__init__()
        if dtype not in DTYPES:
            raise ValueError(f"the SHT computes in {' or '.join(map(str, DTYPES))}, got dtype={dtype}")
        if engine is not None and engine not in ENGINES:
            raise ValueError(f"engine must be None or one of {sorted(ENGINES)}, got {engine!r}")
        check_device(device)
        self.geometry = RingGeometry.from_sampling(sampling, L, order)
        self.sampling, self.L, self.npix, self.order = sampling, self.geometry.L, self.geometry.npix, str(order).upper()
        self.engine, self.check_input, self.block_bytes = engine, bool(check_input), int(block_bytes)
        self._sizes = {"maps": self.npix, "coeffs": self.L * self.L}
        self.register_buffer("_anchor", torch.empty(0, dtype=dtype, device=device), persistent=False)
        self._engines: dict = {}
        self._refresh()

    def _refresh(self) -> None:
        """Cache the anchor's dtype and device (read at every call; buffers are slow to reach)
        and forget the engine bound to them."""
        self._dtype, self._device = self._anchor.dtype, self._anchor.device
        self._engines.pop(None, None)

    def _apply(self, fn, *args, **kwargs):
        out = super()._apply(fn, *args, **kwargs)
        self._refresh()
        return out

    @property
    def dtype(self) -> torch.dtype:
        return self._dtype

    @property
    def device(self) -> torch.device:
        return self._device

    def engine_for(self, x: torch.Tensor):
        """The engine that transforms ``x`` (built and cached at the first call per device / dtype)."""
        if x.dtype not in DTYPES:  # a module cast after construction (.half()); once per engine binding
            raise ValueError(f"this SHT was cast to {x.dtype}; it computes in {' or '.join(map(str, DTYPES))} only: "
                             "cast it back (module.float() or module.double()) and its input too")
        name = self.engine or ENGINE_FOR_DEVICE.get(x.device.type, "torch")
        cls = ENGINES.get(name)
        if cls is None:  # engine= is checked at construction; ENGINE_FOR_DEVICE is a public, editable dict
            where = "engine=" if self.engine else f"ENGINE_FOR_DEVICE[{x.device.type!r}] is"
            raise ValueError(f"{where} {name!r}, not an SHT engine; valid names: {sorted(ENGINES)}")
        if cls.device_types is not None and x.device.type not in cls.device_types:
            raise ValueError(f"the {name} engine runs on {' or '.join(cls.device_types)} tensors, got one on {x.device}")
        key = cls.cache_key(x.dtype, x.device)
        eng = self._engines.get(key)
        if eng is None:
            eng = self._engines[key] = cls.build(self.geometry, x.dtype, x.device, self.block_bytes)
        return eng

    def extra_repr(self) -> str:
        return (f"{self.sampling!r}, L={self.L}" + (f", engine={self.engine!r}" if self.engine else "")
                + ("" if self.check_input else ", check_input=False"))

    def _check(self, x: torch.Tensor, name: str, values: bool | None = None) -> None:
        """Checks of ``maps`` or ``coeffs``: one combined test per call, the message built by
        :meth:`_reject` only on failure (this runs per call: ~25 us transforms at L = 32)."""
        if not (torch.is_tensor(x) and x.dim() == 3 and x.shape[1] == self._sizes[name] and x.dtype == self._dtype
                and x.device == self._device):
            self._reject(x, name)
        if self.check_input if values is None else values:
            check_finite(x, name)

    def _reject(self, x, name: str) -> None:
        if not torch.is_tensor(x):
            raise ValueError(f"{name} must be a torch tensor, got {type(x).__name__}")
        n = self._sizes[name]
        if x.dim() != 3 or x.shape[1] != n:
            what = f"pixels of {self.sampling!r}" if name == "maps" else f"L*L coefficients for L={self.L}"
            raise ValueError(f"{name} must be shaped (batch, {n}, channels) ({what}), got shape {tuple(x.shape)}")
        check_dtype(x.dtype, self._dtype, name, "the SHT's", supported=DTYPES)
        raise ValueError(f"{name} is on {x.device} but the SHT is on {self._device}; use .to()")

    def _bind(self, x: torch.Tensor):
        """Bind the engine of a checked input (its dtype and device are the module's) under the
        key None of ``_engines``, read by every call until the next ``.to()`` (a dict entry: a
        torch engine set as an attribute would become a submodule)."""
        eng = self._engines[None] = self.engine_for(x)
        return eng

    def _analysis(self, maps: torch.Tensor, iterations: int, check: bool | None = None) -> torch.Tensor:
        self.geometry.check_analysis()
        self._check(maps, "maps", check)
        if not maps.numel():
            return _empty(maps, self._sizes["coeffs"])
        eng = self._engines.get(None) or self._bind(maps)
        a = eng.analysis(maps)
        for _ in range(iterations):
            a = a + eng.analysis(maps - eng.synthesis(a))
        return a

    def _synthesis(self, coeffs: torch.Tensor, check: bool | None = None) -> torch.Tensor:
        self._check(coeffs, "coeffs", check)
        if not coeffs.numel():
            return _empty(coeffs, self._sizes["maps"])
        return (self._engines.get(None) or self._bind(coeffs)).synthesis(coeffs)


def _empty(x: torch.Tensor, n: int) -> torch.Tensor:
    """The transform of an empty batch (batch or channels 0): (batch, n, channels), no values; in
    the autograd graph of ``x`` (a sum over its empty pixel / coefficient axis, broadcast), so a
    backward through it gives ``x`` its (empty) gradient.  The engines' reshapes cannot take it."""
    return x.sum(dim=1, keepdim=True).expand(x.shape[0], n, x.shape[2]).clone(memory_format=torch.contiguous_format)


#: Jacobi refinements of a HEALPix analysis by default: healpy's ``map2alm`` default ``iter=3`` (relative
#: error of a map band-limited below L = nside + 1, nside 16: 9e-4 without, 2e-8 with; cost 1 + 2 x 3 transforms)
HEALPIX_ITERATIONS = 3


def default_iterations(sampling) -> int:
    """Jacobi refinements of an analysis on ``sampling`` when none are given: :data:`HEALPIX_ITERATIONS` (3, as
    healpy's ``map2alm``) on HEALPix, 0 elsewhere (GL, DH, MW: the analysis is exact for band-limited maps)."""
    return HEALPIX_ITERATIONS if isinstance(sampling, HealpixSampling) else 0


def _iterations(n, sampling) -> int:
    return default_iterations(sampling) if n is None else check_nonnegative_int(n, "iterations")


class SphericalAnalysis(_Transform):
    """Analysis module: maps (B, npix, C) -> coefficients (B, L*L, C); see :class:`_Transform`.

    ``iterations``: default number of Jacobi refinements; None: :func:`default_iterations` (3 on
    HEALPix, as healpy's ``map2alm``; 0 elsewhere, exact).  Cost per map: one analysis (+ one
    synthesis and one analysis per iteration).
    """

    def __init__(self, sampling, L: int, iterations: int | None = None, **kwargs):
        super().__init__(sampling, L, **kwargs)
        self.geometry.check_analysis()  # a module that only analyses: refused at construction
        self.iterations = _iterations(iterations, sampling)

    def forward(self, maps: torch.Tensor, iterations: int | None = None) -> torch.Tensor:
        return self._analysis(maps, self.iterations if iterations is None else check_nonnegative_int(iterations, "iterations"))


class SphericalSynthesis(_Transform):
    """Synthesis module: coefficients (B, L*L, C) -> maps (B, npix, C); see :class:`_Transform`."""

    def forward(self, coeffs: torch.Tensor, check_input: bool | None = None) -> torch.Tensor:
        return self._synthesis(coeffs, check_input)


class SHT(_Transform):
    """Both directions on one sampling at bandlimit L: ``sht(maps)`` analyses, ``sht.inverse`` synthesises.

    Parameters as :class:`_Transform`, plus ``iterations`` (default Jacobi refinements of
    the analysis, healpy's ``iter``; None: :func:`default_iterations`, 3 on HEALPix as healpy's
    ``map2alm``, 0 elsewhere).  ``analysis`` and ``synthesis`` are aliases of
    ``forward`` and ``inverse``.
    """

    def __init__(self, sampling, L: int, dtype: torch.dtype = torch.float32, device=None, iterations: int | None = None,
                 order: str = "NESTED", check_input: bool = True, engine: str | None = None,
                 block_bytes: int = DEFAULT_BLOCK_BYTES):
        super().__init__(sampling, L, dtype=dtype, device=device, order=order, engine=engine,
                         check_input=check_input, block_bytes=block_bytes)
        self.iterations = _iterations(iterations, sampling)

    def forward(self, maps: torch.Tensor, iterations: int | None = None) -> torch.Tensor:
        """Analysis: maps (batch, npix, ch) -> coefficients (batch, L*L, ch), with ``iterations``
        (default ``self.iterations``) Jacobi refinements."""
        return self._analysis(maps, self.iterations if iterations is None else check_nonnegative_int(iterations, "iterations"))

    def inverse(self, coeffs: torch.Tensor, check_input: bool | None = None) -> torch.Tensor:
        """Synthesis: coefficients (batch, L*L, ch) -> maps (batch, npix, ch).

        ``check_input``: this call's value check (None: the module's ``check_input``).
        """
        return self._synthesis(coeffs, check_input)

    analysis = forward
    synthesis = inverse

    def extra_repr(self) -> str:
        return super().extra_repr() + f", iterations={self.iterations}"


_CACHE: "OrderedDict[tuple, SHT]" = OrderedDict()
_CACHE_SIZE = 8


def _cached(sampling, L: int, dtype: torch.dtype, device: torch.device, order: str) -> SHT:
    """The cached :class:`SHT` of these arguments (built on a miss); ``sampling`` checked first (an nside is a
    ValueError, :func:`~deepsphere_gen.sampling.check_sampling`, not an AttributeError on ``cache_key``)."""
    key = (check_sampling(sampling).cache_key(), int(L), dtype, str(device), order)
    sht = _CACHE.get(key)
    if sht is None:
        sht = SHT(sampling, L, dtype=dtype, device=device, order=order)
        _CACHE[key] = sht
        while len(_CACHE) > _CACHE_SIZE:
            _CACHE.popitem(last=False)
    else:
        _CACHE.move_to_end(key)
    return sht


def clear_sht_cache() -> None:
    """Drop the modules cached by :func:`analysis` / :func:`synthesis`."""
    _CACHE.clear()


def _tensor_check(x, name):
    if not torch.is_tensor(x) or not x.is_floating_point():
        raise ValueError(f"{name} must be a real floating torch tensor")


def analysis(maps: torch.Tensor, sampling, L: int, iterations: int | None = None, order: str = "NESTED") -> torch.Tensor:
    """Functional analysis (:class:`SHT` cached per sampling, L, dtype, device; at most 8 kept); ``iterations``
    None: :func:`default_iterations` (3 on HEALPix, as ``healpy.map2alm``; 0 elsewhere)."""
    _tensor_check(maps, "maps")
    return _cached(sampling, L, maps.dtype, maps.device, order)(maps, iterations=iterations)


def synthesis(coeffs: torch.Tensor, sampling, L: int, order: str = "NESTED", check_input: bool = True) -> torch.Tensor:
    """Functional synthesis (cached like :func:`analysis`); ``check_input=False`` skips the
    value check (for coefficients the caller computed itself)."""
    _tensor_check(coeffs, "coeffs")
    return _cached(sampling, L, coeffs.dtype, coeffs.device, order).inverse(coeffs, check_input)
