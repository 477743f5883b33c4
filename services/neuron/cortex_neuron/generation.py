"""One request in a slot: its prompt, sampler, output channels, limits and timings.

The engine feeds it each sampled token; it decides what the token means (end, stop, the
reasoning budget running out), pushes text to the request's channel, and reports whether it
goes on. It knows nothing of batches or threads.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

from cortex_neuron.backend import Backend, Sampler
from cortex_neuron.channel import (
    CallChunk,
    Errored,
    Finished,
    PromptScored,
    TextChunk,
    TokenChannel,
)
from cortex_neuron.dialect import CallMode, Dialect
from cortex_neuron.logprobs import Scores, token_logprob
from cortex_neuron.output_channels import Chunk, OutputChannels
from cortex_wire.messages import (
    FinishReason,
    InferRequest,
    Timings,
    TokenLogprob,
    Usage,
    WireError,
)


@dataclass
class Job:
    request: InferRequest
    channel: TokenChannel
    cancelled: threading.Event = field(default_factory=threading.Event)
    enqueued_at: float = field(default_factory=time.perf_counter)
    accepted_at: float = field(default_factory=time.monotonic)
    # The prompt's tokens and text, when the neuron already rendered them to admit it.
    prompt: tuple[list[int], str] | None = None


def call_mode(request: InferRequest) -> CallMode:
    """A forced call is the whole output; with no tools offered a call is not read as one
    (what the model wrote stays text), as hosted APIs never call a tool they were not given."""
    if request.require_call:
        return "forced"
    if request.callable is not None and not request.callable:
        return "off"  # allowed_tools with none allowed
    return "parse" if request.tools else "off"


def spelling(scored: Sequence[TokenLogprob], text: str) -> tuple[TokenLogprob, ...]:
    """The scored tokens that spell `text`: the last ones, when those before them wrote
    what the parser dropped from the answer (a header's role word between reasoning and
    answer); all of them when no tail spells it exactly (a stop sequence cut a token)."""
    tail = b""
    for start in range(len(scored) - 1, -1, -1):
        tail = bytes(scored[start].bytes) + tail
        if tail == text.encode():
            return tuple(scored[start:])
    return tuple(scored)


class Generation:
    def __init__(
        self,
        job: Job,
        backend: Backend,
        prompt: Sequence[int],
        sampler: Sampler,
        *,
        dialect: Dialect,
        prompt_text: str,
        close_reasoning: Sequence[int],
        marker_ids: frozenset[int],
        cached: int,
        free_sampler: Sampler | None = None,
        free_openers: frozenset[int] = frozenset(),
    ) -> None:
        self.job = job
        self.prompt = prompt
        self.sampler = sampler
        # With a JSON schema on a model that reasons or may call tools, the schema holds the
        # answer only: reasoning, message headers and calls are sampled by `free_sampler`,
        # and before the answer has begun a token in `free_openers` (a reasoning, header or
        # call opener) may lead there.
        self._free = free_sampler
        self._free_openers = free_openers
        self._answering = False
        self._calls_done = 0  # calls whole so far
        self._backend = backend
        params = job.request.params
        room = backend.n_ctx - len(prompt)
        self.limit = min(params.max_tokens, room) if params.max_tokens is not None else room
        self.cached = cached
        callable_names = job.request.callable
        schemas = {
            str(f.get("name")): f.get("parameters") or {}
            for tool in job.request.tools
            if isinstance(f := tool.get("function"), dict)
            and (callable_names is None or f.get("name") in callable_names)
        }
        mode = call_mode(job.request)
        if mode == "forced" and not job.request.thinking:
            dialect = replace(dialect, reasoning=None)  # the call is all it writes
        self.output = OutputChannels(
            dialect, prompt_text, params.stop, schemas, job.request.stream_calls, mode
        )
        # The tokens that close the reasoning (and open the answer) in the model's place.
        self._close_reasoning = list(close_reasoning)
        self._forced: list[int] = []
        self._marker_ids = marker_ids
        has_reasoning = dialect.reasoning is not None or dialect.channels is not None
        self._budget = params.reasoning_budget if has_reasoning and close_reasoning else None
        # How many alternatives to score at each generated token (None: score nothing).
        self.top_logprobs = job.request.logprobs
        self._scored: list[TokenLogprob] = []  # answer tokens not yet in a text chunk
        self._end_logprob: TokenLogprob | None = None
        self.scores_prompt = job.request.prompt_logprobs
        self._prompt_scores: list[TokenLogprob] = []
        self.started = time.perf_counter()
        self.first_at = self.last_at = 0.0
        job.channel.phase = "prefill"

    def sample(self, output: int) -> int:
        """The next token from batch output `output`, by the sampler the moment wants."""
        free = self._free
        if free is None or self._answering:
            return self.sampler.sample(output)
        if self.output.before_answer or self.output.in_call or self._calls_done:
            return free.sample(output)  # (a reply that calls tools is no answer to hold)
        token = free.sample(output)  # the model may open its reasoning or a call first...
        if token in self._free_openers:
            return token
        self._answering = True  # ... or it begins the answer, which the schema holds
        return self.sampler.sample(output)

    def scored(self, token: int, scores: Scores | None) -> TokenLogprob:
        """A token of this request as the wire reports it, with its scores (None: the
        prompt's first token, which nothing predicts)."""
        logprob, top = scores if scores is not None else (None, [])
        return token_logprob(self._text_of, token, logprob, top)

    def score_prompt(self, start: int, count: int, index: int) -> None:
        """Score the prompt tokens that the `count` prompt tokens from position `start`
        predict (their logits are at batch indices `index`, `index+1`, ...); once the
        prompt is all in, push every prompt token's score."""
        prompt, top = self.prompt, self.top_logprobs or 0
        if start == 0:
            self._prompt_scores.append(self.scored(prompt[0], None))
        for offset, position in enumerate(range(start + 1, min(start + count + 1, len(prompt)))):
            scores = self._backend.scores(index + offset, prompt[position], top)
            self._prompt_scores.append(self.scored(prompt[position], scores))
        if start + count >= len(prompt):
            self.job.channel.push(PromptScored(tuple(self._prompt_scores)))

    def _text_of(self, token: int) -> bytes:
        return self._backend.piece(token, True)  # a special token shows as its own text

    def take(
        self, token: int, scores: Scores | None = None
    ) -> tuple[int | None, FinishReason | None]:
        """Handle one sampled token (`scores`: its log probability and the alternatives',
        when the request asked): (the token to decode next, or None when this request
        ends here; why it ended)."""
        if self._backend.is_end(token):
            if scores is not None:
                self._end_logprob = self.scored(token, scores)
            return None, "stop"
        output = self.output
        sampled = token
        if self._forced:
            token = self._forced.pop(0)
        elif self._budget is not None and output.in_reasoning:
            if output.reasoning_tokens >= self._budget:
                # Budget spent: write the close marker in the model's place; the model goes
                # on from there as if it had closed its reasoning itself.
                token, *self._forced = self._close_reasoning
        self.last_at = time.perf_counter()
        if output.tokens == 0:
            self.first_at = self.last_at
            self.job.channel.phase = "decode"
        # Marker tokens are rendered as their text (a CONTROL token's piece is empty) so
        # the dialect parser sees them; other special tokens stay invisible.
        piece = self._backend.piece(token, token in self._marker_ids)
        was_before = output.before_answer
        chunks = output.add(piece)
        if scores is not None and token == sampled and token not in self._marker_ids:
            # An answer token: neither reasoning nor a message header (a channel's name).
            if not (was_before or output.before_answer):
                self._scored.append(self.scored(token, scores))
        self._push(chunks)
        if output.stopped or (self.job.request.single_call and self._calls_done):
            return None, "stop"
        if output.tokens >= self.limit:
            return None, "length"
        return token, None

    def _push(self, chunks: list[Chunk]) -> None:
        """Push chunks, the scored answer tokens riding on the text they made (those a
        call consumed are dropped: a call is not text)."""
        for chunk in chunks:
            if self.job.request.single_call and self._calls_done:
                return  # the one call is made: what follows it is not sent
            if isinstance(chunk, CallChunk):
                self._scored.clear()
                self._calls_done += chunk.last
            elif isinstance(chunk, TextChunk) and chunk.kind == "text" and self._scored:
                chunk = replace(chunk, logprobs=spelling(self._scored, chunk.text))
                self._scored.clear()
            self.job.channel.push(chunk)

    def finish(self, reason: FinishReason) -> None:
        if reason != "cancelled":
            self._push(self.output.finish())
        usage = Usage(
            prompt_tokens=len(self.prompt),
            completion_tokens=self.output.tokens,
            cached_tokens=self.cached,
            reasoning_tokens=self.output.reasoning_tokens,
            tool_calls=self.output.tool_calls,
        )
        timings = Timings(
            queue_s=round(self.started - self.job.enqueued_at, 6),
            prefill_s=round((self.first_at or time.perf_counter()) - self.started, 6),
            decode_s=round(max(self.last_at - self.first_at, 0.0), 6),
        )
        stop = self.output.stop_sequence
        full = reason == "length" and len(self.prompt) + self.output.tokens >= self._backend.n_ctx
        self.job.channel.push(
            Finished(reason, usage, stop, timings, context_full=full, end_logprob=self._end_logprob)
        )
        self._close_samplers()

    def fail(self, error: WireError) -> None:
        self.job.channel.push(Errored(error))
        self._close_samplers()

    def _close_samplers(self) -> None:
        self.sampler.close()
        if self._free is not None:
            self._free.close()

    def decode_rate(self) -> float | None:
        """Tokens per second between the first and the last token, if it can be told."""
        generated = self.output.tokens
        if generated > 1 and self.last_at > self.first_at:
            return (generated - 1) / (self.last_at - self.first_at)
        return None
