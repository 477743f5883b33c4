"""What the engine needs from a model runtime: tokenizing, one batched decode step over many
sequences, and a sampler per sequence.

Two backends implement it: `llama_backend` (llama.cpp) and `scripted_backend` (a model-free
script at a fixed rate, for overhead benchmarks and load tests). Both run the same engine
contract tests, which is what makes the scripted one a fair stand-in.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from cortex_neuron.logprobs import Scores
from cortex_wire.messages import SamplingParams


@dataclass(frozen=True, slots=True)
class Row:
    """Tokens of one sequence in one decode step, at positions `start`, `start+1`, ...;
    `output` is the batch index whose logits are sampled next (-1: none, mid-prompt).
    Rows fill the batch in order, so a row's first token is at the batch index of the
    tokens of the rows before it; `all_logits`: keep the logits of every token in the row
    (for prompt log probabilities), not only of `output`."""

    seq: int
    tokens: Sequence[int]
    start: int
    output: int = -1
    all_logits: bool = False


class Sampler(Protocol):
    def sample(self, output: int) -> int:
        """The next token from the batch output `output` of the last decode (accepted)."""
        ...

    def close(self) -> None: ...


class Backend(Protocol):
    n_ctx: int  # tokens each sequence may hold
    n_batch: int  # tokens one decode step may carry
    n_vocab: int  # token ids are 0 .. n_vocab-1
    chat_template: str | None
    bos_text: str
    eos_text: str
    # The model's fill-in-the-middle tokens (prefix, suffix, middle), if it has them.
    fim: tuple[int, int, int] | None
    # Whether it has logits to report log probabilities from.
    has_logits: bool

    def tokenize(self, text: str, *, add_bos: bool, special: bool) -> list[int]: ...

    def piece(self, token: int, special: bool = False) -> bytes:
        """A token's bytes; `special`: a special token's own text rather than nothing."""
        ...

    def is_end(self, token: int) -> bool: ...

    def control_tokens(self) -> frozenset[int]:
        """The special tokens that are neither text nor an end of generation (turn and
        channel markers, reserved ids): no answer held to a JSON schema may write one."""
        ...

    def check(self, params: SamplingParams) -> None:
        """Raise EngineError for the parameters `sampler` would refuse. It touches nothing
        the engine thread drives, so the neuron calls it before it accepts a request."""
        ...

    def sampler(self, params: SamplingParams, seed: int) -> Sampler:
        """A sampler for one request; raises EngineError for parameters it cannot honour."""
        ...

    def scores(self, index: int, token: int, top: int) -> Scores:
        """`token`'s log probability, and the `top` most likely tokens', at batch index
        `index` of the last decode (one whose logits were kept)."""
        ...

    def forget(self, seq: int, start: int) -> None:
        """Drop what sequence `seq` holds from position `start` on."""
        ...

    def share(self, source: int, seq: int, length: int) -> None:
        """Make sequence `seq` hold the first `length` positions of sequence `source`
        (what it held is dropped): a prefix computed once serves another slot."""
        ...

    def save(self, seq: int) -> bytes:
        """Sequence `seq`'s cache, as bytes `restore` takes back (b"": nothing to keep)."""
        ...

    def restore(self, seq: int, data: bytes) -> None:
        """Put a saved cache into sequence `seq` (what it held is replaced)."""
        ...

    def decode(self, rows: Sequence[Row]) -> None:
        """Run one step over all rows together; raises EngineError if it cannot."""
        ...

    def close(self) -> None: ...
