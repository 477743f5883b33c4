"""One loaded model, driven by one dedicated OS thread for its whole life.

llama.cpp's OpenMP build decodes ~3x slower when calls arrive from several threads, so the
thread that loads the model is the only one that ever touches it: requests reach it through
a bounded queue, and events leave it through each request's TokenChannel.
"""

from __future__ import annotations

import asyncio
import json
import os
import queue
import random
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import structlog

from cortex_core.config import ModelProfile
from cortex_neuron import load_progress
from cortex_neuron.channel import ChannelOverflow, Errored, Finished, TokenChannel
from cortex_neuron.chat_template import TemplateError, render_chat
from cortex_neuron.markers import (
    REASONING_PAIRS,
    TOOL_CALL_PAIRS,
    MarkerPair,
    find_marker_pair,
    prompt_opens_reasoning,
)
from cortex_neuron.output_channels import OutputChannels
from cortex_neuron.pieces import TokenPieces
from cortex_wire.messages import ChatMessage, InferRequest, Timings, Usage, WireError

log = structlog.get_logger("engine")


class EngineError(Exception):
    def __init__(self, code: str, message: str, retryable: bool = False) -> None:
        super().__init__(message)
        self.wire = WireError(code=code, message=message, retryable=retryable)


@dataclass
class Job:
    request: InferRequest
    channel: TokenChannel
    cancelled: threading.Event = field(default_factory=threading.Event)
    enqueued_at: float = field(default_factory=time.perf_counter)


_STOP = object()


def common_prefix_length(a: Sequence[int], b: Sequence[int]) -> int:
    n = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        n += 1
    return n


