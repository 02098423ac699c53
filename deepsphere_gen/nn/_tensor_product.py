"""Channel-wise tensor-product activation (Cobb et al. 2021, sec. 5.1).

Within each channel k and for every pair (l1 <= l2) of a degree-mixing set that feeds
output degree l, every column pair (i, j) of f_k^l1 and f_k^l2 gives one new column of
degree l,

    g[M] = sum_{m1, m2} C[l1, l2 -> l][m1, m2, M] f_k^l1[m1, i] f_k^l2[m2, j],

with C the real-basis Clebsch-Gordan tensor (equivariant: D^l g(u, v) = g(D^l1 u, D^l2 v)).
Output columns are concatenated along tau_l in the order of the mixing set's pairs,
then (i, j) row-major.  For l1 == l2 the columns (i, j) and (j, i) give the same
fragment up to the sign (-1)^l, and (i, i) vanishes for odd l, so only i <= j (even l)
or i < j (odd l) are kept: no redundant or identically zero fragments.

Implementation: per input pair (l1, l2), one outer product over (m1, m2) for all
column pairs and one GEMM against the Clebsch-Gordan tensors of every output degree
the pair feeds, concatenated; no loop over m.  Output type and cost are fixed in
``__init__``.  The tables are built once in float64 and cast per (dtype, device) on
first use (kept out of ``state_dict``; float64 masters so that ``.double()`` after
``.float()`` keeps exact tables).
"""
from __future__ import annotations

from typing import Callable

import torch
from torch import nn

from ..harmonic._mixing_sets import MixingSet, mixing_set
from ._signal import GeneralizedSignal, normalize_type

__all__ = ["TensorProductActivation"]

CGFn = Callable[..., torch.Tensor]


def _default_cg() -> CGFn:
    from ..harmonic._clebsch_gordan import clebsch_gordan

    return clebsch_gordan


