"""Asking the active scheduler, in a way that survives a failover (one copy for the
gateway and the CLI).

Schedulers answer on the bus as a queue group, and only the lease holder listens. During a
failover nobody answers for up to a lease TTL (a standby is taking over); an answer cut off
mid-way times out (the old leader died while thinking). So: "no responders" is retried for
`grace_s`; a timeout is the caller's to judge (an `ensure` simply asks again, because
asking again is how a waiter survives the failover).
"""

from __future__ import annotations

import asyncio
from typing import Any, TypeVar

from nats.aio.client import Client
from nats.errors import NoRespondersError
from nats.errors import TimeoutError as NatsTimeout

from cortex_wire import codec, subjects
from cortex_wire.messages import EnsureModel, EnsureReply, FleetStatus, ModelRef
from cortex_wire.outcomes import Code
from cortex_wire.verdicts import Loading, Ready, Refused, readiness

Reply = TypeVar("Reply")
# A pause between two asks while no scheduler answers.
RETRY_PAUSE_S = 0.2
# How long one ensure round may take: the scheduler answers within its ensure_wait_s.
ENSURE_ROUND_S = 10.0


class NoScheduler(Exception):
    """Nothing answered on the scheduler's subjects for the whole grace period."""


class SchedulerSilent(Exception):
    """A scheduler took the request and did not answer in time."""


class SchedulerClient:
    def __init__(self, nc: Client, grace_s: float) -> None:
        self.nc = nc
        self.grace_s = grace_s

    async def ask(
        self, subject: str, message: Any, reply_type: type[Reply], timeout: float
    ) -> Reply:
        """One request to the active scheduler (waiting out a failover's gap)."""
        loop = asyncio.get_running_loop()
        gap_until = loop.time() + self.grace_s
        payload = codec.encode(message)
        while True:
            try:
                raw = await self.nc.request(subject, payload, timeout=timeout)
            except NoRespondersError:
                if loop.time() >= gap_until:
                    raise NoScheduler(f"no scheduler answers {subject}") from None
                await asyncio.sleep(RETRY_PAUSE_S)
                continue
            except NatsTimeout:
                raise SchedulerSilent(
                    f"the scheduler did not answer {subject} within {timeout:g}s"
                ) from None
            return codec.decode(raw.data, reply_type)

    async def alive(self, timeout: float) -> bool:
        """True once an active scheduler answers; False if none does within `timeout`."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        probe = SchedulerClient(self.nc, grace_s=0.0)
        while True:
            remaining = deadline - loop.time()
            try:
                await probe.ask(
                    subjects.SCHED_STATUS, ModelRef(model=""), FleetStatus,
                    max(0.05, min(1.0, remaining)),
                )  # fmt: skip
                return True
            except (NoScheduler, SchedulerSilent):
                pass
            if deadline - loop.time() <= 0:
                return False
            await asyncio.sleep(min(RETRY_PAUSE_S, max(deadline - loop.time(), 0.0)))

    async def ensure(self, ask: EnsureModel, timeout: float) -> Ready | Refused:
        """Ask until the model is ready or failed (or `timeout` passes: a refusal coded
        load_timeout; no scheduler at all: no_scheduler). A scheduler that fails over
        mid-load costs one round."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            remaining = deadline - loop.time()
            if remaining <= 0:
                return Refused.of(
                    Code.LOAD_TIMEOUT,
                    f"model {ask.model!r} did not become ready within {timeout:g}s",
                )
            try:
                reply = await self.ask(
                    subjects.SCHED_ENSURE, ask, EnsureReply, min(ENSURE_ROUND_S, remaining)
                )
            except SchedulerSilent:
                continue  # the old leader died mid-answer: the new one answers the next ask
            except NoScheduler:
                return Refused.of(Code.NO_SCHEDULER, "no scheduler is running to load the model")
            verdict = readiness(reply)
            if not isinstance(verdict, Loading):
                return verdict
