"""Conversations' KV caches put aside in host memory when their slot is taken, so the next
turn puts its cache back instead of prefilling it again; least recently saved out first,
within a byte budget. Used only from the engine thread."""

from __future__ import annotations

import itertools
from collections import OrderedDict
from dataclasses import dataclass

from cortex_neuron.slots import Saved


@dataclass(frozen=True)
class Entry:
    tokens: list[int]  # what the saved sequence held
    data: bytes  # llama.cpp's state of that sequence


class HostCache:
    def __init__(self, budget_bytes: int) -> None:
        self.budget = budget_bytes
        self.used = 0
        self._entries: OrderedDict[int, Entry] = OrderedDict()
        self._keys = itertools.count()

    def put(self, tokens: list[int], data: bytes) -> bool:
        """Keep `data` (dropping the oldest entries to make room); False if it cannot fit."""
        if not data or len(data) > self.budget:
            return False
        while self.used + len(data) > self.budget:
            _, oldest = self._entries.popitem(last=False)
            self.used -= len(oldest.data)
        self._entries[next(self._keys)] = Entry(tokens, data)
        self.used += len(data)
        return True

    def take(self, key: int) -> Entry:
        """Remove and return an entry (its cache goes back into a slot)."""
        entry = self._entries.pop(key)
        self.used -= len(entry.data)
        return entry

    def views(self) -> list[Saved]:
        return [Saved(key, entry.tokens) for key, entry in self._entries.items()]

    def __len__(self) -> int:
        return len(self._entries)
