"""Equivariance sweep: graph vs harmonic layers and models, DeepSphere's protocol.

Graph operators (DeepSphere, ICLR 2020): inputs are random maps made of spherical
harmonics of ONE degree l (white real coefficients a_lm, m = -l..l, i.e. healpy synfast
with power only at l), synthesised exactly on HEALPix (NESTED); rotations uniform on SO(3)
(seeded); the input is rotated exactly in harmonic space (``rotate_coefficients``, equal to
healpy's ``rotate_alm``), the operator's output map through the transform
(:class:`MapRotator`: HEALPix analysis with Jacobi iterations, rotation, synthesis) at
bandlimit 2 nside (where the iterations converge to float64 precision for band-limited
maps) or 3 nside for degrees l >= 2 nside (then the transform floor is no longer negligible:
every such record carries its own floor).  The error is ``equivariance.equivariance_error``
(plain ratio ``mean``, its square ``mean_sq``, ``max``).

Harmonic layers: random generalized signals, exact rotations in harmonic space
(``classic_table``, tensor-product activation, efficient layer), float32 and float64.
Models: rotation-invariant logits of graph / harmonic / hybrid classifiers on random
band-limited maps (``map_equivariance_error(..., invariant=True)``: relative to the logits' spread
over the maps, not their norm); the hybrid model is also split into its graph part, the bridge and the
part after the bridge (equivariance errors relative to the output's norm).

Every measurement is a record: layer, backend, sampling, resolution, k, variant, degree,
dtype, mean, mean_sq, max, seconds (+ n, published where a published figure exists, note).
"""
from __future__ import annotations

import time
import warnings
from typing import Callable

import numpy as np
import scipy.sparse as sp
import torch

from tqdm import tqdm

from .._io import atomic_savefig
from ..equivariance import equivariance_error, map_equivariance_error
from ..graph import build_graph
from ..harmonic import MapRotator, random_rotations, rotate_coefficients, synthesis
from ..models import DeepSphereClassifier, HarmonicClassifier, HybridClassifier
from ..nn import ChebConv, GeneralizedSignal, HealpixAvgPool, TensorProductActivation
from ..sampling import HealpixSampling
from .classic_table import PUBLISHED, classic_equivariance_table

__all__ = [
    "PUBLISHED_V2",
    "DEFAULT_DEGREES",
    "GRAPH_VARIANTS",
    "single_degree_coefficients",
    "graph_operator_tasks",
    "harmonic_tasks",
    "model_tasks",
    "sweep_tasks",
    "run_tasks",
    "format_records",
    "plot_records",
]

#: DeepSphere v2 figure data (plain ratio, operator L): (nside, degree) -> {k: error}.
PUBLISHED_V2 = {
    (32, 10): {8: 0.176, 20: 0.083, 40: 0.048},
    (32, 50): {8: 0.053, 20: 0.014, 40: 0.005},
    (64, 100): {8: 0.050, 20: 0.011, 40: 0.003},
    (128, 350): {8: 0.100, 20: 0.034, 40: 0.008},
}

#: degrees of the default sweep per nside (published points included).
DEFAULT_DEGREES = {
    32: (1, 2, 5, 10, 20, 30, 40, 50, 60),
    64: (2, 5, 10, 20, 50, 80, 100, 120),
    128: (5, 10, 50, 100, 200, 250, 350),
}

#: graph constructions measured: variant name -> build_graph keyword arguments.
GRAPH_VARIANTS = {
    "deepsphere-v2": {"kind": "knn"},
    "optimized": {"kind": "optimized"},
}

Task = Callable[[], list]


def single_degree_coefficients(l: int, n: int, seed: int, dtype=torch.float64) -> torch.Tensor:
    """(n, (l+1)^2, 1) real coefficients, white N(0, 1) at degree l, zero elsewhere."""
    gen = torch.Generator().manual_seed(int(seed))
    a = torch.zeros(n, (l + 1) ** 2, 1, dtype=torch.float64)
    a[:, l * l:] = torch.randn(n, 2 * l + 1, 1, generator=gen, dtype=torch.float64)
    return a.to(dtype)


def _band_coefficients(L: int, n: int, channels: int, seed: int, dtype) -> torch.Tensor:
    """(n, L^2, channels) white coefficients below L (random band-limited maps)."""
    gen = torch.Generator().manual_seed(int(seed))
    return torch.randn(n, L * L, channels, generator=gen, dtype=torch.float64).to(dtype)


def _rotation_bandlimit(nside: int, l: int) -> int:
    return 2 * nside if l < 2 * nside else 3 * nside


