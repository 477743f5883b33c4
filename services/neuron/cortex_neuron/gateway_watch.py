"""Which requests have lost their gateway (pure).

A gateway that dies (kill -9, a partition) never sends the cancel for its streams; without a
deadline its requests would hold their slots until they finish. Gateways send heartbeats;
a request whose gateway has gone quiet for a few intervals is an orphan and is cancelled.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

# Heartbeats a gateway may miss before its requests are orphans. A gateway whose event
# loop is flooded (one core shared with a client-stall check and a 5000 tok/s stream) was
# seen beating 3 s late; a dead one is still found within seconds.
MISSED = 5
# A gateway never heard from (its first heartbeat not yet arrived) gets this long.
FIRST_HEARTBEAT_GRACE_S = 3.0


@dataclass
class GatewayWatch:
    # gateway -> (last heard, its heartbeat interval)
    heard: dict[str, tuple[float, float]] = field(default_factory=dict)

    def heartbeat(self, gateway: str, interval_s: float, now: float) -> None:
        self.heard[gateway] = (now, interval_s)

    def lost(self, gateway: str, since: float, now: float) -> bool:
        """Has `gateway` gone quiet, for a request that started at `since`?"""
        if not gateway:  # a request from a gateway that sends no heartbeats
            return False
        heard = self.heard.get(gateway)
        if heard is None:
            return now - since > FIRST_HEARTBEAT_GRACE_S
        at, interval = heard
        return now - at > MISSED * interval

    def orphans(self, requests: Iterable[tuple[str, str, float]], now: float) -> list[str]:
        """The ids among (request id, gateway, started at) whose gateway is lost."""
        return [rid for rid, gateway, since in requests if self.lost(gateway, since, now)]
