"""datasets sub-package (see ../shared/DESIGN.md)."""
