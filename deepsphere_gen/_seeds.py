"""Seeds derived from a run's seed (NumPy only: imported by torch-free configuration modules)."""
from __future__ import annotations

import numpy as np

__all__ = ["derived_seeds", "ensemble_seed"]


def derived_seeds(seed: int, key, n: int = 1) -> tuple[int, ...]:
    """``n`` 31-bit seeds (0 <= s < 2**31) drawn from ``SeedSequence([seed, *key])``: its first ``n`` state words,
    each shifted right by one bit (word i does not depend on ``n``).  ``key``: integers naming what is seeded
    (an experiment's stream constant, a member, a method's number), so that different keys give independent seeds."""
    words = np.random.SeedSequence([int(seed), *(int(k) for k in key)]).generate_state(n) >> 1
    return tuple(int(w) for w in words)


def ensemble_seed(seed: int, member: int, stream: int) -> int:
    """Training seed of ensemble member ``member`` of a run seeded ``seed``: ``seed`` itself for
    member 0 (the single network), else ``derived_seeds(seed, (stream, member))``, i.e. 31 bits of
    ``SeedSequence([seed, stream, member])``; ``stream``: a constant of the experiment, so that two
    experiments' members differ."""
    if member == 0:
        return int(seed)
    return derived_seeds(seed, (stream, member))[0]
