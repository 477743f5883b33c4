"""The model's own tokenizer over HTTP (pure): vLLM's `/tokenize`, `/detokenize` and
`/tokenizer_info` (what lm-evaluation-harness's remote tokenizer calls), which also take
llama-server's field names (`content`, `add_special`).

A client that tokenizes through the server counts tokens exactly as the model does, so
it can send token ids and score the very tokens it meant (completions with `echo`)."""

from __future__ import annotations

from typing import Any

import msgspec

from cortex_gateway.errors import ApiError
from cortex_gateway.openai_chat import decode_body
from cortex_wire.messages import VocabReply, VocabRequest


class TokenizeRequest(msgspec.Struct, kw_only=True):
    model: str | None = None
    prompt: str | None = None  # vLLM's name
    content: str | None = None  # llama-server's name
    add_special_tokens: bool | None = None  # vLLM's (default true)
    add_special: bool | None = None  # llama-server's (default false)


class DetokenizeRequest(msgspec.Struct, kw_only=True):
    model: str | None = None
    tokens: list[int]


def tokenize_request(body: bytes, request_id: str) -> VocabRequest:
    """The request as the neuron takes it (its model, if named, still to resolve)."""
    asked: TokenizeRequest = decode_body(body, TokenizeRequest)
    text = asked.prompt if asked.prompt is not None else asked.content
    if text is None:
        raise ApiError.invalid("the text to tokenize goes in prompt (or content)", param="prompt")
    add = asked.add_special_tokens if asked.prompt is not None else asked.add_special
    default = asked.prompt is not None  # each server's own default
    return VocabRequest(
        request_id=request_id, model=asked.model or "", text=text,
        add_special=default if add is None else add,
    )  # fmt: skip


def detokenize_request(body: bytes, request_id: str) -> VocabRequest:
    asked: DetokenizeRequest = decode_body(body, DetokenizeRequest)
    return VocabRequest(request_id=request_id, model=asked.model or "", tokens=asked.tokens)


def tokenize_body(reply: VocabReply) -> dict[str, Any]:
    return {"tokens": reply.tokens, "count": len(reply.tokens), "max_model_len": reply.n_ctx}


def detokenize_body(reply: VocabReply) -> dict[str, Any]:
    return {"prompt": reply.text, "content": reply.text}


def info_body(model: str, reply: VocabReply) -> dict[str, Any]:
    return {
        "model": model,
        "tokenizer_class": "gguf",
        "bos_token": reply.bos or None,
        "eos_token": reply.eos or None,
        "chat_template": reply.chat_template or None,
        "model_max_length": reply.n_ctx,
        "vocab_size": reply.n_vocab,
    }