def _record(layer, backend, sampling, resolution, k, variant, degree, dtype, res, seconds, **extra) -> dict:
    rec = {"layer": layer, "backend": backend, "sampling": sampling, "resolution": int(resolution),
           "k": None if k is None else int(k), "variant": variant, "degree": None if degree is None else int(degree),
           "dtype": str(dtype).replace("torch.", ""), **res.as_dict(), "seconds": float(seconds)}
    rec.update(extra)
    return rec


def _sparse(M, dtype) -> torch.Tensor:
    """scipy sparse matrix -> torch sparse CSR tensor (int64 indices) in ``dtype``."""
    m = sp.csr_matrix(M)
    m.sum_duplicates()
    m.sort_indices()
    with warnings.catch_warnings():  # torch flags sparse CSR support as beta
        warnings.simplefilter("ignore", UserWarning)
        return torch.sparse_csr_tensor(torch.from_numpy(m.indptr.astype(np.int64)),
                                       torch.from_numpy(m.indices.astype(np.int64)),
                                       torch.from_numpy(np.asarray(m.data)).to(dtype), size=m.shape)


def _pad(coeffs: torch.Tensor, L: int) -> torch.Tensor:
    """Zero-pad (batch, l^2, C) coefficients to bandlimit L."""
    return torch.nn.functional.pad(coeffs, (0, 0, 0, L * L - coeffs.shape[1]))


