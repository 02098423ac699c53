"""Degree-mixing sets of the tensor-product activation (Cobb et al. 2021, sec. 5.3).

For an output degree ``l`` the admissible input pairs are

    P_L^l = {(l1, l2) in {0..L-1}^2 : |l1 - l2| <= l <= l1 + l2},

stored here unordered (``l1 <= l2``).  Read as the edge set of the graph
G_L^l = (nodes {0..L-1}, edges P_L^l), a subset of pairs that keeps every node
connected to every other one it was connected to is a spanning tree.

Decisions (the paper's exact wording could not be re-checked offline; recorded here):

* **Cost model.**  The work of projecting ``f^l1 (x) f^l2`` onto one output degree is
  proportional to the number of products ``u[m1] v[m2]``, i.e.
  ``pair_cost(l1, l2) = (2 l1 + 1)(2 l2 + 1)`` (a sparse Clebsch-Gordan contraction
  touches each product a bounded number of times).  The cost of a mixing set is the sum
  of ``pair_cost`` over all its (l1, l2, l) triples; with it the full set costs O(L^5).
* **MST.**  For each output degree ``l >= 1`` the edges of G_L^l (loops excluded; the
  graph is connected for ``1 <= l < L``) weighted by ``pair_cost`` give a minimum
  spanning tree (Kruskal, ties broken by (l1, l2)): ``L - 1`` pairs per degree, total
  cost O(L^4).  G_L^0 has loops only (``(l1, l1)``: the invariants ``|f^l1|^2``) and no
  spanning tree; every loop is kept there so each input degree reaches the invariant
  output.
* **RMST.**  The same construction restricted to the node set
  ``{0} u {2^k < L} u {L - 1} u {l}`` (logarithmic subsampling; ``0`` and ``l`` are
  added so that the pair ``(0, l)`` keeps every output degree reachable): O(log L) pairs
  per degree, nodes unreachable inside the subset are dropped; total cost O(L^3 log L)
  (in fact O(L^3): the log-spaced degrees' costs form a geometric series).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Sequence

import numpy as np

from .._validation import check_positive_int

__all__ = [
    "MixingSet",
    "MIXING_KINDS",
    "pair_cost",
    "admissible_pairs",
    "log_spaced_degrees",
    "full_mixing_set",
    "mst_mixing_set",
    "rmst_mixing_set",
    "mixing_set",
    "check_mixing",
    "mixing_set_table",
    "fit_scaling_exponent",
]

MIXING_KINDS = ("full", "mst", "rmst")

Pair = tuple[int, int]


def pair_cost(l1: int, l2: int) -> int:
    """Cost of one Clebsch-Gordan projection of f^l1 (x) f^l2 (per output degree): (2l1+1)(2l2+1)."""
    return (2 * l1 + 1) * (2 * l2 + 1)


@dataclass(frozen=True)
class MixingSet:
    """Pairs (l1 <= l2) used for each output degree l < L_out <= L, inputs of degree < L.

    ``pairs[l]`` is a sorted tuple of pairs; ``size`` counts (l1, l2, l) triples and
    ``cost`` sums :func:`pair_cost` over them.
    """

    kind: str
    L: int
    L_out: int
    pairs: tuple[tuple[Pair, ...], ...]

    @property
    def size(self) -> int:
        return sum(len(p) for p in self.pairs)

    @property
    def cost(self) -> int:
        return sum(pair_cost(a, b) for p in self.pairs for a, b in p)

    def pairs_by_input(self) -> dict[Pair, tuple[int, ...]]:
        """Map each input pair (l1, l2) to the sorted output degrees it feeds."""
        out: dict[Pair, list[int]] = {}
        for l, ps in enumerate(self.pairs):
            for p in ps:
                out.setdefault(p, []).append(l)
        return {p: tuple(ls) for p, ls in sorted(out.items())}


def _check_L(L: int, L_out: int | None) -> int:
    L = check_positive_int(L, "bandlimit L")
    L_out = L if L_out is None else L_out
    if int(L_out) != L_out or not 1 <= L_out <= L:
        raise ValueError(f"output bandlimit L_out must be in [1, L] = [1, {L}], got {L_out!r}")
    return int(L_out)


def admissible_pairs(L: int, l: int) -> list[Pair]:
    """All unordered pairs (l1 <= l2 < L) with |l1 - l2| <= l <= l1 + l2 (the set P_L^l)."""
    return [(a, b) for a in range(L) for b in range(a, L) if b - a <= l <= a + b]


def log_spaced_degrees(L: int) -> list[int]:
    """RMST node subset: {0} u {2^k < L} u {L - 1}, sorted."""
    nodes = {0, L - 1}
    k = 1
    while k < L:
        nodes.add(k)
        k *= 2
    return sorted(nodes)


def _kruskal(edges: Sequence[Pair], nodes: Iterable[int]) -> list[Pair]:
    """Minimum spanning forest of the simple graph on ``nodes`` weighted by pair_cost."""
    parent = {n: n for n in nodes}

    def find(x: int) -> int:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    chosen = []
    need = len(parent) - 1
    for a, b in sorted(edges, key=lambda e: (pair_cost(*e), e)):
        ra, rb = find(a), find(b)
        if ra != rb:
            parent[ra] = rb
            chosen.append((a, b))
            if len(chosen) == need:
                break
    return sorted(chosen)


def _tree_set(kind: str, L: int, L_out: int, nodes_for) -> MixingSet:
    per_l = []
    for l in range(L_out):
        nodes = nodes_for(l)
        if l == 0:
            per_l.append(tuple((a, a) for a in nodes))
            continue
        node_set = set(nodes)
        edges = [(a, b) for (a, b) in admissible_pairs(L, l) if a != b and a in node_set and b in node_set]
        per_l.append(tuple(_kruskal(edges, nodes)))
    return MixingSet(kind, L, L_out, tuple(per_l))


def full_mixing_set(L: int, L_out: int | None = None) -> MixingSet:
    """Every admissible pair for every output degree l < L_out (default L)."""
    L_out = _check_L(L, L_out)
    return MixingSet("full", L, L_out, tuple(tuple(admissible_pairs(L, l)) for l in range(L_out)))


def mst_mixing_set(L: int, L_out: int | None = None) -> MixingSet:
    """Per output degree, the minimum spanning tree of G_L^l weighted by pair_cost (module doc)."""
    L_out = _check_L(L, L_out)
    return _tree_set("mst", L, L_out, lambda l: list(range(L)))


def rmst_mixing_set(L: int, L_out: int | None = None) -> MixingSet:
    """MST restricted to log-spaced degrees plus {0, l} (module doc): O(log L) pairs per degree."""
    L_out = _check_L(L, L_out)
    base = log_spaced_degrees(L)

    def nodes_for(l: int) -> list[int]:
        return sorted(set(base) | {l})

    return _tree_set("rmst", L, L_out, nodes_for)


def mixing_set(kind: str, L: int, L_out: int | None = None) -> MixingSet:
    """Dispatch on ``kind`` in ("full", "mst", "rmst")."""
    makers = {"full": full_mixing_set, "mst": mst_mixing_set, "rmst": rmst_mixing_set}
    return makers[check_mixing(kind)](L, L_out)


def check_mixing(mixing):
    """``mixing`` if it is a :class:`MixingSet` or a kind of :data:`MIXING_KINDS`, else ValueError naming it: the
    check a model makes of its ``mixing`` before it builds any layer."""
    if not isinstance(mixing, MixingSet) and not (isinstance(mixing, str) and mixing in MIXING_KINDS):
        raise ValueError(f"unknown mixing set {mixing!r}; choose one of {MIXING_KINDS}")
    return mixing


def mixing_set_table(Ls: Sequence[int] = (8, 16, 32, 64, 128)) -> list[dict]:
    """Size and cost of the full, MST and RMST sets (L_out = L) for each L."""
    rows = []
    for L in Ls:
        row: dict = {"L": int(L)}
        for kind in MIXING_KINDS:
            s = mixing_set(kind, L)
            row[f"{kind}_size"] = s.size
            row[f"{kind}_cost"] = s.cost
        rows.append(row)
    return rows


def fit_scaling_exponent(Ls: Sequence[float], values: Sequence[float], log_factor: bool = False) -> float:
    """Least-squares slope of log(value) vs log(L); with ``log_factor`` of log(value / log L)."""
    x = np.log(np.asarray(Ls, dtype=float))
    y = np.log(np.asarray(values, dtype=float))
    if log_factor:
        y = y - np.log(x)
    if x.size < 2:
        raise ValueError("need at least two bandlimits to fit an exponent")
    return float(np.polyfit(x, y, 1)[0])
