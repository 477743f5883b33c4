"""One loaded chat model, driven by one dedicated OS thread for its whole life
(model_thread.py): requests reach it through a bounded queue, and events leave it through
each request's TokenChannel.

The thread runs continuous batching: the model has `parallel` slots (sequences), each step
decodes every active slot together, and requests join and leave between steps. A new
request takes the free slot whose cached tokens share the longest prefix with its prompt.
"""

from __future__ import annotations

import asyncio
import math
import queue
import random
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import msgspec
import structlog

from cortex_core.config import ModelProfile
from cortex_neuron.arrivals import HOLD_LIMIT_S, hold_for_more
from cortex_neuron.backend import Backend, Sampler
from cortex_neuron.channel import ChannelOverflow, Errored, Finished
from cortex_neuron.chat_template import TemplateError, render_chat
from cortex_neuron.dialect import Dialect, detect_dialect, marker_texts
from cortex_neuron.errors import EngineError, check_vocabulary
from cortex_neuron.generation import Generation, Job, call_mode
from cortex_neuron.history import (
    as_templates_read,
    fold_system,
    template_messages,
    template_tools,
    template_variables,
)
from cortex_neuron.host_cache import HostCache
from cortex_neuron.markers import REASONING_PAIRS, TOOL_CALL_PAIRS, find_marker_pair
from cortex_neuron.model_thread import STOP, ModelThread
from cortex_neuron.slots import Pending, SlotView, plan_fresh, plan_start, plan_step, to_save
from cortex_neuron.step_cost import StepCost
from cortex_wire.messages import (
    MAX_TOP_LOGPROBS,
    ChatMessage,
    InferRequest,
    SamplingParams,
    Usage,
    VocabReply,
    VocabRequest,
    WireError,
)
from cortex_wire.outcomes import Code
from cortex_wire.prefixes import prefix_digests

__all__ = ["Engine", "EngineError", "Job"]

log = structlog.get_logger("engine")


@dataclass
class Slot:
    seq: int
    cached: list[int] = field(default_factory=list)  # what the sequence holds, in order
    generation: Generation | None = None
    pending: list[int] = field(default_factory=list)  # tokens still to decode
    last_used: float = 0.0
    # Digests of the conversation prefixes `cached` holds (cortex_wire.prefixes).
    digests: list[str] = field(default_factory=list)


# The most prefix digests a model lists in a heartbeat.
MAX_DIGESTS = 256
# A long generation folds its speed into the model's every this many tokens, so the
# heartbeat's tok/s is live while it runs, not only once it ends.
RATE_SAMPLE_TOKENS = 16


def _view(slot: Slot) -> SlotView:
    generation = slot.generation
    prefilling = generation is not None and len(slot.cached) < len(generation.prompt)
    return SlotView(
        slot.seq, slot.cached, slot.last_used, free=generation is None,
        prefilling=generation.prompt if prefilling and generation else (),
    )  # fmt: skip


