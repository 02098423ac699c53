"""Public names of a package loaded from its modules at first use (PEP 562 ``__getattr__``).

For a package whose ``__init__`` must stay light: importing one of its small modules (a
torch-free ``config`` the command line's ``--help`` reads) runs the ``__init__`` first, so an
``__init__`` that imported every module would import torch there too."""
from __future__ import annotations

import importlib
import sys
from typing import Callable


def lazy_exports(package: str, modules: dict[str, tuple[str, ...]]
                 ) -> tuple[Callable[[str], object], Callable[[], list[str]], list[str]]:
    """``(__getattr__, __dir__, names)`` for the package named ``package`` whose public ``names`` live in
    its modules (``modules``: module name relative to the package -> the names it defines).  A name's
    module is imported at the name's first use and the name then becomes a plain attribute of the
    package; any other missing name raises AttributeError naming it."""
    module_of = {name: module for module, names in modules.items() for name in names}
    if len(module_of) != sum(len(names) for names in modules.values()):
        raise ValueError(f"{package}: a public name is listed under two modules")

    def __getattr__(name: str):
        module = module_of.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(f".{module}", package), name)
        setattr(sys.modules[package], name, value)
        return value

    def __dir__() -> list[str]:
        return sorted({*vars(sys.modules[package]), *module_of})

    return __getattr__, __dir__, list(module_of)
