"""Stored Responses in the bus's own storage: a JetStream KV bucket every gateway replica
shares, so any replica continues (previous_response_id), returns or deletes a response
another one answered. Bounded by a TTL and a size; when full, the oldest go first."""

from __future__ import annotations

import msgspec
import structlog
from nats.aio.client import Client
from nats.js.api import DiscardPolicy
from nats.js.errors import BucketNotFoundError, KeyNotFoundError
from nats.js.kv import KeyValue

from cortex_gateway.errors import ApiError
from cortex_wire import codec, subjects
from cortex_wire.messages import StoredResponse
from cortex_wire.outcomes import Code

log = structlog.get_logger("gateway")


class ResponseStore:
    def __init__(self, nc: Client, ttl_s: float, max_mb: int, replicas: int = 1) -> None:
        self._nc = nc
        self._ttl_s = ttl_s
        self._max_bytes = max_mb * 1024 * 1024
        self._replicas = replicas
        self._kv: KeyValue | None = None

    async def _bucket(self) -> KeyValue:
        if self._kv is not None:
            return self._kv
        js = self._nc.jetstream()
        try:
            try:
                self._kv = await js.key_value(subjects.RESPONSES_BUCKET)
            except BucketNotFoundError:
                self._kv = await js.create_key_value(
                    bucket=subjects.RESPONSES_BUCKET, history=1, ttl=self._ttl_s,
                    max_bytes=self._max_bytes, replicas=self._replicas,
                )  # fmt: skip
                # A full bucket drops its oldest responses rather than refuse new ones.
                stream = f"KV_{subjects.RESPONSES_BUCKET}"
                config = (await js.stream_info(stream)).config
                config.discard = DiscardPolicy.OLD
                await js.update_stream(config)
        except Exception as error:  # no JetStream on this bus, say
            raise ApiError.of(
                Code.SERVICE_UNAVAILABLE, f"responses cannot be stored on this bus: {error}"
            ) from None
        return self._kv

    async def put(self, record: StoredResponse) -> None:
        kv = await self._bucket()
        await kv.put(subjects.kv_key(record.id), codec.encode(record))

    async def get(self, response_id: str, param: str | None = None) -> StoredResponse:
        """The stored response; an ApiError (404, naming `param`) when there is none."""
        kv = await self._bucket()
        try:
            entry = await kv.get(subjects.kv_key(response_id))
        except KeyNotFoundError:
            raise _missing(response_id, param) from None
        try:
            return codec.decode(entry.value or b"", StoredResponse)
        except (msgspec.DecodeError, msgspec.ValidationError):
            log.warning("stored_response_unreadable", response_id=response_id)
            raise _missing(response_id, param) from None

    async def delete(self, response_id: str) -> None:
        await self.get(response_id)  # a 404 for one that is not there
        await (await self._bucket()).purge(subjects.kv_key(response_id))


def _missing(response_id: str, param: str | None) -> ApiError:
    return ApiError.of(
        Code.NOT_FOUND,
        f"no stored response {response_id!r} (it was not stored, was deleted, or expired)",
        param=param,
    )
