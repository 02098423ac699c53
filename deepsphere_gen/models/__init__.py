"""models sub-package (see ../shared/DESIGN.md)."""
# graph models (issue 2)
from .deepsphere import DeepSphereClassifier, DeepSphereRegressor, SphericalUNet
from .planar import PlanarCNN

# harmonic layers (issue 4)
from .harmonic import HarmonicClassifier

# hybrid graph -> harmonic model (issue 6)
from .hybrid import HybridClassifier

# classic spherical CNNs (issue 5)
from .classic import CobbHybrid, CohenS2CNN, EstevesS2CNN, KondorCGNet, classic_models

__all__ = [
    # graph models (issue 2)
    "DeepSphereClassifier",
    "DeepSphereRegressor",
    "SphericalUNet",
    "PlanarCNN",
    # harmonic layers (issue 4)
    "HarmonicClassifier",
    # hybrid graph -> harmonic model (issue 6)
    "HybridClassifier",
    # classic spherical CNNs (issue 5)
    "CohenS2CNN",
    "EstevesS2CNN",
    "KondorCGNet",
    "CobbHybrid",
    "classic_models",
]
