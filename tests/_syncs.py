"""Count the host synchronisations of a call on CPU: value checks and tensor -> Python conversions."""
import contextlib
import sys
from collections import Counter

import torch

from deepsphere_gen import _validation

# every way a tensor value reaches Python (on a GPU each waits for the device)
_CONVERSIONS = ("__bool__", "item", "__float__", "__int__", "__index__", "tolist")


@contextlib.contextmanager
def count_syncs():
    """Yield a Counter: ``["check_finite"]`` calls of the value check (every module's binding of
    ``deepsphere_gen._validation.check_finite`` is wrapped) and ``["host"]`` tensor -> Python
    conversions (``bool()``, ``.item()``, ``float()``, ``int()``, ``.tolist()``)."""
    counts = Counter()
    original = _validation.check_finite

    def check_finite(*args, **kwargs):
        counts["check_finite"] += 1
        return original(*args, **kwargs)

    modules = [m for name, m in list(sys.modules.items())
               if name.startswith("deepsphere_gen") and getattr(m, "check_finite", None) is original]
    methods = {name: getattr(torch.Tensor, name) for name in _CONVERSIONS}
    own = {name for name in _CONVERSIONS if name in vars(torch.Tensor)}  # the rest are inherited

    def wrap(method):
        def counted(self, *args, **kwargs):
            counts["host"] += 1
            return method(self, *args, **kwargs)
        return counted

    try:
        for m in modules:
            m.check_finite = check_finite
        for name, method in methods.items():
            setattr(torch.Tensor, name, wrap(method))
        yield counts
    finally:
        for m in modules:
            m.check_finite = original
        for name, method in methods.items():
            if name in own:
                setattr(torch.Tensor, name, method)
            else:
                delattr(torch.Tensor, name)
