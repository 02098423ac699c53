"""harmonic sub-package (see ../shared/DESIGN.md)."""
