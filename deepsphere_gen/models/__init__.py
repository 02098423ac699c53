"""models sub-package (see ../shared/DESIGN.md)."""
from .planar import PlanarCNN

# harmonic layers (issue 4)
from .harmonic import HarmonicClassifier

__all__ = [
    # harmonic layers (issue 4)
    "HarmonicClassifier",
    "PlanarCNN",
]
