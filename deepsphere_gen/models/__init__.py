"""models sub-package (see ../shared/DESIGN.md)."""
# graph models (issue 2)
from .deepsphere import DeepSphereClassifier, DeepSphereRegressor, SphericalUNet
from .planar import PlanarCNN

# harmonic layers (issue 4)
from .harmonic import HarmonicClassifier

__all__ = [
    # graph models (issue 2)
    "DeepSphereClassifier",
    "DeepSphereRegressor",
    "SphericalUNet",
    # harmonic layers (issue 4)
    "HarmonicClassifier",
    "PlanarCNN",
]
