"""nn sub-package (see ../shared/DESIGN.md)."""
