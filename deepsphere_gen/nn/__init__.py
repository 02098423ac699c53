"""nn sub-package (see ../shared/DESIGN.md)."""
# graph layers (issue 2)
from .chebconv import ChebConv, chebyshev_basis
from .laplacian import Laplacian
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
)
# harmonic layers (issue 4)
from ._efficient_layer import EfficientGeneralizedLayer
from ._generalized_conv import ChannelWiseConv, CrossChannelConv, DegreeNorm, UniformConv
from ._harmonic_input import S2InputLayer
from ._readout import InvariantReadout
from ._signal import GeneralizedSignal, normalize_type
from ._tensor_product import TensorProductActivation
# graph <-> harmonic bridges (issue 6)
from ._bridge import MapToSignal, SignalToMap
# classical spherical CNN layers and baselines (issue 5)
from ._full_cg import FullCGLayer
from ._pointwise import S2Pointwise, S2ReLU, SO3Pointwise, SO3ReLU
from ._s2_conv import S2Conv, S2ToSO3Conv, SO3BatchNorm, SO3Conv, s2_near_identity_grid, so3_near_identity_grid

__all__ = [
    # graph layers (issue 2)
    "ChebConv",
    "chebyshev_basis",
    "Laplacian",
    "HealpixMaxPool",
    "HealpixAvgPool",
    "HealpixUnpool",
    "HealpixMaxUnpool",
    "HealpixPartialPool",
    "HealpixPartialUnpool",
    "partial_sky_pool",
    "EquiangularMaxPool",
    "EquiangularAvgPool",
    "EquiangularUnpool",
    "EquiangularMaxUnpool",
    # harmonic layers (issue 4)
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
    # graph <-> harmonic bridges (issue 6)
    "MapToSignal",
    "SignalToMap",
    # classical spherical CNN layers and baselines (issue 5)
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