class Engine:
    def __init__(
        self,
        profile: ModelProfile,
        *,
        n_threads: int = 0,
        queue_depth: int = 64,
        on_progress: Callable[[float], None] | None = None,
    ):
        self.profile = profile
        # Called on the event loop as the load passes each 10%.
        self._on_progress = on_progress
        self._progress_step = -1
        self._abort_load = threading.Event()
        self._n_threads = n_threads or max(1, os.cpu_count() or 1)
        self._jobs: queue.Queue[Any] = queue.Queue(maxsize=queue_depth)
        self._thread: threading.Thread | None = None
        self._current: Job | None = None
        self._loaded: asyncio.Future[None] | None = None
        self._exited: asyncio.Future[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self.busy = 0
        self.tokens_per_s = 0.0
        self.last_used_at = 0.0
        self.n_ctx = profile.n_ctx
        # Filled in on the engine thread by _load().
        self._template: str | None = None
        self._bos = ""
        self._eos = ""
        self._vocab: Any = None
        self._llm: Any = None
        self._pieces: Any = None
        # Marker pairs found in the vocabulary at load time (None: the model has none).
        self.reasoning: MarkerPair | None = None
        self.tool_calls: MarkerPair | None = None

    @property
    def queued(self) -> int:
        return self._jobs.qsize()

    async def start(self) -> None:
        """Load the model on the engine thread; raises EngineError if it cannot."""
        self._loop = asyncio.get_running_loop()
        self._loaded = self._loop.create_future()
        self._exited = self._loop.create_future()
        self._thread = threading.Thread(
            target=self._run, name=f"engine:{self.profile.id}", daemon=True
        )
        self._thread.start()
        await self._loaded

    def submit(self, job: Job) -> None:
        try:
            self._jobs.put_nowait(job)
        except queue.Full:
            raise EngineError(
                "overloaded",
                f"model {self.profile.id!r} has {self.queued} requests queued",
                retryable=True,
            ) from None

    async def stop(self) -> None:
        """Cancel what runs, fail what waits, free the model, and join the thread."""
        if self._thread is None or self._exited is None:
            return
        self._abort_load.set()  # a load still in progress stops at its next progress report
        if self._current is not None:
            self._current.cancelled.set()
        self._drain_queue("model is being unloaded")
        self._jobs.put(_STOP)
        await self._exited

    def _drain_queue(self, reason: str) -> None:
        while True:
            try:
                job = self._jobs.get_nowait()
            except queue.Empty:
                return
            if isinstance(job, Job):
                job.channel.push(
                    Errored(WireError(code="unloading", message=reason, retryable=True))
                )

    # --- everything below runs on the engine thread -----------------------------------

    def _settle(self, future: asyncio.Future[None] | None, error: BaseException | None) -> None:
        def settle() -> None:
            if future is not None and not future.done():
                future.set_exception(error) if error else future.set_result(None)

        assert self._loop is not None
        self._loop.call_soon_threadsafe(settle)

    def _run(self) -> None:
        try:
            llm = self._load()
        except EngineError as error:
            self._settle(self._loaded, error)
            self._settle(self._exited, None)
            return
        # A model loaded for a waiting request counts as just used, so LRU does not pick it
        # before that request arrives.
        self.last_used_at = time.time()
        self._settle(self._loaded, None)
        try:
            while True:
                job = self._jobs.get()
                if job is _STOP:
                    break
                self._current = job
                self.busy = 1
                try:
                    self._serve(llm, job)
                except ChannelOverflow:
                    log.warning("stream_overflow", request_id=job.request.request_id)
                except Exception as error:  # report, keep serving the next request
                    log.exception("generation_failed", request_id=job.request.request_id)
                    job.channel.push(Errored(WireError(code="internal", message=str(error))))
                finally:
                    self._current = None
                    self.busy = 0
                    self.last_used_at = time.time()
        finally:
            llm.close()
            self._settle(self._exited, None)

    def _load(self) -> Any:
        import llama_cpp

        path = Path(self.profile.path)
        if not path.is_file():
            raise EngineError("load_failed", f"model file not found: {path}")
        try:
            with load_progress.reporting(self._report_progress):
                llm = llama_cpp.Llama(
                    model_path=str(path),
                    n_ctx=self.profile.n_ctx,
                    n_batch=self.profile.n_batch,
                    n_gpu_layers=self.profile.n_gpu_layers,
                    main_gpu=self.profile.main_gpu,
                    tensor_split=self.profile.tensor_split or None,
                    n_threads=self._n_threads,
                    n_threads_batch=self._n_threads,
                    verbose=False,
                )
        except Exception as error:  # llama.cpp says little more than "failed to load"
            if self._abort_load.is_set():
                raise EngineError("load_cancelled", f"loading {path} was cancelled") from None
            raise EngineError("load_failed", f"llama.cpp could not load {path}: {error}") from None
        self.n_ctx = llm.n_ctx()
        self._template = llm.metadata.get("tokenizer.chat_template")
        self._bos = llm.detokenize([llm.token_bos()], special=True).decode(errors="replace")
        self._eos = llm.detokenize([llm.token_eos()], special=True).decode(errors="replace")
        self._vocab = llm._model.vocab
        self._pieces = TokenPieces(self._vocab)

        def tokenize(text: str) -> list[int]:
            return list(llm.tokenize(text.encode(), add_bos=False, special=True))

        self.reasoning = find_marker_pair(tokenize, REASONING_PAIRS)
        self.tool_calls = find_marker_pair(tokenize, TOOL_CALL_PAIRS)
        self._llm = llm
        return llm

    def _report_progress(self, progress: float) -> bool:
        step = int(progress * 10)
        if step > self._progress_step:
            self._progress_step = step
            if self._on_progress is not None and self._loop is not None:
                self._loop.call_soon_threadsafe(self._on_progress, step / 10)
        return not self._abort_load.is_set()

    def _prompt_tokens(self, llm: Any, request: InferRequest) -> list[int]:
        if request.messages is not None:
            text = render_chat(
                self._template,
                template_messages(request.messages),
                bos_token=self._bos,
                eos_token=self._eos,
                template_kwargs=request.chat_template_kwargs,
                tools=request.tools or None,
            )
            # The template writes the BOS text itself when the model wants one.
            tokens: list[int] = llm.tokenize(text.encode(), add_bos=False, special=True)
            return tokens
        return list(llm.tokenize((request.prompt or "").encode(), add_bos=True, special=False))

    def count_tokens(self, request: InferRequest) -> int:
        """Prompt length exactly as a generation would see it (tokenizing only reads the
        vocabulary, so this may run off the engine thread)."""
        if self._llm is None:
            raise EngineError("model_not_ready", f"model {self.profile.id!r} is not loaded")
        return len(self._prompt_tokens(self._llm, request))

    def _grammar(self, schema: dict[str, object] | None) -> Any:
        if schema is None:
            return None
        from llama_cpp import LlamaGrammar

        try:
            return LlamaGrammar.from_json_schema(json.dumps(schema), verbose=False)
        except Exception as error:
            raise EngineError(
                "invalid_request", f"the JSON schema cannot be used for decoding: {error}"
            ) from None

    def _serve(self, llm: Any, job: Job) -> None:
        import llama_cpp

        request, channel = job.request, job.channel
        if job.cancelled.is_set():
            channel.push(Finished("cancelled", Usage()))
            return
        channel.phase = "prefill"
        started = time.perf_counter()
        try:
            prompt = self._prompt_tokens(llm, request)
            grammar = self._grammar(request.params.json_schema)
        except TemplateError as error:
            channel.push(Errored(WireError(code="invalid_request", message=str(error))))
            return
        except EngineError as error:
            channel.push(Errored(error.wire))
            return
        room = self.n_ctx - len(prompt)
        if room <= 0:
            message = (
                f"the prompt is {len(prompt)} tokens; model {self.profile.id!r} has a "
                f"context of {self.n_ctx} tokens"
            )
            channel.push(Errored(WireError(code="context_length_exceeded", message=message)))
            return
        params = request.params
        limit = min(params.max_tokens, room) if params.max_tokens else room
        cached = common_prefix_length(llm.input_ids[: llm.n_tokens].tolist(), prompt)
        llm.set_seed(params.seed if params.seed is not None else random.getrandbits(31))
        output = OutputChannels(
            self.reasoning,
            prompt_opens_reasoning(prompt, self.reasoning),
            params.stop,
            self.tool_calls,
        )
        budget = params.reasoning_budget if self.reasoning else None

        def sample(context: list[int]) -> Any:
            return llm.generate(
                context,
                temp=params.temperature,
                top_p=params.top_p,
                top_k=params.top_k,
                min_p=params.min_p,
                repeat_penalty=params.repeat_penalty,
                presence_penalty=params.presence_penalty,
                frequency_penalty=params.frequency_penalty,
                grammar=grammar,
            )

        finish = "length"
        first_at = last_at = 0.0
        context = list(prompt)
        tokens = sample(context)
        while output.tokens < limit:
            token = next(tokens, None)
            if token is None:
                break
            if job.cancelled.is_set():
                finish = "cancelled"
                break
            if llama_cpp.llama_vocab_is_eog(self._vocab, token):
                finish = "stop"
                break
            if budget is not None and output.in_reasoning and output.reasoning_tokens >= budget:
                # Reasoning budget spent: close the reasoning ourselves and let the model
                # go on from there (the KV cache keeps everything before the marker).
                assert self.reasoning is not None
                token = self.reasoning.close_id
                tokens.close()
                tokens = sample([*context, token])
            last_at = time.perf_counter()
            if output.tokens == 0:
                first_at = last_at
                channel.phase = "decode"
            context.append(token)
            for chunk in output.add(token, self._pieces(token)):
                channel.push(chunk)
            if output.stopped:
                finish = "stop"
                break
        tokens.close()
        if finish != "cancelled":
            for chunk in output.finish():
                channel.push(chunk)
        generated = output.tokens
        if generated > 1 and last_at > first_at:
            rate = (generated - 1) / (last_at - first_at)
            self.tokens_per_s = (
                rate if not self.tokens_per_s else 0.7 * self.tokens_per_s + 0.3 * rate
            )
        usage = Usage(
            prompt_tokens=len(prompt),
            completion_tokens=generated,
            cached_tokens=cached,
            reasoning_tokens=output.reasoning_tokens,
            tool_calls=output.tool_calls,
        )
        timings = Timings(
            queue_s=round(started - job.enqueued_at, 6),
            prefill_s=round((first_at or time.perf_counter()) - started, 6),
            decode_s=round(max(last_at - first_at, 0.0), 6),
        )
        channel.push(Finished(finish, usage, output.stop_sequence, timings))  # type: ignore[arg-type]


def template_messages(messages: Sequence[ChatMessage]) -> list[dict[str, Any]]:
    """Chat messages as chat templates expect them (Hugging Face conventions: assistant
    `tool_calls` with arguments as an object, `tool` messages with `tool_call_id`)."""
    rendered: list[dict[str, Any]] = []
    for message in messages:
        item: dict[str, Any] = {"role": message.role, "content": message.content}
        if message.tool_calls:
            item["tool_calls"] = [
                {
                    "id": call.id,
                    "type": "function",
                    "function": {"name": call.name, "arguments": _arguments(call.arguments)},
                }
                for call in message.tool_calls
            ]
        if message.tool_call_id:
            item["tool_call_id"] = message.tool_call_id
        if message.name:
            item["name"] = message.name
        rendered.append(item)
    return rendered


def _arguments(text: str) -> Any:
    try:
        value = json.loads(text)
    except ValueError:
        return text
    return value if isinstance(value, dict) else text
