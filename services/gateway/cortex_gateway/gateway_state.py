"""The gateway's state: the fleet it sees, its bus, its metrics, and the questions every
route asks of them (which model a name means, what /v1/models lists, in OpenAI's shape or
Anthropic's)."""

from __future__ import annotations

import asyncio
import os
import socket
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar

import structlog
from nats.aio.client import Client

from cortex_core.config import GatewaySettings
from cortex_core.fleet import CatalogueView, FleetState, is_pattern, least_busy
from cortex_core.scheduler_client import NoScheduler, SchedulerSilent
from cortex_gateway.dashboard import RecentRequests
from cortex_gateway.errors import ApiError
from cortex_gateway.inference import Inference
from cortex_gateway.metrics import GatewayMetrics
from cortex_gateway.response_store import ResponseStore
from cortex_wire import codec, subjects
from cortex_wire.messages import (
    CatalogueEntry,
    EnsureModel,
    ModelRef,
    RequestRecord,
    SchedulerReply,
)
from cortex_wire.outcomes import Code, outcome
from cortex_wire.verdicts import Refused, refusal

Reply = TypeVar("Reply")

log = structlog.get_logger("gateway")
# Ollama's way to name a model's default tag: `x` and `x:latest` are one model.
LATEST = ":latest"
# Anthropic's model list: a page holds this many models unless `limit` says (1 to 1000).
ANTHROPIC_PAGE = 20
ANTHROPIC_MAX_PAGE = 1000


