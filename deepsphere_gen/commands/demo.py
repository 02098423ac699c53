"""``deepsphere-gen demo``: train a small DeepSphere classifier on generated Gaussian maps.

Two classes of random Gaussian HEALPix maps whose power spectra differ only in their slope,
C_l ~ (l + 1) ** -alpha, every map scaled to unit variance and buried in white noise, so
neither the amplitude nor a single pixel gives the class away.  Prints the running training
loss and accuracy per epoch, then the test accuracy with its 95 % Wilson interval (binomial
over the independent test maps).  numpy, healpy, torch and
the model are imported inside the functions that use them (``demo --help`` stays fast).
"""
from __future__ import annotations

import math
import time
from typing import TYPE_CHECKING

from ._exits import fail
from ._preflight import check_device, check_k, check_seed

if TYPE_CHECKING:
    import numpy as np

HELP = "train a small DeepSphere classifier on two classes of generated maps and print its accuracy"

QUICK = dict(nside=8, epochs=5, n_train=256, n_test=256, channels=(8, 16, 32), noise=0.5, lr=5e-3)
FULL = dict(nside=32, epochs=12, n_train=1536, n_test=512, channels=(16, 32, 64, 64), noise=1.0, lr=3e-3)
SLOPES = (1.5, 2.0)  # power-law index alpha of the two classes
BATCH_SIZE = 16
K_NEIGHBOURS = 20  # default --k


def add_arguments(parser) -> None:
    def default(key):
        return f"default {FULL[key]:g}; {QUICK[key]:g} with --quick"

    parser.add_argument("--quick", action="store_true", help="small settings: runs in under a minute on 2 CPU cores")
    parser.add_argument("--nside", type=int, default=None,
                        help=f"HEALPix resolution, a power of 2 ({default('nside')})")
    parser.add_argument("--epochs", type=int, default=None, help=f"training epochs ({default('epochs')})")
    parser.add_argument("--n-train", type=int, default=None, metavar="N",
                        help=f"training maps, an even number >= 2: half per class ({default('n_train')})")
    parser.add_argument("--n-test", type=int, default=None, metavar="N",
                        help=f"test maps, an even number >= 2: half per class ({default('n_test')})")
    parser.add_argument("--batch-size", type=int, default=BATCH_SIZE, metavar="N",
                        help=f"training batch size (default {BATCH_SIZE})")
    parser.add_argument("--lr", type=float, default=None, help=f"AdamW learning rate ({default('lr')})")
    parser.add_argument("--noise", type=float, default=None,
                        help=f"white-noise std relative to the unit-variance signal, >= 0 ({default('noise')})")
    parser.add_argument("--K", type=int, default=5, metavar="ORDERS",
                        help="Chebyshev polynomial orders per graph convolution (default 5)")
    parser.add_argument("--k", type=int, default=None, metavar="NEIGHBOURS",
                        help=f"neighbours per pixel of the kNN graphs, < 12 nside^2 (default {K_NEIGHBOURS}, "
                             "capped at 12 nside^2 - 1)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the maps, initialisation and batches (default 0)")
    parser.add_argument("--device", default="cpu", help="torch device, e.g. cpu or cuda (default cpu)")


def _settings(args) -> dict:
    """The preset (``QUICK`` or ``FULL``) with every option given (not None) in its place, and ``k``
    (a given --k must be < 12 nside^2, the pixels of the maps; the default is capped at 12 nside^2 - 1,
    a complete graph, as the graphs of the coarse levels are); ValueError naming the first bad option."""
    preset = QUICK if args.quick else FULL
    out = {key: default if getattr(args, key, None) is None else getattr(args, key) for key, default in preset.items()}
    from .._validation import check_positive_int
    from ..sampling import check_nside  # (torch, as in generate_maps: not for --help)

    try:
        nside = out["nside"] = check_nside(out["nside"])
    except ValueError as exc:
        raise ValueError(f"--nside: {exc}") from None
    check_positive_int(out["epochs"], "--epochs")
    for key in ("n_train", "n_test"):
        if out[key] < 2 or out[key] % 2:  # odd: unbalanced classes, and chance would not be 50 %
            raise ValueError(f"--{key.replace('_', '-')} must be an even number >= 2 (half the maps per class), "
                             f"got {out[key]}")
    for name, value in (("--batch-size", args.batch_size), ("--K", args.K), ("--k", args.k)):
        if value is not None:
            check_positive_int(value, name)
    out["k"] = K_NEIGHBOURS if args.k is None else args.k
    out["k_notes"] = check_k(out["k"], args.k is not None, [(f"nside {nside}", 12 * nside**2)], "a larger --nside")
    if not (math.isfinite(out["lr"]) and out["lr"] > 0):
        raise ValueError(f"--lr must be a positive number, got {out['lr']}")
    if not (math.isfinite(out["noise"]) and out["noise"] >= 0):
        raise ValueError(f"--noise must be a number >= 0, got {out['noise']}")
    check_seed(args.seed)
    return out


