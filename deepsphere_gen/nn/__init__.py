"""Layers (torch modules) on pixel maps and generalized signals (imports sampling, graph, harmonic).

| module | holds |
| --- | --- |
| :mod:`.chebconv` | ``ChebConv``: Chebyshev graph convolution (DeepSphere's layer) |
| :mod:`.laplacian` | ``Laplacian``: the rescaled Laplacian a ChebConv filters with (torch CSR, checked) |
| :mod:`.laplacian_pyramid` | ``LaplacianPyramid`` (one Laplacian per resolution) and ``SharedLaplacians`` (sharing kept across ``load_state_dict``) |
| :mod:`._cheb_sparse` | the Laplacian as torch CSR and the sparse Chebyshev kernels behind ``ChebConv`` |
| :mod:`._cheb_native` | compiled CPU kernels of the filter (recursion step, dense products), built at first use (its builder also builds ``_pool_native``'s); torch fallback |
| :mod:`.pooling` | pooling / unpooling on HEALPix (full and partial sky) and equiangular grids |
| :mod:`._pool_native` | the compiled CPU kernel of partial-sky HEALPix max pooling, built at first use; torch fallback |
| :mod:`._signal` | ``GeneralizedSignal``: fragments (batch, channels, 2l+1, tau_l), the harmonic layers' data type |
| :mod:`._bridge` | ``MapToSignal`` / ``SignalToMap``: the adapters between pixel maps and generalized signals |
| :mod:`._harmonic_input` | ``S2InputLayer``: ``MapToSignal`` plus learned per-degree weights |
| :mod:`._tensor_product` | ``TensorProductActivation``: channel-wise Clebsch-Gordan products (Cobb et al. 2021) |
| :mod:`._generalized_conv` | uniform / channel-wise / cross-channel generalized convolutions, ``DegreeNorm`` |
| :mod:`._efficient_layer` | ``EfficientGeneralizedLayer``: Cobb et al.'s layer (activation + three convolutions) |
| :mod:`._full_cg` | ``FullCGLayer``: Kondor et al.'s products across all channels |
| :mod:`._readout` | ``InvariantReadout``: rotation-invariant features -> MLP |
| :mod:`._s2_conv` | classic S2 / SO(3) convolutions (Cohen, Esteves) and ``SO3BatchNorm`` |
| :mod:`._pointwise` | pointwise activations on grids (S2 / SO(3) ReLU) |

Shapes: maps (batch, pixels, channels), signals as above (docs/conventions.md).
"""
# graph layers
from .chebconv import ChebConv, chebyshev_basis
from ._cheb_native import available as native_kernels_available
from .laplacian import Laplacian
from .laplacian_pyramid import LaplacianPyramid, SharedLaplacians, share_equal_laplacians
from .pooling import (
    EquiangularAvgPool,
    EquiangularMaxPool,
    EquiangularMaxUnpool,
    EquiangularUnpool,
    HealpixAvgPool,
    HealpixMaxPool,
    HealpixMaxUnpool,
    HealpixPartialPool,
    HealpixPartialUnpool,
    HealpixUnpool,
    partial_sky_pool,
    partial_sky_pool_plan,
)
# harmonic layers
from ._efficient_layer import EfficientGeneralizedLayer
from ._generalized_conv import ChannelWiseConv, CrossChannelConv, DegreeNorm, UniformConv
from ._harmonic_input import S2InputLayer
from ._readout import InvariantReadout
from ._signal import GeneralizedSignal, normalize_type
from ._tensor_product import TensorProductActivation
# pixel map <-> generalized signal adapters
from ._bridge import MapToSignal, SignalToMap
# classical spherical CNN layers and baselines
from ._full_cg import FullCGLayer
from ._pointwise import S2Pointwise, S2ReLU, SO3Pointwise, SO3ReLU
from ._s2_conv import S2Conv, S2ToSO3Conv, SO3BatchNorm, SO3Conv, s2_near_identity_grid, so3_near_identity_grid

__all__ = [
    # graph layers
    "ChebConv",
    "chebyshev_basis",
    "native_kernels_available",
    "Laplacian",
    "LaplacianPyramid",
    "SharedLaplacians",
    "share_equal_laplacians",
    "HealpixMaxPool",
    "HealpixAvgPool",
    "HealpixUnpool",
    "HealpixMaxUnpool",
    "HealpixPartialPool",
    "HealpixPartialUnpool",
    "partial_sky_pool",
    "partial_sky_pool_plan",
    "EquiangularMaxPool",
    "EquiangularAvgPool",
    "EquiangularUnpool",
    "EquiangularMaxUnpool",
    # harmonic layers
    "GeneralizedSignal",
    "normalize_type",
    "TensorProductActivation",
    "UniformConv",
    "ChannelWiseConv",
    "CrossChannelConv",
    "DegreeNorm",
    "EfficientGeneralizedLayer",
    "S2InputLayer",
    "InvariantReadout",
    # pixel map <-> generalized signal adapters
    "MapToSignal",
    "SignalToMap",
    # classical spherical CNN layers and baselines
    "S2Conv",
    "S2ToSO3Conv",
    "SO3Conv",
    "SO3BatchNorm",
    "s2_near_identity_grid",
    "so3_near_identity_grid",
    "S2Pointwise",
    "SO3Pointwise",
    "S2ReLU",
    "SO3ReLU",
    "FullCGLayer",
]