class Engine(ModelThread[Backend]):
    kind = "engine"

    def __init__(
        self,
        profile: ModelProfile,
        *,
        n_threads: int = 0,
        queue_depth: int = 64,
        on_progress: Callable[[float], None] | None = None,
        host_cache_mb: int = 0,
    ):
        super().__init__(profile, n_threads, queue_depth)
        # Called on the event loop as the load passes each 10%.
        self._on_progress = on_progress
        self._progress_step = -1
        self._abort_load = threading.Event()
        self._active: list[Job] = []
        # Jobs waiting for another slot to finish prefilling the prefix they share.
        self._deferred: list[Job] = []
        # Jobs held on the event loop for the ones arriving behind them (arrivals.py), and
        # when the first of them was held.
        self._held: list[Job] = []
        self._held_at = 0.0
        self._hold_ends: asyncio.TimerHandle | None = None  # releases them at the limit
        self._slots: list[Slot] = []
        self._host = HostCache(host_cache_mb * 1024 * 1024)
        self._step_cost = StepCost()  # what a decode step costs here, learned as it runs
        # Prompt tokens that did not need a prefill, by where they came from.
        self.reused_tokens = {"slot": 0, "copied": 0, "restored": 0}
        self._backend: Backend | None = None
        # How the model writes reasoning and tool calls, read at load time.
        self.dialect = Dialect()
        self._marker_ids: frozenset[int] = frozenset()
        self._close_reasoning: list[int] = []
        self._free_openers: frozenset[int] = frozenset()
        self._call_openers: frozenset[int] = frozenset()  # the token a tool call opens with
        # What an answer held to a JSON schema may not write: a grammar holds characters,
        # and llama.cpp's matches a special token by its text, so a marker token could
        # stand for its characters inside a JSON string (and open reasoning mid-answer).
        self._unwritable: frozenset[int] = frozenset()

    def held_prefixes(self) -> list[str]:
        """The conversation prefixes the slots hold, for the heartbeat (read off the
        engine thread: each slot's list is replaced whole, never changed in place)."""
        held = dict.fromkeys(d for slot in self._slots for d in reversed(slot.digests))
        return list(held)[:MAX_DIGESTS]

    def submit(self, job: Job, more_coming: bool = False) -> None:
        """Hand a request to the engine thread. `more_coming`: other requests are already
        on their way in; an idle engine then holds this one until they are handed over
        too, or `release` is called, so that they start in one step."""
        if not self._held:
            self._held_at = time.monotonic()
        self._held.append(job)
        idle = self.busy == 0 and self._jobs.empty() and not self._deferred
        waited = time.monotonic() - self._held_at
        if not hold_for_more(
            idle=idle,
            more_coming=more_coming,
            held=len(self._held),
            slots=max(1, self.profile.parallel),
            waited_s=waited,
        ):
            self.release()
        elif self._hold_ends is None:
            # The ones behind may take long to arrive (a huge prompt to render): the hold
            # ends at its limit whatever comes.
            loop = asyncio.get_running_loop()
            self._hold_ends = loop.call_later(HOLD_LIMIT_S, self.release)

    def release(self) -> None:
        """Hand the held requests to the engine thread as one item: they start together.
        (While any are held the queue is empty, so this one item always fits.)"""
        if self._hold_ends is not None:
            self._hold_ends.cancel()
            self._hold_ends = None
        if not self._held:
            return
        held, self._held = self._held, []
        self._enqueue(held[0] if len(held) == 1 else tuple(held))

    @property
    def queued(self) -> int:
        return super().queued + len(self._deferred) + len(self._held)

    async def stop(self) -> None:
        """Cancel what runs, fail what waits, free the model, and join the thread."""
        if self._thread is None or self._exited is None:
            return
        self._abort_load.set()  # a load still in progress stops at its next progress report
        for job in list(self._active):
            job.cancelled.set()
        self._drain_queue("model is being unloaded")
        await self._join()

    def _drain_queue(self, reason: str) -> None:
        waiting = [*self._deferred, *self._held]
        self._deferred, self._held = [], []
        while True:
            try:
                waiting += _jobs_in(self._jobs.get_nowait())
            except queue.Empty:
                break
        for job in waiting:
            job.channel.push(Errored(WireError(code=Code.UNLOADING, message=reason)))

    def prompt_of(self, request: InferRequest) -> tuple[list[int], str]:
        """The prompt exactly as a generation sees it: its tokens and its text; EngineError
        if the template refuses the history. Tokenizing only reads the vocabulary, so this
        may run off the engine thread (the neuron does it before accepting a request)."""
        if self._backend is None:
            raise EngineError(Code.MODEL_NOT_READY, f"model {self.profile.id!r} is not loaded")
        try:
            return self._prompt_tokens(self._backend, request)
        except TemplateError as error:
            raise EngineError(Code.INVALID_REQUEST, str(error)) from None

    def vocab(self, request: VocabRequest) -> VocabReply:
        """Text to token ids or ids to text with the model's tokenizer (special tokens'
        texts are those tokens, both ways), and what the tokenizer is. Reads only the
        vocabulary, so it may run off the engine thread."""
        backend = self._backend
        if backend is None:
            raise EngineError(Code.MODEL_NOT_READY, f"model {self.profile.id!r} is not loaded")
        reply = VocabReply(
            bos=backend.bos_text, eos=backend.eos_text, chat_template=backend.chat_template or "",
            n_ctx=backend.n_ctx, n_vocab=backend.n_vocab,
        )  # fmt: skip
        if request.text is not None:
            reply.tokens = backend.tokenize(request.text, add_bos=request.add_special, special=True)
        if request.tokens is not None:
            check_vocabulary(request.tokens, backend.n_vocab, "the text to detokenize")
            pieces = b"".join(backend.piece(t, special=True) for t in request.tokens)
            reply.text = pieces.decode(errors="replace")
        return reply

    def count_tokens(self, request: InferRequest) -> int:
        return len(self.prompt_of(request)[0])

    def checked_prompt(self, request: InferRequest) -> tuple[list[int], str]:
        """The prompt (as `prompt_of` gives it) of a request nothing will refuse once it
        runs; EngineError otherwise. The neuron calls this before it accepts a request, so
        every refusal is a real HTTP status, for streams too. It reads only the vocabulary
        (no llama context), so it may run off the engine thread."""
        prompt = self.prompt_of(request)
        self.check_request(request, prompt[0])
        return prompt

    def check_request(self, request: InferRequest, prompt: Sequence[int]) -> None:
        """Everything that could refuse `request` when it starts with `prompt`: a prompt
        with no tokens or no room left to generate, log probabilities the model cannot
        give, sampling parameters (a JSON schema, logit biases) the backend cannot honour."""
        self.check_fits(prompt)
        backend = self._backend
        if backend is None:
            raise EngineError(Code.MODEL_NOT_READY, f"model {self.profile.id!r} is not loaded")
        _check_scoring(backend, request)
        backend.check(request.params)

    def check_fits(self, prompt: Sequence[int]) -> None:
        """A prompt with no tokens (nothing to predict the first token from) or one that
        leaves no room to generate is the request's error."""
        if not prompt:
            raise EngineError(Code.INVALID_REQUEST, "the prompt has no tokens")
        n_ctx = self._backend.n_ctx if self._backend else self.profile.n_ctx
        if len(prompt) >= n_ctx:
            raise EngineError(
                Code.CONTEXT_LENGTH_EXCEEDED,
                # Anthropic's words, which clients (Claude Code) read the numbers from
                f"prompt is too long: {len(prompt)} tokens > {n_ctx - 1} maximum (model "
                f"{self.profile.id!r} has a context of {n_ctx} tokens)",
            )

    def _prompt_tokens(self, backend: Backend, request: InferRequest) -> tuple[list[int], str]:
        """The prompt's tokens and its text (chat requests: as the template renders it; a
        system message the template refuses in place joins the leading one)."""
        if request.messages is not None:
            messages, started = as_templates_read(request.messages), ""
            if request.continue_final and messages and messages[-1].role == "assistant":
                messages, started = messages[:-1], messages[-1].content
            try:
                text = self._render(backend, request, messages)
            except TemplateError:
                folded = fold_system(messages)
                if folded == messages:
                    raise
                text = self._render(backend, request, folded)
            text += started  # the reply's start, for the model to continue
            # The template writes the BOS text itself when the model wants one.
            return backend.tokenize(text, add_bos=False, special=True), text
        if request.suffix is not None:
            return self._fill_in_middle(backend, request.prompt or "", request.suffix)
        if request.prompt_tokens is not None:
            return self._given_tokens(backend, request.prompt_tokens)
        # A raw prompt is the client's own rendering: its special-token texts are those
        # tokens (as llama-server reads prompts), so a hand-rendered chat prompt works.
        text = request.prompt or ""
        return backend.tokenize(text, add_bos=True, special=True), text

    def _fill_in_middle(self, backend: Backend, prefix: str, suffix: str) -> tuple[list[int], str]:
        """Prefix and suffix in the model's own FIM tokens, the middle to be generated:
        [BOS] PRE prefix SUF suffix MID (the order llama-server writes). The code is text:
        a special token's text in it stays text."""
        if backend.fim is None:
            raise TemplateError(
                f"model {self.profile.id!r} has no fill-in-the-middle tokens (its GGUF names "
                "no tokenizer.ggml.fim_pre/suf/mid_token_id), so it cannot take a suffix"
            )
        pre, suf, mid = backend.fim
        lead = backend.tokenize("", add_bos=True, special=False)
        code = [
            *lead, pre, *backend.tokenize(prefix, add_bos=False, special=False),
            suf, *backend.tokenize(suffix, add_bos=False, special=False), mid,
        ]  # fmt: skip
        return code, prefix

    def _given_tokens(self, backend: Backend, tokens: list[int]) -> tuple[list[int], str]:
        """A prompt the client tokenized itself: those ids, as they are (none: check_fits
        refuses it, as any prompt without tokens)."""
        check_vocabulary(tokens, backend.n_vocab, "the prompt")
        text = b"".join(backend.piece(t) for t in tokens).decode(errors="replace")
        return list(tokens), text

    def _render(
        self, backend: Backend, request: InferRequest, messages: Sequence[ChatMessage]
    ) -> str:
        return render_chat(
            backend.chat_template,
            template_messages(messages, self.dialect),
            bos_token=backend.bos_text,
            eos_token=backend.eos_text,
            template_kwargs=template_variables(request, self.dialect),
            tools=template_tools(request.tools),
        )

    # --- everything below runs on the engine thread -----------------------------------

    def _serve(self, backend: Backend) -> None:
        slots = self._slots = [Slot(seq) for seq in range(max(1, self.profile.parallel))]
        try:
            while self._admit(backend, slots):
                self._step(backend, slots)
        finally:
            for slot in slots:
                if slot.generation is not None:
                    slot.generation.finish("cancelled")

    def _close(self, backend: Backend) -> None:
        backend.close()

    def _open(self) -> Backend:
        backend: Backend
        if self.profile.script is not None:
            from cortex_neuron.scripted_backend import ScriptedBackend

            backend = ScriptedBackend(self.profile, self.profile.script)
            if self._abort_load.wait(self.profile.script.load_s):  # an unload cut it short
                raise EngineError(Code.LOAD_CANCELLED, f"loading {self.profile.id} was cancelled")
        else:
            from cortex_neuron.llama_backend import LlamaBackend

            try:
                backend = LlamaBackend(
                    self.profile, n_threads=self._n_threads, on_progress=self._report_progress
                )
            except EngineError:
                if self._abort_load.is_set():
                    raise EngineError(
                        Code.LOAD_CANCELLED, f"loading {self.profile.path} was cancelled"
                    ) from None
                raise

        def tokenize(text: str) -> list[int]:
            return backend.tokenize(text, add_bos=False, special=True)

        pair = find_marker_pair(tokenize, REASONING_PAIRS)
        tool_pair = find_marker_pair(tokenize, TOOL_CALL_PAIRS)
        try:
            self.dialect = detect_dialect(
                backend.chat_template,
                bos=backend.bos_text,
                eos=backend.eos_text,
                vocab_pair=(pair.open_text, pair.close_text) if pair else None,
                vocab_tool_pair=(tool_pair.open_text, tool_pair.close_text) if tool_pair else None,
            )
        except TemplateError as error:
            backend.close()
            raise EngineError(Code.LOAD_FAILED, f"{self.profile.path}: {error}") from None
        self._marker_ids = frozenset(
            ids[0] for text in marker_texts(self.dialect) if len(ids := tokenize(text)) == 1
        )
        self._close_reasoning = tokenize(_reasoning_close(self.dialect))
        self._free_openers = frozenset(
            ids[0] for text in _free_openers(self.dialect) if len(ids := tokenize(text)) == 1
        )
        self._unwritable = self._marker_ids | backend.control_tokens()
        opener = self.dialect.tools.section_open if self.dialect.tools else ""
        self._call_openers = frozenset(
            ids[0] for text in [opener] if text and len(ids := tokenize(text)) == 1
        )
        log.info("model_dialect", model=self.profile.id, **self.dialect.summary())
        self._backend = backend
        return backend

    def _report_progress(self, progress: float) -> bool:
        step = int(progress * 10)
        if step > self._progress_step:
            self._progress_step = step
            if self._on_progress is not None and self._loop is not None:
                self._loop.call_soon_threadsafe(self._on_progress, step / 10)
        return not self._abort_load.is_set()

    def _admit(self, backend: Backend, slots: list[Slot]) -> bool:
        """Start waiting requests in free slots (deferred ones first), waiting for one only
        when nothing runs. False once the engine is told to stop."""
        deferred, self._deferred = self._deferred, []
        for job in deferred:
            self._start(backend, slots, job)  # or deferred again
        while True:
            free = [slot for slot in slots if slot.generation is None]
            if not free:
                return True
            try:
                item = self._jobs.get(block=len(free) == len(slots))
            except queue.Empty:
                return True
            if item is STOP:
                return False
            for job in _jobs_in(item):
                self._start(backend, slots, job)  # past the free slots: deferred

    def _free_sampler(self, backend: Backend, request: InferRequest, seed: int) -> Sampler | None:
        """For a JSON schema on a model that reasons, or that may call the tools offered
        instead of answering: the same sampler without the schema, for its reasoning and
        its calls (None: the schema holds the whole output)."""
        params, dialect = request.params, self.dialect
        if params.json_schema is None:
            return None
        if request.require_call:  # a forced call: reasoning in tags first, if asked for
            reasons = bool(request.thinking) and dialect.reasoning is not None
            if not reasons or dialect.channels is not None:
                return None
        elif dialect.reasoning is None and dialect.channels is None and not self._may_call(request):
            return None
        return backend.sampler(msgspec.structs.replace(params, json_schema=None), seed)

    def _may_call(self, request: InferRequest) -> bool:
        """The request offers tools the model may call in its own format, which opens with a
        token of its own (so a JSON schema holds only an answer that is no call)."""
        return bool(self._call_openers) and call_mode(request) == "parse"

    def _start(self, backend: Backend, slots: Sequence[Slot], job: Job) -> None:
        if job.cancelled.is_set():
            job.channel.push(Finished("cancelled", Usage()))
            return
        if all(slot.generation is not None for slot in slots):
            self._deferred.append(job)
            return
        request = job.request
        try:
            prompt, prompt_text = job.prompt or self._prompt_tokens(backend, request)
            self.check_request(request, prompt)  # the neuron checked, but not every caller
            views = [_view(slot) for slot in slots]
            plan = (
                plan_fresh(views)  # the logits of cached tokens are gone
                if request.prompt_logprobs
                else plan_start(views, prompt, self._host.views())
            )
            if plan is None:  # another slot is prefilling this prefix: copy it once done
                job.prompt = (prompt, prompt_text)
                self._deferred.append(job)
                return
            seed = request.params.seed
            seed = seed if seed is not None else random.getrandbits(31)
            sampler = backend.sampler(held(request.params, self._unwritable), seed)
            free = self._free_sampler(backend, request, seed)
        except TemplateError as error:
            job.channel.push(Errored(WireError(code=Code.INVALID_REQUEST, message=str(error))))
            return
        except EngineError as error:
            job.channel.push(Errored(error.wire))
            return
        except Exception as error:  # report it and keep serving
            log.exception("request_start_failed", request_id=request.request_id)
            job.channel.push(Errored(WireError(code=Code.INTERNAL, message=str(error))))
            return
        slot, reused = slots[plan.seq], plan.reused
        if to_save(_view(slot), plan) and self._host.budget:
            self._host.put(list(slot.cached), backend.save(slot.seq))
        slot.digests = prefix_digests(request)
        if plan.copy_from is not None:
            backend.share(plan.copy_from, slot.seq, reused)
            slot.cached[:] = slots[plan.copy_from].cached[:reused]
            self.reused_tokens["copied"] += reused
        elif plan.restore is not None and self._restore(backend, slot, plan.restore, reused):
            self.reused_tokens["restored"] += reused
        elif plan.restore is not None:  # it did not go back: prefill it all
            reused = 0
        else:
            backend.forget(slot.seq, reused)
            del slot.cached[reused:]
            self.reused_tokens["slot"] += reused
        slot.pending = list(prompt[reused:])
        slot.generation = Generation(
            job,
            backend,
            prompt,
            sampler,
            dialect=self.dialect,
            prompt_text=prompt_text,
            close_reasoning=self._close_reasoning,
            marker_ids=self._marker_ids,
            cached=reused,
            free_sampler=free,
            free_openers=self._free_openers
            | (self._call_openers if self._may_call(request) else frozenset()),
        )
        self._active.append(job)
        self.busy = len(self._active)

    def _restore(self, backend: Backend, slot: Slot, key: int, reused: int) -> bool:
        entry = self._host.take(key)
        try:
            backend.restore(slot.seq, entry.data)
        except EngineError as error:
            log.warning("cache_restore_failed", model=self.profile.id, error=str(error))
            backend.forget(slot.seq, 0)
            slot.cached.clear()
            return False
        backend.forget(slot.seq, reused)
        slot.cached[:] = entry.tokens[:reused]
        return True

    def _step(self, backend: Backend, slots: list[Slot]) -> None:
        """One decode over every active slot, then one sampled token for each slot whose
        prompt is fully in."""
        for slot in slots:
            if slot.generation is not None and slot.generation.job.cancelled.is_set():
                self._end(slot, "cancelled")
        pending = [
            Pending(slot.seq, slot.pending, len(slot.cached), _scoring_prompt(slot))
            for slot in slots
            if slot.generation is not None and slot.pending
        ]
        if not pending:
            return
        rows = plan_step(pending, backend.n_batch, self._step_cost.line())
        try:
            started = time.perf_counter()
            backend.decode(rows)
            self._step_cost.observe(sum(len(r.tokens) for r in rows), time.perf_counter() - started)
        except Exception as error:
            wire = (
                error.wire
                if isinstance(error, EngineError)
                else WireError(code=Code.INTERNAL, message=str(error))
            )
            log.error("decode_failed", model=self.profile.id, error=wire.message)
            for row in rows:
                self._fail(slots[row.seq], wire, backend)
            return
        index = 0  # of the row's first token in the batch (rows fill it in order)
        for row in rows:
            slot = slots[row.seq]
            if row.all_logits and slot.generation is not None:
                slot.generation.score_prompt(row.start, len(row.tokens), index)
            index += len(row.tokens)
            slot.cached.extend(row.tokens)
            del slot.pending[: len(row.tokens)]
            if row.output >= 0 and slot.generation is not None:
                self._sample(slot, row.output, backend)

    def _sample(self, slot: Slot, output: int, backend: Backend) -> None:
        generation = slot.generation
        assert generation is not None
        if generation.limit <= 0:  # max_tokens 0: the prompt only (scored, say)
            self._end(slot, "length")
            return
        try:
            sampled = generation.sample(output)
            top = generation.top_logprobs
            scores = None if top is None else backend.scores(output, sampled, top)
            token, finish = generation.take(sampled, scores)
            if finish is not None:
                self._end(slot, finish)
            else:
                slot.pending.append(token)  # type: ignore[arg-type]
                if generation.output.tokens % RATE_SAMPLE_TOKENS == 0:
                    self._note_rate(generation)
        except ChannelOverflow:
            log.warning("stream_overflow", request_id=generation.job.request.request_id)
            message = "the stream's reader fell too far behind"
            self._fail(slot, WireError(code=Code.STREAM_OVERFLOW, message=message), backend)
        except Exception as error:  # this request fails; the others go on
            log.exception("generation_failed", request_id=generation.job.request.request_id)
            self._fail(slot, WireError(code=Code.INTERNAL, message=str(error)), backend)

    def _end(self, slot: Slot, reason: Any) -> None:
        generation = slot.generation
        assert generation is not None
        self._release(slot)  # first: whoever sees the end sees the slot free
        generation.finish(reason)
        self._note_rate(generation)

    def _note_rate(self, generation: Generation) -> None:
        """Fold a generation's decode speed so far into the model's recent speed."""
        rate = generation.decode_rate()
        if rate is not None:
            self.tokens_per_s = (
                rate if not self.tokens_per_s else 0.7 * self.tokens_per_s + 0.3 * rate
            )

    def _fail(self, slot: Slot, error: WireError, backend: Backend) -> None:
        generation = slot.generation
        if generation is None:
            return
        backend.forget(slot.seq, 0)  # what the failed step left in the cache is unknown
        slot.cached.clear()
        slot.digests = []
        self._release(slot)
        generation.fail(error)

    def _release(self, slot: Slot) -> None:
        assert slot.generation is not None
        self._active.remove(slot.generation.job)
        slot.generation = None
        slot.pending = []
        slot.last_used = time.perf_counter()
        self.busy = len(self._active)
        self.last_used_at = time.time()


