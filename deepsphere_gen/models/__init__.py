"""models sub-package (see ../shared/DESIGN.md)."""
from .planar import PlanarCNN

__all__ = [
    "PlanarCNN",
]
