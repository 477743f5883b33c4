"""The neuron's shell: NATS handlers around the engines, heartbeats, model lifecycle."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Coroutine
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, TypeVar

import msgspec
import structlog
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription

from cortex_core.config import Catalogue, ModelProfile, Settings
from cortex_core.metrics_server import serve_metrics
from cortex_neuron.admission import limits, refusal
from cortex_neuron.channel import CallChunk, Errored, Finished, TextChunk, TokenChannel
from cortex_neuron.devices import cpu_device, discover_gpus
from cortex_neuron.embedding_engine import EmbeddingEngine
from cortex_neuron.engine import Engine, EngineError, Job
from cortex_neuron.frames import coalesce, frame_pause
from cortex_neuron.gateway_watch import GatewayWatch
from cortex_neuron.heartbeat import build_heartbeat, catalogue_entries
from cortex_neuron.metrics import NeuronMetrics
from cortex_neuron.model_footprint import file_stamps, profile_footprint
from cortex_wire import codec, subjects
from cortex_wire.messages import (
    Cancel,
    CatalogueEntry,
    ControlReply,
    Done,
    EmbedReply,
    EmbedRequest,
    Failed,
    GatewayHeartbeat,
    InferReply,
    InferRequest,
    KeepAlive,
    LoadedModel,
    LoadModel,
    ModelEvent,
    ModelState,
    TokenCount,
    UnloadModel,
    VocabReply,
    VocabRequest,
    WireError,
)
from cortex_wire.outcomes import Code

log = structlog.get_logger("neuron")
# A request/reply message (each names its model) and the reply that may carry an error.
Asked = TypeVar("Asked", InferRequest, VocabRequest, EmbedRequest)
Answer = TypeVar("Answer", TokenCount, VocabReply, EmbedReply)


@dataclass
class Resident:
    """A model this neuron has loaded, is loading, or failed to load."""

    profile: ModelProfile
    footprint_mb: int
    state: ModelState = "loading"
    engine: Engine | EmbeddingEngine | None = None
    error: str = ""
    progress: float = 0.0
    ready: asyncio.Future[None] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )


# A request this small renders and tokenizes in about half a millisecond (0.2 ms for a
# one-line chat here, 0.7 ms for 2.6 KB): on the event loop, since the hop to a worker
# thread cost more than that and held a burst's requests back from the engine. Larger ones
# render on a thread, so the loop keeps carrying frames meanwhile.
INLINE_RENDER_BYTES = 2048


class Neuron:
    def __init__(self, settings: Settings, catalogue: Catalogue, nc: Client) -> None:
        self.settings = settings
        self.catalogue = catalogue
        self.nc = nc
        self.node = settings.neuron_name()
        self.instance = uuid.uuid4().hex[:12]
        self.residents: dict[str, Resident] = {}
        self.jobs: dict[str, Job] = {}
        self.gateways = GatewayWatch()
        self._seq = 0
        self.cycles = 0
        self._tasks: set[asyncio.Task[None]] = set()
        self._infer: Subscription | None = None  # inference requests, as they arrive
        self._footprints = {m.id: profile_footprint(m) for m in catalogue.models}
        self._files = file_stamps(catalogue)
        # The catalogue's files are looked at on a thread of their own: on the default
        # executor a burst of requests (each prompt is rendered there) queued the look, and
        # with it the heartbeat, for seconds, and the gateways took the neuron for gone.
        self._disk = ThreadPoolExecutor(max_workers=1, thread_name_prefix="catalogue-files")
        self._rereading: asyncio.Task[None] | None = None
        self._catalogue_entries = catalogue_entries(
            catalogue, self._footprints, queue_depth=settings.neuron.queue_depth
        )
        self.log = log.bind(node=self.node)
        self.metrics = NeuronMetrics()

    # --- lifecycle --------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        self._infer = await self.nc.subscribe(subjects.infer(self.node), cb=self._on_infer)
        subs = [
            self._infer,
            await self.nc.subscribe(subjects.tokenize(self.node), cb=self._on_tokenize),
            await self.nc.subscribe(subjects.vocab(self.node), cb=self._on_vocab),
            await self.nc.subscribe(subjects.embed(self.node), cb=self._on_embed_msg),
            # Loads are slow: their own subscription, so inference is never stuck behind one.
            await self.nc.subscribe(subjects.control(self.node), cb=self._on_control),
            await self.nc.subscribe(subjects.CANCEL, cb=self._on_cancel),
            await self.nc.subscribe(subjects.GATEWAY_HEARTBEATS, cb=self._on_gateway_heartbeat),
        ]
        metrics_server = serve_metrics(
            self.settings.neuron.metrics_listen, self.metrics.registry, "neuron.metrics_listen"
        )
        self.log.info("neuron_started", models=[m.id for m in self.catalogue.models])
        beat = asyncio.create_task(self._heartbeat_loop(stop))
        try:
            await stop.wait()
        finally:
            beat.cancel()
            if self._rereading is not None:
                self._rereading.cancel()
            self._disk.shutdown(wait=False, cancel_futures=True)
            for sub in subs:
                await sub.unsubscribe()
            for resident in list(self.residents.values()):
                if resident.engine is not None:
                    await resident.engine.stop()
            for task in list(self._tasks):
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)
            if metrics_server is not None:
                metrics_server.shutdown()
            self.log.info("neuron_stopped")

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _reread_changed_files(self) -> None:
        """A catalogue GGUF put in place, or replaced, since the entries were read: what
        the entries say of it (facts, footprint) is read again, off the event loop."""
        # (off the loop, and not awaited by the heartbeat: a stat on a hung network mount
        # must not stop it)
        loop = asyncio.get_running_loop()
        files = await loop.run_in_executor(self._disk, file_stamps, self.catalogue)
        changed = [m for m in self.catalogue.models if files[m.id] != self._files[m.id]]
        if not changed:
            return
        self._files = files

        def reread() -> list[CatalogueEntry]:
            for model in changed:
                self._footprints[model.id] = profile_footprint(model)
            return catalogue_entries(
                self.catalogue, self._footprints, queue_depth=self.settings.neuron.queue_depth
            )

        self._catalogue_entries = await loop.run_in_executor(self._disk, reread)
        self.log.info("catalogue_files_changed", models=[m.id for m in changed])

    async def _heartbeat_loop(self, stop: asyncio.Event) -> None:
        interval = self.settings.neuron.heartbeat_interval_s
        while not stop.is_set():
            if self._rereading is None or self._rereading.done():
                # what it finds goes out with the next beat
                self._rereading = asyncio.create_task(self._reread_changed_files())
            await self.publish_heartbeat()
            self._cancel_orphans()
            try:
                await asyncio.wait_for(stop.wait(), interval)
            except TimeoutError:
                pass

    def used_mb(self) -> int:
        return sum(r.footprint_mb for r in self.residents.values() if r.state != "failed")

    def _refresh_gauges(self) -> None:
        self.metrics.cycles.set(self.cycles)
        for model_id, resident in self.residents.items():
            self.metrics.in_flight.labels(model_id).set(self.in_flight(model_id))
            if resident.engine is not None:
                self.metrics.tokens_per_s.labels(model_id).set(resident.engine.tokens_per_s)
            if isinstance(resident.engine, Engine):
                self.metrics.reused.observe(model_id, resident.engine.reused_tokens)

    async def publish_heartbeat(self) -> None:
        self._seq += 1
        self._refresh_gauges()
        devices = discover_gpus() if self.settings.neuron.use_gpu else []
        if not devices:
            devices = [cpu_device(self.settings.neuron.memory_budget_mb, self.used_mb())]
        heartbeat = build_heartbeat(
            node=self.node,
            instance=self.instance,
            seq=self._seq,
            now=time.time(),
            interval_s=self.settings.neuron.heartbeat_interval_s,
            devices=devices,
            memory_budget_mb=sum(d.total_mb for d in devices),
            models=[self._model_state(r, self.in_flight(m)) for m, r in self.residents.items()],
            catalogue=self._catalogue_entries,
            aliases=self.catalogue.aliases,
            cycles=self.cycles,
        )
        await self.nc.publish(subjects.heartbeat(self.node), codec.encode(heartbeat))

    @staticmethod
    def _model_state(resident: Resident, in_flight: int) -> LoadedModel:
        engine = resident.engine
        slots = resident.profile.parallel
        return LoadedModel(
            id=resident.profile.id,
            state=resident.state,
            footprint_mb=resident.footprint_mb,
            slots=slots,
            busy=min(in_flight, slots),
            queued=max(in_flight - slots, 0),
            tokens_per_s=round(engine.tokens_per_s, 2) if engine else 0.0,
            last_used_at=engine.last_used_at if engine else 0.0,
            error=resident.error,
            load_progress=resident.progress,
            reasoning_markers=engine.dialect.inline_markers() if engine else [],
            dialect=engine.dialect.summary() if engine else {},
            prefixes=engine.held_prefixes() if isinstance(engine, Engine) else [],
        )

    # --- model lifecycle --------------------------------------------------------------

    async def _announce(self, model: str, state: str, detail: str = "") -> None:
        event = ModelEvent(node=self.node, model=model, state=state, at=time.time(), detail=detail)  # type: ignore[arg-type]
        await self.nc.publish(subjects.model_event(self.node, model), codec.encode(event))
        await self.publish_heartbeat()

    async def load(self, model_id: str) -> None:
        """Load `model_id` (once: concurrent callers share the same load)."""
        resident = self.residents.get(model_id)
        if resident is not None and resident.state in ("loading", "ready"):
            await asyncio.shield(resident.ready)
            return
        profile = self.catalogue.profile(model_id)
        if profile is None:
            raise EngineError(
                Code.MODEL_NOT_FOUND, f"neuron {self.node!r} has no model {model_id!r}"
            )
        resident = Resident(profile=profile, footprint_mb=self._footprints[model_id])
        self.residents[model_id] = resident
        self.log.info("model_loading", model=model_id, path=profile.path)
        await self._announce(model_id, "loading")
        running, waiting = self._limits(profile)
        engine: Engine | EmbeddingEngine
        if profile.embedding:
            engine = EmbeddingEngine(
                profile, n_threads=self.settings.neuron.n_threads, queue_depth=running + waiting
            )
        else:
            engine = Engine(
                profile,
                n_threads=self.settings.neuron.n_threads,
                # Admission is decided here; the engine's own queue must hold all it admits.
                queue_depth=running + waiting,
                on_progress=lambda progress: self._load_progress(resident, progress),
                host_cache_mb=self.settings.neuron.kv_host_cache_mb,
            )
        started = time.perf_counter()
        try:
            await engine.start()
        except EngineError as error:
            resident.state, resident.error = "failed", str(error)
            resident.ready.set_exception(error)
            resident.ready.exception()  # mark retrieved: waiters may be none
            self.metrics.loads.labels(model_id, "failed").inc()
            self.log.error("model_load_failed", model=model_id, error=str(error))
            await self._announce(model_id, "failed", str(error))
            raise
        resident.engine, resident.state = engine, "ready"
        resident.ready.set_result(None)
        self.cycles += 1
        seconds = round(time.perf_counter() - started, 3)
        self.metrics.loads.labels(model_id, "ok").inc()
        self.metrics.load_seconds.labels(model_id).observe(seconds)
        self.log.info("model_ready", model=model_id, load_s=seconds)
        await self._announce(model_id, "ready", f"loaded in {seconds}s")

    def in_flight(self, model_id: str) -> int:
        """Requests accepted for `model_id` and not yet finished (running or queued)."""
        return sum(1 for job in self.jobs.values() if job.request.model == model_id)

    def _load_progress(self, resident: Resident, progress: float) -> None:
        """Each 10% of a load: an extra heartbeat carries it (cortex load, status, watch)."""
        resident.progress = progress
        self._spawn(self.publish_heartbeat())

    async def unload(self, model_id: str, only_if_idle: bool = False) -> None:
        resident = self.residents.get(model_id)
        if resident is None:
            return
        if resident.state == "loading":
            await asyncio.gather(resident.ready, return_exceptions=True)
        busy = self.in_flight(model_id)
        if only_if_idle and busy:
            raise EngineError(
                Code.BUSY, f"model {model_id!r} has {busy} requests in flight on {self.node!r}"
            )
        # From here on no request is accepted for it (the check above and this are atomic
        # on the event loop).
        resident.state = "unloading"
        await self._announce(model_id, "unloading")
        if resident.engine is not None:
            await resident.engine.stop()
        del self.residents[model_id]
        self.cycles += 1
        self.metrics.unloads.labels(model_id).inc()
        self.log.info("model_unloaded", model=model_id)
        await self._announce(model_id, "unloaded")

    async def restart_engine(self) -> list[str]:
        """Unload every model once all are idle, releasing all device memory at once
        (defragmentation); the cycle count starts again."""
        busy = [m for m in self.residents if self.in_flight(m)]
        if busy:
            raise EngineError(Code.BUSY, f"models in use on {self.node!r}: {', '.join(busy)}")
        unloaded = list(self.residents)
        for model_id in unloaded:
            await self.unload(model_id)
        self.cycles = 0
        self.log.info("engine_restarted", unloaded=unloaded)
        await self.publish_heartbeat()
        return unloaded

    # --- NATS handlers ----------------------------------------------------------------

    async def _on_control(self, msg: Msg) -> None:
        self._spawn(self._control(msg))

    async def _control(self, msg: Msg) -> None:
        try:
            command = codec.decode_control(msg.data)
        except (msgspec.DecodeError, msgspec.ValidationError) as error:
            await _reply(
                msg,
                ControlReply(ok=False, error=WireError(code=Code.BAD_REQUEST, message=str(error))),
            )
            return
        try:
            if isinstance(command, LoadModel):
                await self.load(command.model)
                reply = ControlReply(ok=True)
            elif isinstance(command, UnloadModel):
                await self.unload(command.model, only_if_idle=command.only_if_idle)
                reply = ControlReply(ok=True)
            else:
                reply = ControlReply(ok=True, models=await self.restart_engine())
        except EngineError as error:
            reply = ControlReply(ok=False, error=error.wire)
        await _reply(msg, reply)

    async def _on_gateway_heartbeat(self, msg: Msg) -> None:
        try:
            beat = codec.decode(msg.data, GatewayHeartbeat)
        except (msgspec.DecodeError, msgspec.ValidationError):
            self.log.warning("bad_gateway_heartbeat", subject=msg.subject)
            return
        self.gateways.heartbeat(beat.gateway, beat.interval_s, time.monotonic())

    def _cancel_orphans(self) -> None:
        """Cancel the requests of gateways that stopped beating (they cannot say so)."""
        running = [
            (rid, job.request.gateway, job.accepted_at)
            for rid, job in self.jobs.items()
            if not job.cancelled.is_set()
        ]
        for request_id in self.gateways.orphans(running, time.monotonic()):
            job = self.jobs[request_id]
            job.cancelled.set()
            self.log.warning("request_orphaned", request_id=request_id, gateway=job.request.gateway)

    async def _on_cancel(self, msg: Msg) -> None:
        try:
            cancel = codec.decode(msg.data, Cancel)
        except (msgspec.DecodeError, msgspec.ValidationError):
            return
        job = self.jobs.get(cancel.request_id)
        if job is not None:
            job.cancelled.set()
            self.log.info("request_cancelled", request_id=cancel.request_id, reason=cancel.reason)

    async def _on_infer(self, msg: Msg) -> None:
        try:
            await self._infer_one(msg)
        finally:
            if not self._more_coming():
                # The requests that arrived together are all in: they start together.
                for resident in self.residents.values():
                    if isinstance(resident.engine, Engine):
                        resident.engine.release()

    def _more_coming(self) -> bool:
        """Whether inference requests wait behind the one being handled."""
        return self._infer is not None and self._infer.pending_msgs > 0

    async def _infer_one(self, msg: Msg) -> None:
        try:
            request = codec.decode(msg.data, InferRequest)
        except (msgspec.DecodeError, msgspec.ValidationError) as error:
            await _reply(
                msg,
                InferReply(
                    accepted=False, error=WireError(code=Code.BAD_REQUEST, message=str(error))
                ),
            )
            return
        resident = self._ready(request.model)
        if isinstance(resident, WireError):
            await _reply(msg, InferReply(accepted=False, error=resident))
            return
        refusal = self._admission(resident)
        if isinstance(resident.engine, EmbeddingEngine):
            refusal = _wrong_kind(request.model, "an embedding model: ask /v1/embeddings")
        if refusal is not None:
            self.metrics.refused.labels(request.model, refusal.code).inc()
            await _reply(msg, InferReply(accepted=False, error=refusal))
            return
        assert isinstance(resident.engine, Engine)
        engine = resident.engine
        try:
            # Rendered, measured and checked before accepting: a prompt the template refuses,
            # one with no tokens or more than the context holds, a schema with no grammar, a
            # bias outside the vocabulary are the client's error, a real HTTP status, for
            # streams too.
            # (A JSON schema's grammar conversion can take long: never on the loop.)
            if len(msg.data) <= INLINE_RENDER_BYTES and request.params.json_schema is None:
                prompt = engine.checked_prompt(request)
            else:
                prompt = await asyncio.to_thread(engine.checked_prompt, request)
            job = Job(request, TokenChannel(asyncio.get_running_loop()), prompt=prompt)
            engine.submit(job, more_coming=self._more_coming())
        except EngineError as error:
            self.metrics.refused.labels(request.model, error.wire.code).inc()
            await _reply(msg, InferReply(accepted=False, error=error.wire))
            return
        except Exception as error:  # a check that broke: said so, never left unanswered
            self.log.exception("request_check_failed", request_id=request.request_id)
            wire = WireError(code=Code.INTERNAL, message=f"the neuron could not check it: {error}")
            self.metrics.refused.labels(request.model, wire.code).inc()
            await _reply(msg, InferReply(accepted=False, error=wire))
            return
        self.jobs[request.request_id] = job
        reply = InferReply(
            accepted=True, reasoning_markers=engine.dialect.inline_markers(),
            prompt_tokens=len(prompt[0]),
        )  # fmt: skip
        await _reply(msg, reply)
        # Every line the pump logs for this request carries its id.
        with structlog.contextvars.bound_contextvars(request_id=request.request_id):
            self._spawn(self._pump(job))

    def _ready(self, model: str) -> Resident | WireError:
        """The model's resident with its engine, or why a request for it cannot run here."""
        resident = self.residents.get(model)
        if resident is None or resident.state != "ready" or resident.engine is None:
            return WireError(
                code=Code.MODEL_NOT_READY,
                message=f"model {model!r} is not ready on neuron {self.node!r}",
            )
        return resident

    def _limits(self, profile: ModelProfile) -> tuple[int, int]:
        return limits(profile, self.settings.neuron.queue_depth)

    def _admission(self, resident: Resident) -> WireError | None:
        profile = resident.profile
        in_flight = self.in_flight(profile.id)
        return refusal(profile, in_flight, self.node, self.settings.neuron.queue_depth)

    async def _asked(
        self, msg: Msg, kind: type[Asked], answer: type[Answer]
    ) -> tuple[Asked, Resident] | None:
        """A request/reply message's request and the ready model it names; None once the
        refusal (`answer` carrying the error) is sent."""
        try:
            request = codec.decode(msg.data, kind)
        except (msgspec.DecodeError, msgspec.ValidationError) as error:
            await _reply(msg, answer(error=WireError(code=Code.BAD_REQUEST, message=str(error))))
            return None
        resident = self._ready(request.model)
        if isinstance(resident, WireError):
            await _reply(msg, answer(error=resident))
            return None
        return request, resident

    async def _on_tokenize(self, msg: Msg) -> None:
        asked = await self._asked(msg, InferRequest, TokenCount)
        if asked is None:
            return
        request, resident = asked
        assert resident.engine is not None  # a ready resident has one
        try:
            count = await asyncio.to_thread(resident.engine.count_tokens, request)
        except EngineError as error:
            await _reply(msg, TokenCount(error=error.wire))
            return
        await _reply(msg, TokenCount(tokens=count))

    async def _on_vocab(self, msg: Msg) -> None:
        asked = await self._asked(msg, VocabRequest, VocabReply)
        if asked is None:
            return
        request, resident = asked
        if not isinstance(resident.engine, Engine):
            wrong = _wrong_kind(request.model, "an embedding model: its tokenizer is not served")
            await _reply(msg, VocabReply(error=wrong))
            return
        try:
            reply = await asyncio.to_thread(resident.engine.vocab, request)
        except EngineError as error:
            reply = VocabReply(error=error.wire)
        await _reply(msg, reply)

    async def _on_embed_msg(self, msg: Msg) -> None:
        self._spawn(self._on_embed(msg))  # each in its own task: one model never waits on another

    async def _on_embed(self, msg: Msg) -> None:
        asked = await self._asked(msg, EmbedRequest, EmbedReply)
        if asked is None:
            return
        request, resident = asked
        if not isinstance(resident.engine, EmbeddingEngine):
            await _reply(
                msg, EmbedReply(error=_wrong_kind(request.model, "not an embedding model"))
            )
            return
        try:
            vectors, tokens = await resident.engine.embed(request.input, request.truncate)
        except EngineError as error:
            await _reply(msg, EmbedReply(error=error.wire))
            return
        await _reply(msg, EmbedReply(vectors=vectors, tokens=tokens))

    async def _pump(self, job: Job) -> None:
        """Carry one request's events to its stream subject as numbered frames."""
        request = job.request
        subject = request.stream_subject
        keepalive = self.settings.neuron.keepalive_interval_s
        interval = self.settings.neuron.frame_interval_s
        seq = 0
        calls = [0]  # tool calls sent so far (frames number them)
        counted = 0  # generated tokens counted in the metrics so far
        started = time.perf_counter()
        try:
            while True:
                events = await job.channel.take(keepalive)
                if not events:
                    frame: object = KeepAlive(seq=seq, phase=job.channel.phase)
                    await self.nc.publish(subject, codec.encode(frame))
                    seq += 1
                    continue
                for frame in coalesce(events, seq, calls):
                    await self.nc.publish(subject, codec.encode(frame))
                    seq += 1
                # Counted as they go, so that rate() sees a long generation as it runs.
                sent = sum(e.tokens for e in events if isinstance(e, TextChunk | CallChunk))
                if sent:
                    self.metrics.tokens.labels(request.model).inc(sent)
                    counted += sent
                end = next((e for e in events if isinstance(e, Finished | Errored)), None)
                if isinstance(end, Finished):
                    self.metrics.requests.labels(request.model, end.finish_reason).inc()
                    rest = end.usage.completion_tokens - counted  # tokens no chunk carried
                    if rest > 0:
                        self.metrics.tokens.labels(request.model).inc(rest)
                    await self.nc.publish(
                        subject,
                        codec.encode(
                            Done(
                                seq=seq,
                                finish_reason=end.finish_reason,
                                usage=end.usage,
                                stop_sequence=end.stop_sequence,
                                timings=end.timings,
                                context_full=end.context_full,
                                end_logprob=end.end_logprob,
                            )
                        ),
                    )
                    self.log.info(
                        "request_done", request_id=request.request_id, model=request.model,
                        finish=end.finish_reason, prompt_tokens=end.usage.prompt_tokens,
                        completion_tokens=end.usage.completion_tokens,
                        cached_tokens=end.usage.cached_tokens,
                        queue_s=round(end.timings.queue_s, 3),
                        prefill_s=round(end.timings.prefill_s, 3),
                        seconds=round(time.perf_counter() - started, 3),
                    )  # fmt: skip
                    return
                if isinstance(end, Errored):
                    await self.nc.publish(subject, codec.encode(Failed(seq=seq, error=end.error)))
                    self.log.warning(
                        "request_failed", request_id=request.request_id, code=end.error.code,
                        error=end.error.message,
                    )  # fmt: skip
                    return
                pause = frame_pause(interval, len(self.jobs), self._stream_rate(request.model))
                if pause:
                    # Under load, pace the frames: what the engine makes meanwhile waits in
                    # the channel and leaves as one frame. A lone stream goes unpaced.
                    await asyncio.sleep(pause)
        except Exception as error:
            # The stream cannot be carried any further (the bus went away, say): stop the
            # generation and say why; the gateway reports the silence to its client.
            self.log.error(
                "stream_publish_failed", request_id=request.request_id,
                error=str(error) or type(error).__name__,
            )  # fmt: skip
        finally:
            job.cancelled.set()  # if the pump dies, the engine must not keep generating
            self.jobs.pop(request.request_id, None)

    def _stream_rate(self, model: str) -> float:
        """One stream's decode tokens/s on `model` lately (0: not known yet)."""
        resident = self.residents.get(model)
        return resident.engine.tokens_per_s if resident and resident.engine else 0.0


def _wrong_kind(model: str, what: str) -> WireError:
    return WireError(code=Code.WRONG_MODEL_KIND, message=f"model {model!r} is {what}")


async def _reply(msg: Msg, message: object) -> None:
    if msg.reply:
        await msg.respond(codec.encode(message))