def _jobs_in(item: object) -> tuple[Job, ...]:
    """The jobs a queue item carries: one, or a burst released together (none: STOP)."""
    if isinstance(item, Job):
        return (item,)
    return item if isinstance(item, tuple) else ()


def _scoring_prompt(slot: Slot) -> bool:
    generation = slot.generation
    return (
        generation is not None
        and generation.scores_prompt
        and (len(slot.cached) < len(generation.prompt))
    )


def _check_scoring(backend: Backend, request: InferRequest) -> None:
    """A request for log probabilities the model can give; EngineError otherwise."""
    if request.logprobs is None and not request.prompt_logprobs:
        return
    if not backend.has_logits:
        raise EngineError(Code.INVALID_REQUEST, "this model has no logits to score tokens with")
    if request.logprobs is not None and not 0 <= request.logprobs <= MAX_TOP_LOGPROBS:
        raise EngineError(
            Code.INVALID_REQUEST,
            f"top log probabilities must be 0 to {MAX_TOP_LOGPROBS} per token, got "
            f"{request.logprobs}",
        )


def held(params: SamplingParams, unwritable: frozenset[int]) -> SamplingParams:
    """`params` for an answer held to a JSON schema: the `unwritable` tokens biased out
    (past any bias the caller gave them); without a schema, `params` as they are."""
    if params.json_schema is None or not unwritable:
        return params
    banned = dict.fromkeys(unwritable, -math.inf)
    return msgspec.structs.replace(params, logit_bias={**params.logit_bias, **banned})


def _free_openers(dialect: Dialect) -> list[str]:
    """The markers that lead into what a JSON schema does not hold: the reasoning, or a
    message header of a channel grammar."""
    if dialect.channels is not None:
        return [m for m in (dialect.channels.start, dialect.channels.channel) if m]
    return [dialect.reasoning.open] if dialect.reasoning and dialect.reasoning.open else []


def _reasoning_close(dialect: Dialect) -> str:
    """What ends the reasoning and begins the answer, written in the model's place when a
    reasoning budget runs out."""
    if dialect.channels is not None:
        return dialect.channels.answer_header
    return dialect.reasoning.close if dialect.reasoning is not None else ""
