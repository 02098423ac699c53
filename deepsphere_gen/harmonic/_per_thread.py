"""Per-thread work arrays that engines keep between calls (copies and pickles start empty)."""
from __future__ import annotations

import threading

__all__ = ["PerThread"]


class PerThread(threading.local):
    """Attributes seen by one thread only.  ``copy.deepcopy`` and pickling give a new, empty
    holder (plain ``threading.local`` objects refuse both, which would make every module that
    holds an engine uncopyable)."""

    def __reduce__(self):
        return (type(self), ())
