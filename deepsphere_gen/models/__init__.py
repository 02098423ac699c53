"""models sub-package (see ../shared/DESIGN.md)."""