def generate_maps(n: int, nside: int, alpha: float, noise: float, rng: np.random.Generator) -> np.ndarray:
    """(n, 12 nside**2) float32 NESTED maps: Gaussian field with C_l ~ (l+1)**-alpha (l >= 1),
    scaled to unit variance, plus white noise of std ``noise``."""
    import healpy as hp  # here, not at the top: ``demo --help`` stays fast
    import numpy as np

    lmax = 3 * nside - 1
    ell = np.arange(lmax + 1)
    cl = (ell + 1.0) ** -alpha
    cl[0] = 0.0
    l_of, m_of = hp.Alm.getlm(lmax)
    amp = np.sqrt(cl[l_of])
    maps = np.empty((n, 12 * nside**2))
    for i in range(n):
        re, im = rng.standard_normal((2, l_of.size))
        alm = np.where(m_of == 0, re, (re + 1j * im) / np.sqrt(2)) * amp
        maps[i] = hp.alm2map(alm.astype(np.complex128), nside, lmax=lmax)
    maps = hp.reorder(maps, r2n=True)
    maps /= maps.std(axis=1, keepdims=True)
    maps += noise * rng.standard_normal(maps.shape)
    return maps.astype(np.float32)


def make_dataset(n: int, nside: int, noise: float, rng: np.random.Generator):
    """Maps (n, npix, 1) and labels (n,) for the two slopes, shuffled; n // 2 of the first class (balanced
    for an even ``n``, as the command requires)."""
    import numpy as np  # (as in generate_maps)
    import torch

    half = [n // 2, n - n // 2]
    x = np.concatenate([generate_maps(h, nside, a, noise, rng) for h, a in zip(half, SLOPES)])
    y = np.concatenate([np.full(h, c) for c, h in enumerate(half)])
    perm = rng.permutation(n)
    return torch.from_numpy(x[perm, :, None]), torch.from_numpy(y[perm]).long()


def run(args) -> int:
    import numpy as np  # (as in generate_maps)
    import torch
    from torch.utils.data import TensorDataset

    from ..experiments.reporting import wilson_interval
    from ..graph import capped_k
    from ..models import DeepSphereClassifier
    from ..training import TrainConfig, distributed_context, evaluate, fit

    try:
        settings = _settings(args)
        device = torch.device(check_device(args.device))
    except ValueError as exc:
        return fail("demo", str(exc))
    nside, epochs, n_train, n_test, noise, lr = (settings[k] for k in ("nside", "epochs", "n_train", "n_test",
                                                                       "noise", "lr"))
    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    t0 = time.perf_counter()
    x_train, y_train = make_dataset(n_train, nside, noise, rng)
    x_test, y_test = make_dataset(n_test, nside, noise, rng)
    # as many pooling blocks as the resolution allows (down to nside 1)
    depth = min(len(settings["channels"]), int(np.log2(nside)))
    channels = settings["channels"][:max(depth, 1)]
    k = capped_k(12 * nside**2, settings["k"])  # the default on a tiny map: a complete graph (noted below)
    model = DeepSphereClassifier(nside, 1, channels=channels, n_classes=2, K=args.K, k=k,
                                 pool_levels=1 if depth else 0).to(device)
    print(f"data: {n_train} train / {n_test} test maps at nside {nside}, classes C_l ~ (l+1)^-{SLOPES[0]} "
          f"vs (l+1)^-{SLOPES[1]}, unit variance, noise {noise} ({time.perf_counter() - t0:.1f} s)")
    for note in settings["k_notes"]:
        print(f"note: {note}")
    print(model.summary())
    # the project's loop: AdamW (no weight decay), seeded batches, BatchNorm statistics recomputed
    # with the final weights, progress bars only on a terminal
    config = TrainConfig(epochs=epochs, batch_size=args.batch_size, lr=lr, seed=args.seed, device=str(device),
                         desc="demo")
    fit(model, TensorDataset(x_train, y_train), config)
    res = evaluate(model, TensorDataset(x_test, y_test), ctx=distributed_context(str(device)))
    correct, n = int(res["correct"]), res["n"]
    lo, hi = wilson_interval(correct, n)
    print(f"test accuracy: {100 * correct / n:.1f} % ({correct}/{n} test maps; 95 % Wilson interval "
          f"{100 * lo:.1f}-{100 * hi:.1f} %; chance 50.0 %) in {time.perf_counter() - t0:.1f} s")
    return 0
