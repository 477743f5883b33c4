"""Where this gateway sent each conversation lately, for the turns that come before the
neuron's next heartbeat lists the prefix (an agent's tool loop asks again within a second).
Heartbeats stay the truth: an entry counts only for `ttl_s`, then they have caught up."""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable, Iterator, Mapping


class RecentRoutes(Mapping[str, str]):
    """digest → node, newest last; at most `size` entries, each valid for `ttl_s`."""

    def __init__(
        self, size: int = 4096, ttl_s: float = 10.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._routes: OrderedDict[str, tuple[str, float]] = OrderedDict()
        self._size = size
        self._ttl_s = ttl_s
        self._clock = clock

    def note(self, digest: str, node: str) -> None:
        self._routes[digest] = (node, self._clock())
        self._routes.move_to_end(digest)
        while len(self._routes) > self._size:
            self._routes.popitem(last=False)

    def __getitem__(self, digest: str) -> str:
        node, at = self._routes[digest]
        if self._clock() - at > self._ttl_s:
            raise KeyError(digest)
        return node

    def __iter__(self) -> Iterator[str]:
        return iter([d for d in self._routes if d in self])

    def __len__(self) -> int:
        return sum(1 for _ in self)

    def __contains__(self, digest: object) -> bool:
        try:
            self[digest]  # type: ignore[index]
        except KeyError:
            return False
        return True
