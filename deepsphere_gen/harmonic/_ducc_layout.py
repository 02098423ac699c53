"""Our real flat coefficients <-> ducc0's complex a_lm as (re, im) pairs, by tables or per order.

The map (``_healpy_convert``): a_lm = (-1)^m (r_lm - i r_l,-m) / s_m with s_0 = 1, s_m = sqrt2
(m > 0; the imaginary part of m = 0 is 0 * r_l0); back, r_lm = (-1)^m s_m Re a_lm and
r_l,-m = -(-1)^m s_m Im a_lm.  Real index of (l, m): l (l + 1) + m; ducc0's (healpy's
m-major) index of (l, m >= 0): off[m] + l (:func:`._healpy_convert.healpy_orders`).  One
formula, in blocks:

- to ducc0's layout, one block per order m: the pairs of l = m..L-1 are contiguous there
  (entries 2 (off[m] + m) on) and gather our entries l (l + 1) + m, l (l + 1) - m (an index
  row kept for m = 0 and stepped by (+1, -1) per order), times the factor pair of m;
- back, one block per degree l: our entries l^2..(l + 1)^2 - 1 (m = -l..l) are contiguous
  and gather pair entries 2 (off[|m|] + l) + (m < 0), times (-1)^|m| s_|m| (m >= 0) or its
  negative (m < 0).

Applied two ways, equal bit for bit (the same products of the same float values):

- :meth:`DuccLayout.tables` (L <= :data:`TABLE_MAX_L`): the blocks concatenated once into
  per-coefficient int64 index tables and per-precision factor tables (2 x 8 + 2 x itemsize
  bytes per coefficient): one ``np.take`` and one multiply per call, no Python loop (the
  microsecond transforms of small L);
- :meth:`DuccLayout.to_ducc` / :meth:`DuccLayout.to_real` (L > TABLE_MAX_L): each block made
  and applied in turn, three numpy calls per order / degree on O(L) arrays; nothing of
  O(L^2) is kept (the tables were 576 MiB of the 966 MiB an nside-2048 SHT kept).

Cost of a round trip (to ducc0's layout and back; one float32 HEALPix map, one thread,
``time.process_time``, best of 3-20 calls in the engine): L = 768 1.2 ms (tables; blocks
would take 6.7), L = 1536 17 -> 27 ms, L = 3072 86 -> 108 ms (the former int32 tables ->
blocks), against ducc0 transforms of 28 ms, 170 ms and 1.15 s each.
"""
from __future__ import annotations

import numpy as np

from ._healpy_convert import healpy_orders

__all__ = ["TABLE_MAX_L", "DuccLayout"]

#: largest L whose conversion goes through per-coefficient tables (24 MiB for float32 at
#: L = 1024); above it, per order / degree blocks: +4 / +6 ms per synthesis / analysis at
#: L = 1536 (2-4 % of a transform, for 36-54 MiB of tables not kept), +11 ms each at 3072
#: (1 %); at L = 768 they would take 5x the tables' time (+20 % of a transform)
TABLE_MAX_L = 1024