class TensorProductActivation(nn.Module):
    """Channel-wise Clebsch-Gordan tensor-product activation.

    Args:
        L: input bandlimit (degrees 0..L-1).
        channels: K, number of channels (products never mix channels).
        type_in: tau per input degree (int or length-L sequence).
        L_out: output bandlimit (<= L; default L).
        mixing: "full" | "mst" | "rmst" or a :class:`MixingSet` built for (L, L_out).
        cg: Clebsch-Gordan accessor ``cg(l1, l2, l, dtype, device) -> (2l1+1, 2l2+1, 2l+1)``
            in the project's real basis (default: deepsphere_gen.harmonic.clebsch_gordan).

    Input/output: :class:`GeneralizedSignal` (batch, K, 2l+1, tau_l); output type
    ``self.type_out``.  ``self.flops`` counts the multiply-adds per sample of forward.
    """

    def __init__(self, L: int, channels: int, type_in, L_out: int | None = None,
                 mixing: str | MixingSet = "mst", cg: CGFn | None = None):
        super().__init__()
        self.L = int(L)
        self.L_out = self.L if L_out is None else int(L_out)
        self.channels = int(channels)
        if self.channels < 1:
            raise ValueError(f"channels must be >= 1, got {channels}")
        self.type_in = normalize_type(type_in, self.L, "type_in")
        if isinstance(mixing, str):
            mixing = mixing_set(mixing, self.L, self.L_out)
        if (mixing.L, mixing.L_out) != (self.L, self.L_out):
            raise ValueError(f"mixing set is for (L, L_out) = {(mixing.L, mixing.L_out)}, layer has {(self.L, self.L_out)}")
        self.mixing = mixing
        cg = cg or _default_cg()

        # Plan, per input pair (l1, l2): output degrees ls, widths 2l+1, whether each l keeps
        # only i < j (l1 == l2, odd l); tables: concatenated CG (p*q, sum 2l+1) in float64;
        # row index (i <= j rows when l1 == l2) and odd-l sub-index (i < j among them).
        self._plan: list[tuple[int, int, tuple[int, ...], list[int], list[bool]]] = []
        self._masters: list[torch.Tensor] = []
        self._rows: list[torch.Tensor] = []
        self._odd_rows: list[torch.Tensor] = []
        # out_slots[l] = list of (plan index, position of l in that pair's ls)
        self._slots: list[list[tuple[int, int]]] = [[] for _ in range(self.L_out)]
        tau_out = [0] * self.L_out
        flops = 0
        for (l1, l2), ls in mixing.pairs_by_input().items():
            t1, t2 = self.type_in[l1], self.type_in[l2]
            pq = (2 * l1 + 1) * (2 * l2 + 1)
            tables = []
            for l in ls:
                c = cg(l1, l2, l, dtype=torch.float64, device="cpu")
                if tuple(c.shape) != (2 * l1 + 1, 2 * l2 + 1, 2 * l + 1):
                    raise ValueError(f"cg({l1}, {l2}, {l}) has shape {tuple(c.shape)}, expected {(2*l1+1, 2*l2+1, 2*l+1)}")
                tables.append(c.reshape(pq, 2 * l + 1))
            self._masters.append(torch.cat(tables, dim=1).contiguous())
            same = l1 == l2
            if same:
                upper = [(i, j) for i in range(t1) for j in range(i, t2)]
                self._rows.append(torch.tensor([i * t2 + j for i, j in upper], dtype=torch.long))
                self._odd_rows.append(torch.tensor([r for r, (i, j) in enumerate(upper) if j > i], dtype=torch.long))
                n_rows = len(upper)
            else:
                self._rows.append(torch.empty(0, dtype=torch.long))
                self._odd_rows.append(torch.empty(0, dtype=torch.long))
                n_rows = t1 * t2
            odd = [same and l % 2 == 1 for l in ls]
            index = len(self._plan)
            self._plan.append((l1, l2, ls, [2 * l + 1 for l in ls], odd))
            for k, (l, o) in enumerate(zip(ls, odd)):
                tau_out[l] += int(self._odd_rows[-1].numel()) if o else n_rows
                self._slots[l].append((index, k))
            flops += n_rows * pq * (1 + sum(2 * l + 1 for l in ls))
        if any(t == 0 for t in tau_out):
            missing = [l for l, t in enumerate(tau_out) if t == 0]
            raise ValueError(f"mixing set {mixing.kind!r} produces no fragment for output degrees {missing}")
        self.type_out = tuple(tau_out)
        self.flops = flops * self.channels
        self._cache: dict = {}

    def extra_repr(self) -> str:
        return (f"L={self.L}, L_out={self.L_out}, channels={self.channels}, mixing={self.mixing.kind!r}, "
                f"pairs={self.mixing.size}, type_in={self.type_in}, type_out={self.type_out}, flops={self.flops}")

    def _tables(self, dtype: torch.dtype, device: torch.device):
        """(CG tables, row indices, odd-l row indices) cast/moved once per (dtype, device)."""
        key = (dtype, device)
        if key not in self._cache:
            self._cache[key] = (
                [t.to(device=device, dtype=dtype) for t in self._masters],
                [i.to(device) for i in self._rows],
                [i.to(device) for i in self._odd_rows],
            )
        return self._cache[key]

    def forward(self, x: GeneralizedSignal) -> GeneralizedSignal:
        if not isinstance(x, GeneralizedSignal):
            raise ValueError(f"TensorProductActivation expects a GeneralizedSignal, got {type(x).__name__}")
        x.check(L=self.L, channels=self.channels, type=self.type_in, name="TensorProductActivation input")
        tables, rows, odd_rows = self._tables(x.dtype, x.device)
        B, K = x.batch, self.channels
        blocks: list[list[torch.Tensor]] = []
        for (l1, l2, _, widths, odd), table, row, odd_row in zip(self._plan, tables, rows, odd_rows):
            a, b = x.fragments[l1], x.fragments[l2]
            # outer product over orders for every column pair: (B, K, t1*t2, p*q)
            outer = torch.einsum("bkpi,bkqj->bkijpq", a, b)
            outer = outer.reshape(B, K, a.shape[3] * b.shape[3], a.shape[2] * b.shape[2])
            if l1 == l2:
                outer = outer.index_select(2, row)
            parts = torch.split(outer @ table, widths, dim=3)  # each (B, K, rows, 2l+1)
            blocks.append([part.index_select(2, odd_row) if o else part for part, o in zip(parts, odd)])
        out = []
        for l in range(self.L_out):
            cols = [blocks[p][k] for p, k in self._slots[l]]
            out.append(torch.cat(cols, dim=2).transpose(2, 3))
        return GeneralizedSignal(out, check_values=False)
