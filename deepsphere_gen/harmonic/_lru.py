"""A least-recently-used cache bounded by bytes, shared by the Wigner and Clebsch-Gordan tables."""
from __future__ import annotations

from collections import OrderedDict

import torch

__all__ = ["ByteLRU"]


class ByteLRU:
    """Least-recently-used cache of arrays / tensors bounded by their total size in bytes."""

    def __init__(self, max_bytes: int):
        self.max_bytes = int(max_bytes)
        self._items: OrderedDict = OrderedDict()
        self._bytes = 0

    @staticmethod
    def _size(value) -> int:
        return value.element_size() * value.numel() if torch.is_tensor(value) else value.nbytes

    def get(self, key, make):
        value = self._items.get(key)
        if value is not None:
            self._items.move_to_end(key)
            return value
        value = make()
        size = self._size(value)
        if size <= self.max_bytes:
            self._items[key] = value
            self._bytes += size
            while self._bytes > self.max_bytes:
                _, old = self._items.popitem(last=False)
                self._bytes -= self._size(old)
        return value

    def clear(self) -> None:
        self._items.clear()
        self._bytes = 0