class DuccLayout:
    """The conversion blocks of bandlimit L (O(L) arrays, see the module docstring).

    ``pairs``: (K, 2 nalm) arrays of ducc0's (re, im) pairs (nalm = L (L + 1) / 2, map k's
    complex a_lm as ``pairs[k].view(complex)``); ``real``: (K, L*L) real coefficients.
    Factors are float64 here; :meth:`factors` casts them to a precision (one per call site).
    """

    def __init__(self, L: int):
        self.L = L
        off, sign, scale = healpy_orders(L)
        m = np.arange(L)
        self._start = 2 * (off + m)  # first pair entry of order m
        # our entries l (l + 1) +- m of the pairs of order m, for every l; for m = 0 here
        self._rows0 = np.repeat(m * (m + 1), 2).astype(np.intp)
        self._step = np.tile(np.array([1, -1], dtype=np.intp), L)  # from one order to the next
        # pair entry of (l, m), m = -l..l: _entries[L - 1 + m] + 2 l
        self._entries = np.concatenate([2 * off[:0:-1] + 1, 2 * off]).astype(np.intp)
        # factor pair of order m: rows 0 (m = 0), 1 (odd m), 2 (even m > 0), repeated L times
        re, im = sign / scale, np.where(m == 0, 0.0, -sign / scale)
        self._kind = np.where(m == 0, 0, 2 - m % 2)
        self._to_ducc_f = np.stack([np.tile([re[k], im[k]], L) for k in range(min(L, 3))])
        back = sign * scale
        self._to_real_f = np.concatenate([-back[:0:-1], back])  # factor of (l, m): [L - 1 + m]

    def _order_rows(self, m: int) -> np.ndarray:
        return self._rows0[2 * m :] + m * self._step[2 * m :]

    def _degree_entries(self, l: int) -> np.ndarray:
        return self._entries[self.L - 1 - l : self.L + l] + 2 * l

    def tables(self) -> tuple[np.ndarray, np.ndarray]:
        """(to_ducc (2 nalm,), to_real (L*L,)) int64 index tables: ``pairs = real[to_ducc] * f``,
        ``real = pairs[to_real] * g`` with the factor tables of :meth:`table_factors`."""
        L = self.L
        return (np.concatenate([self._order_rows(m) for m in range(L)]),
                np.concatenate([self._degree_entries(l) for l in range(L)]))

    def table_factors(self, dtype) -> tuple[np.ndarray, np.ndarray]:
        """(f (2 nalm,), g (L*L,)) factor tables of ``dtype`` matching :meth:`tables`."""
        L, f, g = self.L, self._to_ducc_f, self._to_real_f
        return (np.concatenate([f[self._kind[m], : 2 * (L - m)] for m in range(L)]).astype(dtype),
                np.concatenate([g[L - 1 - l : L + l] for l in range(L)]).astype(dtype))

    def factors(self, dtype) -> tuple[np.ndarray, np.ndarray]:
        """The per-block factors of ``dtype`` for :meth:`to_ducc` / :meth:`to_real` (O(L))."""
        return self._to_ducc_f.astype(dtype), self._to_real_f.astype(dtype)

    def _check_widths(self, real: np.ndarray, pairs: np.ndarray) -> None:
        """ValueError unless ``real`` is (K, L*L) and ``pairs`` (K, L (L + 1)): the blocks' gathers
        clip their indices (in range by construction), so a wrong width would pass silently."""
        L = self.L
        if real.shape[1:] != (L * L,) or pairs.shape[1:] != (L * (L + 1),) or real.shape[0] != pairs.shape[0]:
            raise ValueError(f"ducc0 layout of L = {L}: expected (K, {L * L}) coefficients and (K, {L * (L + 1)}) "
                             f"pairs, got {real.shape} and {pairs.shape}")

    def to_ducc(self, real: np.ndarray, out: np.ndarray, factors) -> np.ndarray:
        """C-contiguous (K, L*L) ``real`` -> ``out`` (K, 2 nalm) pairs, one order at a time."""
        L, f = self.L, factors[0]
        self._check_widths(real, out)
        rows = self._rows0.copy()
        for m in range(L):
            a, n2 = self._start[m], 2 * (L - m)
            block = out[:, a : a + n2]
            np.take(real, rows[2 * m :], axis=1, out=block, mode="clip")  # indices in range by construction
            block *= f[self._kind[m], :n2]
            rows[2 * m + 2 :] += self._step[2 * m + 2 :]
        return out

    def to_real(self, pairs: np.ndarray, out: np.ndarray, factors) -> np.ndarray:
        """C-contiguous (K, 2 nalm) ``pairs`` -> ``out`` (K, L*L), one degree at a time."""
        L, g = self.L, factors[1]
        self._check_widths(out, pairs)
        for l in range(L):
            block = out[:, l * l : (l + 1) * (l + 1)]
            np.take(pairs, self._degree_entries(l), axis=1, out=block, mode="clip")
            block *= g[L - 1 - l : L + l]
        return out
