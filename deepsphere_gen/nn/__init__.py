"""nn sub-package (see ../shared/DESIGN.md)."""
# harmonic layers (issue 4)
from ._efficient_layer import EfficientGeneralizedLayer
from ._generalized_conv import ChannelWiseConv, CrossChannelConv, DegreeNorm, UniformConv
from ._harmonic_input import S2InputLayer
from ._readout import InvariantReadout
from ._signal import GeneralizedSignal, normalize_type
from ._tensor_product import TensorProductActivation

__all__ = [
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
]
