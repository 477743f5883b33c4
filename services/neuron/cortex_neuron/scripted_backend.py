"""A model-free backend that plays a script: the stand-in for llama.cpp in overhead
benchmarks and load tests.

Its vocabulary is the 256 bytes plus a few specials (BOS, EOS, the usual reasoning and
tool-call markers, ChatML), so real text tokenizes, multi-byte characters arrive split over
tokens, and the engine's marker probe finds a reasoning pair exactly as it would in a GGUF.
Each decode step takes 1/tokens_per_s seconds however many sequences it carries, like a
GPU at small batch sizes; a prompt's step (prefill) too.
"""

from __future__ import annotations

import re
import time
from collections import deque
from collections.abc import Sequence

from cortex_core.config import ModelProfile, ScriptProfile
from cortex_neuron.backend import Row
from cortex_neuron.errors import EngineError
from cortex_neuron.logprobs import Scores
from cortex_wire.messages import SamplingParams
from cortex_wire.outcomes import Code

SPECIALS = (
    "<s>",
    "</s>",
    "<think>",
    "</think>",
    "<tool_call>",
    "</tool_call>",
    "<|im_start|>",
    "<|im_end|>",
)
BOS, EOS = 256, 257
_SPECIAL_IDS = {text: 256 + i for i, text in enumerate(SPECIALS)}
_SPECIAL_SPLIT = re.compile("(" + "|".join(re.escape(s) for s in SPECIALS) + ")")
CHATML = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>\\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)


class ScriptedSampler:
    def __init__(self, script: Sequence[int], repeat: bool) -> None:
        self._script = script
        self._repeat = repeat
        self._next = 0

    def sample(self, output: int) -> int:
        if self._next >= len(self._script):
            if not self._repeat:
                return EOS
            self._next = 0
        token = self._script[self._next]
        self._next += 1
        return token

    def close(self) -> None:
        pass


class ScriptedBackend:
    chat_template: str | None = CHATML
    bos_text = "<s>"
    eos_text = "</s>"
    fim: tuple[int, int, int] | None = None
    has_logits = False
    n_vocab = 256 + len(SPECIALS)

    def __init__(self, profile: ModelProfile, script: ScriptProfile) -> None:
        self.n_ctx = profile.n_ctx
        self.n_batch = profile.n_batch
        self._repeat = script.repeat
        self._step_s = 1.0 / script.tokens_per_s if script.tokens_per_s > 0 else 0.0
        self._script = self.tokenize(script.reply, add_bos=False, special=True)
        # How many sequences each of the last 1000 decode steps carried.
        self.steps: deque[int] = deque(maxlen=1000)
        if not self._script:
            raise EngineError(Code.LOAD_FAILED, f"model {profile.id!r} has an empty script")

    def tokenize(self, text: str, *, add_bos: bool, special: bool) -> list[int]:
        tokens = [BOS] if add_bos else []
        parts = _SPECIAL_SPLIT.split(text) if special else [text]
        for part in parts:
            if part in _SPECIAL_IDS:
                tokens.append(_SPECIAL_IDS[part])
            else:
                tokens.extend(part.encode())
        return tokens

    def piece(self, token: int, special: bool = False) -> bytes:
        if token < 256:
            return bytes([token])
        return SPECIALS[token - 256].encode() if special else b""

    def is_end(self, token: int) -> bool:
        return token == EOS

    def control_tokens(self) -> frozenset[int]:
        return frozenset(range(256, self.n_vocab)) - {EOS}

    def check(self, params: SamplingParams) -> None:
        if params.json_schema is not None:
            raise EngineError(Code.INVALID_REQUEST, "a scripted model cannot follow a JSON schema")
        if params.logit_bias:
            raise EngineError(Code.INVALID_REQUEST, "a scripted model has no logits to bias")

    def sampler(self, params: SamplingParams, seed: int) -> ScriptedSampler:
        self.check(params)
        return ScriptedSampler(self._script, self._repeat)

    def scores(self, index: int, token: int, top: int) -> Scores:
        raise EngineError(Code.INVALID_REQUEST, "a scripted model has no logits to score")

    def forget(self, seq: int, start: int) -> None:
        pass

    def share(self, source: int, seq: int, length: int) -> None:
        pass  # no cache: a script's output does not depend on it

    def save(self, seq: int) -> bytes:
        return b""

    def restore(self, seq: int, data: bytes) -> None:
        pass

    def decode(self, rows: Sequence[Row]) -> None:
        self.steps.append(len(rows))
        if self._step_s:
            time.sleep(self._step_s)  # the step's "compute", whatever the batch holds

    def close(self) -> None:
        pass
