"""A compact map of 64-bit keys (hashes of paths) to 64-bit values, for the batch's per-input state.

A Python ``dict`` or ``set`` of paths costs a few hundred bytes per entry; a run over
100,000 or more inputs keeps only 16 bytes per slot here (two flat arrays, open
addressing with linear probing, at most half full).  Paths are told apart by a 64-bit
hash: two of 200,000 paths share one with a chance of about 1 in 10^9.
"""

from __future__ import annotations

import hashlib
import os
from array import array

_EMPTY = 0


def path_key(text: str) -> int:
    """A 64-bit key of a path (its bytes as the filesystem sees them); never 0, which marks an empty slot."""
    return int.from_bytes(hashlib.blake2b(os.fsencode(text), digest_size=8).digest(), "little") or 1


class KeyTable:
    """``key -> value`` for non-zero 64-bit keys and 64-bit values (or, without values, a set of keys)."""

    def __init__(self, capacity: int = 1024, values: bool = True):
        """``values=False``: a set of keys (8 bytes a slot), through :meth:`add` and :meth:`__contains__`."""
        self._keys = array("Q", bytes(8 * capacity))
        self._values = array("Q", bytes(8 * capacity if values else 0))
        self._used = 0

    def __len__(self) -> int:
        return self._used

    def _slot(self, key: int) -> int:
        mask = len(self._keys) - 1
        slot = key & mask
        while self._keys[slot] not in (_EMPTY, key):
            slot = (slot + 1) & mask
        return slot

    def __contains__(self, key: int) -> bool:
        return self._keys[self._slot(key)] == key

    def get(self, key: int) -> int | None:
        slot = self._slot(key)
        return self._values[slot] if self._keys[slot] == key else None

    def add(self, key: int) -> bool:
        """Store ``key``; False when it was there already."""
        return self._store(key, 0)[1]

    def setdefault(self, key: int, value: int) -> int:
        """The value stored for ``key``; ``value`` (stored now) when there was none."""
        slot, added = self._store(key, value)
        return value if added else self._values[slot]

    def _store(self, key: int, value: int) -> tuple[int, bool]:
        slot = self._slot(key)
        if self._keys[slot] == key:
            return slot, False
        self._keys[slot] = key
        if self._values:
            self._values[slot] = value
        self._used += 1
        if 2 * self._used > len(self._keys):
            self._grow()
        return slot, True

    def _grow(self) -> None:
        keys, values = self._keys, self._values
        self._keys = array("Q", bytes(16 * len(keys)))
        self._values = array("Q", bytes(16 * len(values)))
        for index, key in enumerate(keys):
            if key != _EMPTY:
                slot = self._slot(key)
                self._keys[slot] = key
                if values:
                    self._values[slot] = values[index]
