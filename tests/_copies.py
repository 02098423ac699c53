"""Copies of a module the way users make them: ``copy.deepcopy`` and a ``torch.save`` round trip."""
import copy
import io

import torch


def deep_and_pickled_copies(module: torch.nn.Module) -> tuple[torch.nn.Module, torch.nn.Module]:
    """(``copy.deepcopy(module)``, ``torch.load(torch.save(module))``)."""
    buf = io.BytesIO()
    torch.save(module, buf)
    buf.seek(0)
    return copy.deepcopy(module), torch.load(buf, weights_only=False)