def _apply(lap: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    B, P, C = x.shape
    return torch.mm(lap, x.transpose(0, 1).reshape(P, B * C)).view(P, B, C).transpose(0, 1)


# ----------------------------------------------------------------------------- graph
def graph_operator_tasks(nsides=(32,), ks=(8, 20, 40), degrees=None, variants=("deepsphere-v2",),
                         layers=("laplacian",), n_signals: int = 2, n_rotations: int = 3, seed: int = 0,
                         floor: bool = True) -> list[Task]:
    """Tasks measuring graph operators on single-degree signals (DeepSphere's protocol).

    ``layers``: "laplacian" (operator L, combinatorial), "chebconv" (random K=5 ChebConv on
    the rescaled Laplacian, 1 -> 4 channels), "pooling" (HEALPix average pooling by 4, output
    rotated at the coarse nside).  ``floor`` adds the identity operator (the transform floor)
    at every (nside, degree).  Each (variant, k) graph is built once (disk-cached).
    """
    tasks: list[Task] = []
    graphs: dict = {}

    def graph(nside, k, variant):
        key = (nside, k, variant)
        if key not in graphs:
            graphs[key] = build_graph(HealpixSampling(nside), k=k, **GRAPH_VARIANTS[variant])
        return graphs[key]

    for nside in nsides:
        s = HealpixSampling(nside)
        for l in (degrees or {}).get(nside, DEFAULT_DEGREES.get(nside, ())):
            if l >= 3 * nside:
                continue
            rot = MapRotator(s, _rotation_bandlimit(nside, l))
            rotations = list(random_rotations(n_rotations, seed=seed + 1))

            def measure(op, rotate_output, name, k, variant, nside=nside, l=l, s=s, rot=rot, rotations=rotations,
                        **extra):
                a = single_degree_coefficients(l, n_signals, seed + 1000 * l + nside)
                t0 = time.perf_counter()
                # synthesised at the rotator's bandlimit (zero-padded): one set of SHT tables per nside
                res = equivariance_error(lambda c: op(synthesis(_pad(c, rot.L), s, rot.L)), a, rotations,
                                         lambda c, R: rotate_coefficients(c, R), rotate_output)
                return [_record(name, "graph", "healpix", nside, k, variant, l, torch.float64, res,
                                time.perf_counter() - t0, note=f"output rotated at L={rot.L}", **extra)]

            if floor:
                tasks.append(lambda measure=measure, rot=rot: measure(lambda x: x, rot, "identity (floor)", None,
                                                                       "transform"))
            for variant in variants:
                for k in ks:
                    pub = PUBLISHED_V2.get((nside, l), {}).get(k) if variant == "deepsphere-v2" else None
                    if "laplacian" in layers:
                        def lap_task(nside=nside, k=k, variant=variant, measure=measure, rot=rot, pub=pub):
                            L = _sparse(graph(nside, k, variant).laplacian, torch.float64)
                            return measure(lambda x: _apply(L, x), rot, "laplacian", k, variant,
                                           **({"published": pub} if pub is not None else {}))
                        tasks.append(lap_task)
                    if "chebconv" in layers:
                        def cheb_task(nside=nside, k=k, variant=variant, measure=measure, rot=rot):
                            torch.manual_seed(seed)
                            g = graph(nside, k, variant)
                            conv = ChebConv(1, 4, 5, g.rescaled_laplacian(), dtype=torch.float64)
                            return measure(conv, rot, "chebconv K=5", k, variant)
                        tasks.append(cheb_task)
            if "pooling" in layers and l < nside:
                coarse = MapRotator(HealpixSampling(nside // 2), min(2 * (nside // 2), 3 * (nside // 2)))
                tasks.append(lambda measure=measure, coarse=coarse: measure(HealpixAvgPool(1), coarse,
                                                                            "avg pooling", None, "nested"))
    return tasks


# -------------------------------------------------------------------------- harmonic
def harmonic_tasks(L: int = 8, channels: int = 4, dtypes=(torch.float32, torch.float64), n_rotations: int = 3,
                   seed: int = 0) -> list[Task]:
    """Tasks: the classic layer table (S2/SO(3) convs, TP layer, S2/SO(3) ReLU baselines) and the
    tensor-product activation alone, in every dtype; exact rotations in harmonic space."""
    tasks: list[Task] = []
    for dtype in dtypes:
        def table(dtype=dtype):
            t0 = time.perf_counter()
            rows = classic_equivariance_table(L=L, channels=channels, batch=2, n_rotations=n_rotations,
                                              dtype=dtype, seed=seed)
            dt = (time.perf_counter() - t0) / max(len(rows), 1)
            out = []
            for r in rows:
                res = _Fixed(r["mean"], r.get("mean_sq", r["mean"] ** 2), r["max"])
                sampling = "mw" if "ReLU" in r["layer"] else "harmonic"
                out.append(_record(r["layer"], "harmonic", sampling, L, None, "cobb2021", None, dtype, res, dt,
                                   published=PUBLISHED[r["layer"]]))
            return out

        def tp(dtype=dtype):
            torch.manual_seed(seed)
            gen = torch.Generator().manual_seed(seed)
            x = GeneralizedSignal([torch.randn(2, channels, 2 * l + 1, 1, generator=gen, dtype=torch.float64).to(dtype)
                                   for l in range(L)])
            layer = TensorProductActivation(L, channels, 1, mixing="mst").to(dtype)
            t0 = time.perf_counter()
            res = equivariance_error(layer, x, list(random_rotations(n_rotations, seed=seed + 1)),
                                     lambda s, a: s.rotate(a))
            return [_record("tensor-product activation", "harmonic", "harmonic", L, None, "cobb2021", None, dtype,
                            res, time.perf_counter() - t0)]
        tasks += [table, tp]
    return tasks


class _Fixed:
    """An EquivarianceResult-like holder for figures computed elsewhere."""
    def __init__(self, mean, mean_sq, mx):
        self.m = {"mean": float(mean), "mean_sq": float(mean_sq), "max": float(mx)}

    def as_dict(self) -> dict:
        return dict(self.m)


# ---------------------------------------------------------------------------- models
def model_tasks(nside: int = 16, k: int = 20, L_in: int | None = None, n_inputs: int = 2, n_rotations: int = 3,
                seed: int = 0, dtype=torch.float64) -> list[Task]:
    """Tasks: invariance error of whole graph / harmonic / hybrid classifiers (eval mode) on random
    maps band-limited below ``L_in`` (default nside), relative to the logits' spread over those maps
    (``map_equivariance_error(..., invariant=True)`` with its default batch of maps), and the hybrid
    model's parts (equivariance errors on ``n_inputs`` maps, relative to the output's norm)."""
    s = HealpixSampling(nside)
    L_in = L_in or nside
    rotations = list(random_rotations(n_rotations, seed=seed + 1))
    # the same random band-limited maps (coefficients seeded by seed + 7) for every model
    # (the logits: map_equivariance_error's default batch for invariant=True; the parts: n_inputs maps)
    logits = {"rotations": rotations, "dtype": dtype, "seed": seed + 7}
    maps = {**logits, "batch": n_inputs}

    def spread_note(res):
        return f"input band-limited below L={L_in}; relative to the logits' spread over {res.errors.shape[1]} maps"

    def invariant(name, backend, build, sampling="healpix", resolution=nside, kk=k):
        def task():
            torch.manual_seed(seed)
            model = build().eval()
            t0 = time.perf_counter()
            res = map_equivariance_error(model, s, L=L_in, invariant=True, **logits)
            return [_record(name, backend, sampling, resolution, kk, "deepsphere-v2" if kk else None, None, dtype,
                            res, time.perf_counter() - t0, note=spread_note(res))]
        return task

    def hybrid_parts():
        torch.manual_seed(seed)
        model = HybridClassifier(nside, k=k, graph_channels=(4, 8), bandlimits=(nside // 2, 4), harmonic_channels=(8,),
                                 dtype=dtype).eval()
        low = model.low_sampling
        out = []
        t0 = time.perf_counter()
        res = map_equivariance_error(model.graph_features, s, low, L=L_in, L_out=2 * low.nside, **maps)
        out.append(_record("hybrid: graph part", "hybrid", "healpix", nside, k, "deepsphere-v2", None, dtype, res,
                           time.perf_counter() - t0))
        # bridge alone on maps band-limited below its L: the HEALPix analysis error
        Lb = model.bridge.L
        t0 = time.perf_counter()
        res = map_equivariance_error(model.bridge, low, L=Lb, channels=model.bridge.channels,
                                     **{**maps, "seed": seed + 11})
        out.append(_record("hybrid: bridge", "hybrid", "healpix", low.nside, None, None, None, dtype, res,
                           time.perf_counter() - t0, note=f"L={Lb}"))
        with torch.no_grad():
            sig = model.bridge(model.graph_features(synthesis(_band_coefficients(L_in, n_inputs, 1, seed + 7, dtype),
                                                              s, L_in)))
        t0 = time.perf_counter()
        res = equivariance_error(model.harmonic_signal, sig, rotations, lambda y, R: y.rotate(R))
        out.append(_record("hybrid: after bridge", "hybrid", "harmonic", Lb, None, None, None, dtype, res,
                           time.perf_counter() - t0))
        t0 = time.perf_counter()
        res = map_equivariance_error(model, s, L=L_in, invariant=True, **logits)
        out.append(_record("hybrid classifier (total)", "hybrid", "healpix", nside, k, "deepsphere-v2", None, dtype,
                           res, time.perf_counter() - t0, note=spread_note(res)))
        return out

    return [
        invariant("graph classifier", "graph",
                  lambda: DeepSphereClassifier(nside, 1, channels=(4, 8), n_classes=3, k=k, dtype=dtype)),
        invariant("harmonic classifier", "harmonic",
                  lambda: HarmonicClassifier(3, bandlimits=(L_in, 6, 4), channels=(4, 8, 8), sampling=s, dtype=dtype
                                             ).to(dtype), kk=None),
        hybrid_parts,
    ]


# ----------------------------------------------------------------------------- sweep
def sweep_tasks(quick: bool = False, seed: int = 0, graphs: bool = False) -> list[Task]:
    """The command's default, ``quick`` or ``graphs`` list of measurement tasks.

    ``graphs``: only the Laplacian curves of the figure (v2 k = 8/20/40 and the optimised graph at
    k = 20 on nside 32 and 64, every default degree) and the published nside-128, l = 350 point.
    """
    if quick:
        tasks = graph_operator_tasks((32,), (8, 20, 40), {32: (10, 50)}, ("deepsphere-v2",),
                                     ("laplacian",), n_signals=2, n_rotations=2, seed=seed)
        tasks += graph_operator_tasks((32,), (20,), {32: (10,)}, ("deepsphere-v2",), ("chebconv", "pooling"),
                                      n_signals=1, n_rotations=2, seed=seed, floor=False)
        tasks += harmonic_tasks(L=6, channels=3, n_rotations=2, seed=seed)
        tasks += model_tasks(nside=8, n_inputs=2, n_rotations=2, seed=seed)
        return tasks
    if graphs:
        tasks = graph_operator_tasks((32, 64), (8, 20, 40), None, ("deepsphere-v2",), n_signals=3, n_rotations=4,
                                     seed=seed)
        tasks += graph_operator_tasks((32, 64), (20,), None, ("optimized",), n_signals=3, n_rotations=4, seed=seed,
                                      floor=False)
        return tasks + graph_operator_tasks((128,), (8, 20, 40), {128: (350,)}, ("deepsphere-v2",), n_signals=3,
                                            n_rotations=4, seed=seed)
    tasks = graph_operator_tasks((32, 64, 128), (8, 20, 40), None, ("deepsphere-v2",),
                                 ("laplacian", "chebconv", "pooling"), n_signals=3, n_rotations=4, seed=seed)
    # the equivariance-optimised graph at k = 20 (the goal: as equivariant as v2 at k = 40)
    tasks += graph_operator_tasks((32, 64), (20,), None, ("optimized",), ("laplacian", "chebconv"), n_signals=3,
                                  n_rotations=4, seed=seed, floor=False)
    tasks += harmonic_tasks(L=8, channels=4, n_rotations=4, seed=seed)
    tasks += model_tasks(nside=16, n_inputs=3, n_rotations=4, seed=seed)
    return tasks


def run_tasks(tasks: list[Task], progress: bool = True) -> list[dict]:
    """Run every task (tqdm progress bar) and concatenate the records."""
    records: list[dict] = []
    for task in tqdm(tasks, desc="equivariance", unit="case", disable=None if progress else True, leave=False):
        records += task()
    return records


def format_records(records: list[dict]) -> str:
    """Terminal table, one line per record; the layer and variant columns as wide as their longest name
    (names are shown whole)."""
    cols = ("layer", "backend", "sampling", "resolution", "k", "variant", "degree", "dtype")
    values = [{c: str("-" if r.get(c) is None else r[c]) for c in cols} for r in records]
    wl = max([43] + [len(v["layer"]) for v in values]) + 1
    wv = max([13] + [len(v["variant"]) for v in values]) + 1
    head = f"{'layer':<{wl}}{'backend':<9}{'sampl.':<9}{'res':>5}{'k':>4} {'variant':<{wv}}{'l':>5} {'dtype':<8}" \
           f"{'mean':>10}{'mean_sq':>10}{'max':>10}{'publ.':>9}{'s':>7}"
    lines = [head]
    for r, v in zip(records, values):
        pub = r.get("published")
        lines.append(f"{v['layer']:<{wl}}{v['backend']:<9}{v['sampling']:<9}{v['resolution']:>5}{v['k']:>4} "
                     f"{v['variant']:<{wv}}{v['degree']:>5} {v['dtype']:<8}{r['mean']:>10.2e}"
                     f"{r['mean_sq']:>10.2e}{r['max']:>10.2e}{'-' if pub is None else f'{pub:.3g}':>9}"
                     f"{r['seconds']:>7.2f}")
    return "\n".join(lines)


def plot_records(records: list[dict], path) -> None:
    """PNG: Laplacian error vs degree, one panel per nside, one line per (k, variant), like
    DeepSphere's figure; published points as crosses, the transform floor dotted."""
    import matplotlib  # deferred: only plotting needs it, and the backend must be set before pyplot

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    lap = [r for r in records if r["layer"] == "laplacian"]
    nsides = sorted({r["resolution"] for r in lap})
    if not nsides:
        raise ValueError("no Laplacian records to plot")
    fig, axes = plt.subplots(1, len(nsides), figsize=(5 * len(nsides), 4), squeeze=False)
    for ax, nside in zip(axes[0], nsides):
        rows = [r for r in lap if r["resolution"] == nside]
        curves = sorted({(r["variant"] != "deepsphere-v2", r["k"], r["variant"]) for r in rows})
        for _, k, variant in curves:
            pts = sorted((r["degree"], r["mean"]) for r in rows if r["k"] == k and r["variant"] == variant)
            v2 = variant == "deepsphere-v2"
            ax.plot(*zip(*pts), marker="o" if v2 else "s", ls="-" if v2 else "--", color=None if v2 else "k",
                    label=f"{variant} k={k}")
        low = 0.5 * min(r["mean"] for r in rows)
        floor = sorted((r["degree"], r["mean"]) for r in records
                       if r["layer"] == "identity (floor)" and r["resolution"] == nside)
        if floor and max(e for _, e in floor) >= low:
            ax.plot(*zip(*floor), color="gray", ls=":", label="transform floor")
        elif floor:  # far below the curves: say so instead of stretching the axis
            ax.text(0.02, 0.02, f"transform floor <= {max(e for _, e in floor):.0e}", transform=ax.transAxes,
                    fontsize=7, color="gray")
        pub = [(l, e) for (ns, l), d in PUBLISHED_V2.items() if ns == nside for e in d.values()]
        if pub:
            ax.plot(*zip(*pub), "kx", label="published (v2)")
        ax.set_yscale("log")
        ax.set_xlabel("degree l")
        ax.set_ylabel("mean relative error ||L R f - R L f|| / ||L f||")
        ax.set_title(f"HEALPix nside {nside}")
        ax.legend(fontsize=7)
    fig.tight_layout()
    atomic_savefig(fig, path, dpi=110)
    plt.close(fig)
