"""Seeds derived from a run's seed (NumPy only: imported by torch-free configuration modules)."""
from __future__ import annotations

import numpy as np

__all__ = ["ensemble_seed"]


def ensemble_seed(seed: int, member: int, stream: int) -> int:
    """Training seed of ensemble member ``member`` of a run seeded ``seed``: ``seed`` itself for
    member 0 (the single network), else 31 bits of ``SeedSequence([seed, stream, member])``;
    ``stream``: a constant of the experiment, so that two experiments' members differ."""
    if member == 0:
        return int(seed)
    return int(np.random.SeedSequence([int(seed), int(stream), int(member)]).generate_state(1)[0] >> 1)
