"""On/off switches read from environment variables (one spelling for every switch of the package)."""
from __future__ import annotations

import os

__all__ = ["switched_off"]


def switched_off(name: str) -> bool:
    """True when ``$name`` is 0 / false / no / off (any case, surrounding blanks ignored); unset or
    anything else: on.  Read on each call."""
    return os.environ.get(name, "").strip().lower() in ("0", "false", "no", "off")
