"""Settings of the spherical-digits benchmark (:mod:`.digits`): :class:`DigitsConfig`, ``--quick``, model names.

Importing this module costs no torch import, so that ``deepsphere-gen digits --help`` can
name the models and settings in a fraction of a second; :mod:`.digits` re-exports all of it
(and defines the models themselves, ``MODELS``, whose keys are :data:`MODEL_NAMES`).
"""
from __future__ import annotations

import importlib.util
from dataclasses import dataclass, replace

__all__ = ["DigitsConfig", "QUICK", "MODEL_NAMES", "PAPER", "available_models", "with_quick"]

#: Cobb et al. 2021, Table "Spherical MNIST" (MNIST, 60k images): NR/NR, R/R, NR/R accuracy (%).
PAPER = {
    "Planar CNN": (99.32, 90.74, 11.36),
    "Cohen et al. 2018": (95.59, 94.62, 93.40),
    "Kondor et al. 2018": (96.40, 96.60, 96.00),
    "Esteves et al. 2018": (99.37, 99.37, 99.08),
    "Cobb et al. 2021 (MST)": (99.35, 99.38, 99.34),
    "Cobb et al. 2021 (RMST)": (99.29, 99.17, 99.18),
}


@dataclass(frozen=True)
class DigitsConfig:
    """Settings of one run.

    n_train, n_test : first n of the stratified sklearn train / test parts (None: all,
        1,347 / 450 with ``test_fraction`` 0.25).
    epochs, batch_size, lr : of the training loop (:mod:`deepsphere_gen.training`, Adam);
        after ``round(decay_at * epochs)`` epochs the learning rate drops to ``lr * decay``.
    seed : data split, rotations, weight init and batch order.
    bandwidth : Driscoll-Healy grid (2b x 2b, b >= 10) of the harmonic and S2/SO(3) models
        (their input bandlimit is 10: a finer grid lowers the aliasing of the non-band-limited
        digits) and of the planar back-projection.  nside : HEALPix grid (power of 2 >= 8)
        of the graph and hybrid models.
    device : "cpu" or "cuda".  data_dir : digit cache (default: ``build_split``'s).
    infer_batch : batch size of the inference timing.
    """

    n_train: int | None = None
    n_test: int | None = None
    epochs: int = 12
    batch_size: int = 32
    lr: float = 3e-3
    decay_at: float = 2 / 3
    decay: float = 0.1
    seed: int = 0
    bandwidth: int = 20
    nside: int = 8
    device: str = "cpu"
    data_dir: str | None = None
    infer_batch: int = 64

    def __post_init__(self):
        from .._validation import check_positive_int  # imports torch: here, so that importing this module stays cheap

        for name in ("epochs", "batch_size", "bandwidth", "nside", "infer_batch"):
            check_positive_int(getattr(self, name), name)
        if self.bandwidth < 10:
            raise ValueError(f"bandwidth must be >= 10 (the harmonic and S2/SO(3) inputs use bandlimit 10), got {self.bandwidth}")
        if self.nside < 8 or self.nside & (self.nside - 1):
            raise ValueError(f"nside must be a power of 2 >= 8 (the graph model pools three times), got {self.nside}")
        if not (0 <= self.decay_at <= 1 and 0 < self.decay <= 1):
            raise ValueError(f"need 0 <= decay_at <= 1 and 0 < decay <= 1, got {self.decay_at!r} and {self.decay!r}")
        if not self.lr > 0:
            raise ValueError(f"lr must be positive, got {self.lr!r}")
        if self.device not in ("cpu", "cuda") and not str(self.device).startswith("cuda:"):
            raise ValueError(f"device must be 'cpu' or 'cuda', got {self.device!r}")


#: ``--quick``: a subset and fewer epochs (every model still runs on every split).
QUICK = dict(n_train=500, n_test=250, epochs=6)


#: the benchmark's models, in table order (the keys of ``digits.MODELS``)
MODEL_NAMES = ("planar", "planar-grid", "graph", "harmonic-mst", "harmonic-rmst", "hybrid", "cohen")


def available_models() -> list[str]:
    """Names of the models whose code is present (the hybrid model may be missing; looking
    for it imports ``deepsphere_gen.models``, hence torch)."""
    names = list(MODEL_NAMES)
    if importlib.util.find_spec("deepsphere_gen.models.hybrid") is None:
        names.remove("hybrid")
    return names


def with_quick(config: DigitsConfig) -> DigitsConfig:
    """The config with the ``--quick`` subset and epochs."""
    return replace(config, **QUICK)
