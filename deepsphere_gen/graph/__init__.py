"""graph sub-package (see ../shared/DESIGN.md)."""