def modified_at(entry: CatalogueEntry) -> str:
    """When the model's file last changed (RFC 3339, UTC); the epoch when not known. (What
    Ollama's and Anthropic's lists say, release dates being unknown.)"""
    return datetime.fromtimestamp(entry.file_mtime, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# /v1/models capabilities, in cortex's words, from the catalogue's (Ollama's) words.
CAPABILITY_WORDS = {"embedding": "embeddings", "thinking": "reasoning", "tools": "tools"}


class ModelNotFound(ApiError):
    """No live neuron's catalogue has the model a request names (each dialect words it as
    its clients expect: Ollama's say "not found")."""

    def __init__(self, name: str) -> None:
        row = outcome(Code.MODEL_NOT_FOUND)
        shown = name if len(name) <= 200 else f"{name[:200]}… ({len(name)} characters)"
        super().__init__(
            row.status,
            f"The model `{shown}` does not exist or is not served by any neuron.",
            code=Code.MODEL_NOT_FOUND,
            type=row.openai_type,
            param="model",
        )
        self.model = shown  # (a name is echoed, not a megabyte of one)


def catalogue_capabilities(view: CatalogueView) -> list[str]:
    """/v1/models capabilities: what the catalogue entry says (the same loaded or not), or
    for an entry that does not say (an older neuron's), what a loaded replica read."""
    entry = view.entry
    if entry.capabilities:
        words = {CAPABILITY_WORDS[c] for c in entry.capabilities if c in CAPABILITY_WORDS}
        return [w for w in ("embeddings", "reasoning", "tools") if w in words]
    states = view.states.values()
    reasoning = any(m.reasoning_markers for m in states)
    dialect: dict[str, str] = next((m.dialect for m in states if m.dialect), {})
    return [
        *(["embeddings"] if entry.embedding else []),
        *(["reasoning"] if reasoning else []),
        *(["tools"] if dialect.get("tools") else []),
    ]


def anthropic_models_page(
    models: list[dict[str, Any]], limit: int, after_id: str, before_id: str
) -> dict[str, Any]:
    """A page of Anthropic's model list (`after_id` / `before_id`: the ids the page starts
    after or ends before)."""
    if not 1 <= limit <= ANTHROPIC_MAX_PAGE:
        raise ApiError.invalid(f"limit must be 1 to {ANTHROPIC_MAX_PAGE}", param="limit")
    ids = [m["id"] for m in models]
    for cursor, param in ((after_id, "after_id"), (before_id, "before_id")):
        if cursor and cursor not in ids:
            raise ApiError.invalid(f"{param} {cursor!r} is not a model id", param=param)
    if before_id:
        end = ids.index(before_id)
        start = max(0, end - limit)
        page, more = models[start:end], start > 0
    else:
        start = ids.index(after_id) + 1 if after_id else 0
        page, more = models[start : start + limit], start + limit < len(models)
    return {
        "data": page,
        "has_more": more,
        "first_id": page[0]["id"] if page else None,
        "last_id": page[-1]["id"] if page else None,
    }


@dataclass
class Gateway:
    nc: Client
    fleet: FleetState
    settings: GatewaySettings
    metrics: GatewayMetrics
    kv_replicas: int = 1  # copies of what the gateway keeps on the bus (stored responses)

    def __post_init__(self) -> None:
        self.inference = Inference(self.nc, self.fleet, self.settings)
        self.responses = ResponseStore(
            self.nc, self.settings.responses_ttl_s, self.settings.responses_max_mb,
            self.kv_replicas,
        )  # fmt: skip
        self.name = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        self._records: set[asyncio.Task[None]] = set()
        self._changed = asyncio.Event()
        self.metrics.watch_fleet(self.fleet)
        # Every replica's request records (from the bus), for the dashboard.
        self.recent = RecentRequests()

    def publish_record(self, record: RequestRecord) -> None:
        """Every finished request also goes on the bus (cortex.metrics.request); this
        replica's own records reach its dashboard at once, not via the bus."""
        self.recent.add(record)
        if not self.nc.is_connected:
            return
        task = asyncio.create_task(self.nc.publish(subjects.REQUEST_RECORDS, codec.encode(record)))
        self._records.add(task)
        task.add_done_callback(self._records.discard)

    def fleet_changed(self) -> None:
        """Wake readiness waiters (called for every accepted heartbeat)."""
        self._changed.set()
        self._changed = asyncio.Event()

    async def wait_for_scheduler(self, timeout: float) -> bool:
        """True once an active scheduler answers on the bus; False on timeout."""
        return await self.inference.scheduler.alive(timeout)

    def has_neurons(self, count: int, node: str) -> bool:
        live = self.fleet.live(time.monotonic())
        return len(live) >= count and (not node or any(v.node == node for v in live))

    async def wait_for_neurons(self, count: int, node: str, timeout: float) -> bool:
        """True once `count` neurons (and `node`, if named) are live; False on timeout."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not self.has_neurons(count, node):
            remaining = deadline - loop.time()
            if remaining <= 0:
                return False
            try:
                await asyncio.wait_for(self._changed.wait(), remaining)
            except TimeoutError:
                return False
        return True

    async def ask_scheduler(self, subject: str, message: Any, reply_type: type[Reply]) -> Reply:
        """An operator's request to the scheduler (a failover's gap is waited out)."""
        try:
            return await self.inference.scheduler.ask(subject, message, reply_type, timeout=600)
        except NoScheduler:
            raise ApiError.of(Code.NO_SCHEDULER, "no scheduler is running") from None
        except SchedulerSilent:
            raise ApiError.of(
                Code.SCHEDULER_TIMEOUT, "the scheduler did not answer in time"
            ) from None

    async def operate(self, subject: str, model: str, node: str = "") -> str:
        """Unload, pin or unpin through the scheduler; what it did, in words."""
        reply = await self.ask_scheduler(subject, ModelRef(model=model, node=node), SchedulerReply)
        refused = refusal(reply.ok, reply.error)
        if refused is not None:
            raise ApiError.refused(refused)
        return reply.detail

    async def make_ready(self, model: str, node: str = "") -> str:
        """Load `model` (on `node`, if named) unless it is ready; the node it is ready on."""
        ready = least_busy(self.fleet.ready_replicas(model, time.monotonic()))
        if ready is not None and not node:
            return ready
        ensured = await self.inference.scheduler.ensure(
            EnsureModel(model=model, node=node), self.settings.load_timeout_s
        )
        if isinstance(ensured, Refused):
            raise ApiError.refused(ensured)
        return ensured.node

    def resolve_model(self, name: str) -> str:
        """The catalogue id `name` means (an alias's target); `x:latest` means `x`, as in
        Ollama, unless `x:latest` is itself an id or an alias."""
        if not self.fleet.live(time.monotonic()):
            raise ApiError.of(Code.NO_NEURONS, "no neuron is connected, so no model can be served")
        model = self.served_model(name)
        if model is None:
            raise ModelNotFound(name)
        return model

    def served_model(self, name: str) -> str | None:
        """The catalogue id `name` means, or None where no neuron serves it (no error:
        for labels that must never take a name a client made up)."""
        now = time.monotonic()
        catalogue = self.fleet.catalogue(now)
        model = self.fleet.resolve(name, now)
        if model not in catalogue and name.endswith(LATEST):
            model = self.fleet.resolve(name.removesuffix(LATEST), now)
        return model if model in catalogue else None

    def capabilities(self, model: str) -> list[str]:
        """A catalogue model's capabilities as its neurons announce them (Ollama's words);
        empty when they do not say."""
        view = self.fleet.catalogue(time.monotonic()).get(model)
        return list(view.entry.capabilities) if view is not None else []

    def model_or_only(self, name: str | None) -> str:
        """The model a request names, resolved; a request that names none gets the one
        chat model the fleet serves (as on a one-model server), or is told to name it."""
        if name:
            return self.resolve_model(name)
        catalogue = self.fleet.catalogue(time.monotonic())
        chat = sorted(m for m, view in catalogue.items() if not view.entry.embedding)
        if len(chat) != 1:
            served = ", ".join(chat) or "none"
            raise ApiError.invalid(f"name the model (served: {served})", param="model")
        return chat[0]

    def check_room(self, model: str, generations: int) -> None:
        """Refuse a request of more generations (choices, prompts) than the neurons serving
        `model` take at once, waiting ones included: a 429 would come back however often
        it is sent."""
        view = self.fleet.catalogue(time.monotonic()).get(model)
        if view is None or not view.entry.max_requests or generations <= 1:
            return
        room = view.entry.max_requests * max(len(view.served_by), 1)
        if generations > room:
            raise ApiError.invalid(
                f"the request asks for {generations} answers at once (choices, prompts), and "
                f"model {model!r} takes at most {room} at a time here: ask for fewer"
            )

    def check_kind(self, model: str, embedding: bool) -> None:
        """Refuse an embedding model asked to chat, and a chat model asked to embed."""
        view = self.fleet.catalogue(time.monotonic()).get(model)
        if view is None or view.entry.embedding == embedding:
            return
        what = (
            "a chat model, not an embedding model"
            if embedding
            else "an embedding model: ask /v1/embeddings or /api/embed"
        )
        raise ApiError.of(Code.WRONG_MODEL_KIND, f"model {model!r} is {what}", param="model")

    def models_body(self) -> dict[str, Any]:
        now = time.monotonic()
        catalogue = self.fleet.catalogue(now)
        data: list[dict[str, Any]] = []
        for model_id, view in sorted(catalogue.items()):
            entry: dict[str, Any] = {
                "id": model_id,
                "object": "model",
                "created": int(view.entry.file_mtime),  # when its GGUF was written
                "owned_by": "cortex",
                "context_length": view.entry.n_ctx,
                "served_by": sorted(view.served_by),
                "state": {node: m.state for node, m in sorted(view.states.items())},
            }
            # How a model reasons and calls tools: read from its GGUF when its neuron starts
            # (a loaded replica's reading, for an older neuron's entry).
            states = view.states.values()
            reasoning: list[str] = view.entry.reasoning_markers or next(
                (m.reasoning_markers for m in states if m.reasoning_markers), []
            )
            dialect: dict[str, str] = view.entry.dialect or next(
                (m.dialect for m in states if m.dialect), {}
            )
            entry["capabilities"] = catalogue_capabilities(view)
            if reasoning:
                entry["reasoning_markers"] = reasoning
            if dialect:
                entry["dialect"] = dialect
            data.append(entry)
        for alias, target in sorted(self.fleet.aliases(now).items()):
            if target in catalogue:
                data.append(
                    {
                        "id": alias,
                        "object": "model",
                        "created": int(catalogue[target].entry.file_mtime),
                        "owned_by": "cortex",
                        "alias_for": target,
                        # A pattern maps every id it matches (e.g. claude-haiku-*).
                        **({"pattern": True} if is_pattern(alias) else {}),
                    }
                )
        return {"object": "list", "data": data}

    def anthropic_models(self) -> list[dict[str, Any]]:
        """The chat models (and aliases naming one) in Anthropic's shape, for clients that
        ask with `anthropic-version` (the anthropic SDK's models.list and retrieve)."""
        now = time.monotonic()
        catalogue = self.fleet.catalogue(now)
        named = [(m, m) for m in catalogue]
        named += [
            (a, t) for a, t in self.fleet.aliases(now).items()
            if not is_pattern(a) and a not in catalogue  # an id wins over an alias
        ]  # fmt: skip
        return [
            {
                "type": "model",
                "id": name,
                "display_name": name,
                "created_at": modified_at(catalogue[target].entry),
                "lifecycle": "active",
                "max_input_tokens": catalogue[target].entry.n_ctx,
                "max_tokens": catalogue[target].entry.n_ctx,
            }
            for name, target in sorted(named)
            if target in catalogue and not catalogue[target].entry.embedding
        ]
