"""Where the commands keep generated data and caches (XDG base-directory convention).

Cache root: ``$DEEPSPHERE_GEN_CACHE`` when set, else ``$XDG_CACHE_HOME/deepsphere_gen``,
else ``~/.cache/deepsphere_gen``.  Generated mass maps go to ``<root>/massmaps`` by
default, the ``cosmo`` simulations to ``<root>/cosmo``, the spherical digits' splits to ``<root>/digits``; graph
weight matrices to ``<root>/graphs`` (``deepsphere_gen.graph``'s cache uses :func:`graph_cache_dir` unless given an
explicit cache directory).  The one place of these rules: the data sets, the commands and their help texts read
them here.  Cheap to import (no torch).
"""
from __future__ import annotations

import os
from pathlib import Path

__all__ = ["ENV_VAR", "cache_root", "cosmo_data_dir", "default_data_dir", "digits_data_dir", "graph_cache_dir"]

#: environment variable that moves the whole cache
ENV_VAR = "DEEPSPHERE_GEN_CACHE"


def cache_root() -> Path:
    """``$DEEPSPHERE_GEN_CACHE``, else ``$XDG_CACHE_HOME/deepsphere_gen``, else ``~/.cache/deepsphere_gen``."""
    if os.environ.get(ENV_VAR):
        return Path(os.environ[ENV_VAR]).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg and Path(xdg).is_absolute() else Path.home() / ".cache"
    return base / "deepsphere_gen"


def default_data_dir() -> Path:
    """Default cache of generated mass maps: ``cache_root() / "massmaps"``."""
    return cache_root() / "massmaps"


def cosmo_data_dir() -> Path:
    """Default cache of the ``cosmo`` simulations: ``cache_root() / "cosmo"``."""
    return cache_root() / "cosmo"


def digits_data_dir() -> Path:
    """Default cache of the spherical digits' splits: ``cache_root() / "digits"``."""
    return cache_root() / "digits"


def graph_cache_dir() -> Path:
    """Where the graph backend caches weight matrices (``cache_root() / "graphs"``)."""
    return cache_root() / "graphs"
