"""Atomic file writes: a reader never sees a half-written file."""
from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import BinaryIO, Callable

__all__ = ["atomic_write", "atomic_write_json"]


def atomic_write(path, write: Callable[[BinaryIO], object]) -> Path:
    """Call ``write(fh)`` on a temporary binary file next to ``path``, then rename it to ``path``.

    The parent folder is created; on any error the temporary file is removed and
    ``path`` is left as it was.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def atomic_write_json(path, obj, **dumps_kwargs) -> Path:
    """Write ``obj`` as JSON (``json.dumps(obj, **dumps_kwargs)``) atomically; NaN is refused."""
    dumps_kwargs.setdefault("indent", 1)
    text = json.dumps(obj, allow_nan=False, **dumps_kwargs) + "\n"
    return atomic_write(path, lambda fh: fh.write(text.encode()))
