"""The scheduler's durable state in JetStream KV: the leader lease and run-time pins."""

from __future__ import annotations

import msgspec
from nats.js.client import JetStreamContext
from nats.js.errors import (
    BucketNotFoundError,
    KeyNotFoundError,
    KeyWrongLastSequenceError,
    NoKeysError,
)
from nats.js.kv import KeyValue

from cortex_wire import codec, subjects
from cortex_wire.messages import Pin


async def _bucket(
    js: JetStreamContext, name: str, replicas: int, ttl_s: float | None = None
) -> KeyValue:
    """The bucket, created with `replicas` copies if it does not exist yet."""
    try:
        return await js.key_value(name)
    except BucketNotFoundError:
        return await js.create_key_value(bucket=name, history=1, ttl=ttl_s, replicas=replicas)


class LeaderLease:
    """One active scheduler: whoever holds the key. The bucket's TTL expires a lease its
    holder stopped renewing (it died), and then a standby's `acquire` succeeds."""

    def __init__(self, js: JetStreamContext, holder: str, ttl_s: float, replicas: int = 1) -> None:
        self._js = js
        self.holder = holder
        self._ttl_s = ttl_s
        self._replicas = replicas
        self._kv: KeyValue | None = None
        self._revision = 0

    async def _store(self) -> KeyValue:
        if self._kv is None:
            self._kv = await _bucket(self._js, subjects.LEASE_BUCKET, self._replicas, self._ttl_s)
        return self._kv

    async def holder_now(self) -> str:
        try:
            entry = await (await self._store()).get(subjects.LEASE_KEY)
        except KeyNotFoundError:
            return ""
        return (entry.value or b"").decode()

    async def acquire(self) -> bool:
        kv = await self._store()
        try:
            self._revision = await kv.create(subjects.LEASE_KEY, self.holder.encode())
            return True
        except KeyWrongLastSequenceError:
            return False

    async def renew(self) -> bool:
        """Extend the lease; False if it was lost (expired and taken, or deleted)."""
        kv = await self._store()
        try:
            self._revision = await kv.update(
                subjects.LEASE_KEY, self.holder.encode(), last=self._revision
            )
            return True
        except KeyWrongLastSequenceError:
            return False

    async def release(self) -> None:
        kv = await self._store()
        try:
            await kv.delete(subjects.LEASE_KEY, last=self._revision)
        except KeyWrongLastSequenceError:
            pass


class PinStore:
    def __init__(self, js: JetStreamContext, replicas: int = 1) -> None:
        self._js = js
        self._replicas = replicas
        self._kv: KeyValue | None = None

    async def _store(self) -> KeyValue:
        if self._kv is None:
            self._kv = await _bucket(self._js, subjects.PINS_BUCKET, self._replicas)
        return self._kv

    async def all(self) -> list[Pin]:
        kv = await self._store()
        try:
            keys = await kv.keys()
        except NoKeysError:
            return []
        pins = []
        for key in keys:
            try:
                entry = await kv.get(key)
            except KeyNotFoundError:
                continue
            try:
                pins.append(codec.decode(entry.value or b"", Pin))
            except (msgspec.DecodeError, msgspec.ValidationError):
                continue
        return sorted(pins, key=lambda p: p.model)

    async def put(self, pin: Pin) -> None:
        await (await self._store()).put(subjects.kv_key(pin.model), codec.encode(pin))

    async def delete(self, model: str) -> bool:
        kv = await self._store()
        try:
            await kv.get(subjects.kv_key(model))
        except KeyNotFoundError:
            return False
        await kv.purge(subjects.kv_key(model))
        return True
