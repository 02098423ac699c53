"""Where a warning points: the first caller outside given folders (this package's, torch.nn's), so that
a warning names the user's line, and each such line warns once under Python's default filter."""
from __future__ import annotations

import os
import sys


def folder_of(file: str) -> str:
    """The folder of ``file``, absolute, with a trailing separator: a prefix for :func:`caller_stacklevel`."""
    return os.path.dirname(os.path.abspath(file)) + os.sep


#: this package's folder: warnings name the first line outside it
PACKAGE = folder_of(__file__)


def caller_stacklevel(folders: tuple[str, ...]) -> int:
    """The ``stacklevel`` for ``warnings.warn`` in the function calling this one that names the first
    frame whose file is outside every folder of ``folders`` (prefixes from :func:`folder_of`); 1 (that
    function's line) counts as inside when its own file is."""
    frame, level = sys._getframe(1), 1
    while frame is not None and os.path.abspath(frame.f_code.co_filename).startswith(folders):
        frame, level = frame.f_back, level + 1
    return level
