"""Embeddings: OpenAI's `/v1/embeddings` and Ollama's `/api/embed`, for models whose
profile marks them as embedding models (the neuron pools as the GGUF says, and
normalises). A chat model asked for embeddings, or an embedding model asked to chat, gets a
clear 400. Ollama's routes, as Ollama, take no input (or an empty one) as a request to load
the model only, and a `null` where a field is optional as its default."""

from __future__ import annotations

import base64
import struct
import time
from dataclasses import dataclass
from typing import Any

import msgspec

from cortex_gateway.errors import ApiError
from cortex_gateway.keep_alive import Residency, residency
from cortex_gateway.ollama_api import required_model
from cortex_gateway.openai_chat import decode_body

# Inputs in one request at most (OpenAI's own limit).
MAX_INPUTS = 2048


@dataclass(frozen=True)
class EmbedAsk:
    """An embedding request, whichever API it came in."""

    model: str
    texts: list[str]
    encoding: str = "float"  # OpenAI's encoding_format
    truncate: bool = False  # cut too-long inputs (Ollama) rather than refuse them (OpenAI)
    residency: Residency = Residency.AS_SCHEDULED


class OpenAIEmbeddingsRequest(msgspec.Struct, kw_only=True):
    model: str
    input: str | list[Any]  # text, texts (token-id lists are refused)
    encoding_format: str | None = None
    dimensions: int | None = None
    user: str | None = None


class OllamaEmbedRequest(msgspec.Struct, kw_only=True):
    model: str
    input: str | list[str] | None = None
    truncate: bool | None = None  # None: True
    dimensions: int | None = None
    options: dict[str, Any] | None = None
    keep_alive: str | float | None = None


def texts_of(value: str | list[Any]) -> list[str]:
    """The input texts; token-id inputs are refused (the neuron tokenizes itself)."""
    texts = [value] if isinstance(value, str) else value
    if not texts:
        raise ApiError.invalid("input must not be empty", param="input")
    if len(texts) > MAX_INPUTS:
        raise ApiError.invalid(f"input has {len(texts)} items; at most {MAX_INPUTS}", param="input")
    for index, text in enumerate(texts):
        if not isinstance(text, str):
            raise ApiError.invalid(
                "token-id inputs are not supported: send text", param=f"input[{index}]"
            )
        if not text:
            raise ApiError.invalid("an input must not be empty", param=f"input[{index}]")
    return texts


def openai_request(body: bytes) -> EmbedAsk:
    request = decode_body(body, OpenAIEmbeddingsRequest)
    if not request.model:  # as chat says it, not a model "" that is not found
        raise ApiError.invalid("model must not be empty", param="model")
    if request.dimensions is not None:
        raise ApiError.invalid(
            "dimensions is not supported (the model's size is used)", param="dimensions"
        )
    fmt = request.encoding_format or "float"
    if fmt not in ("float", "base64"):
        raise ApiError.invalid("encoding_format must be float or base64", param="encoding_format")
    return EmbedAsk(request.model, texts_of(request.input), encoding=fmt)


def openai_body(model: str, vectors: list[list[float]], tokens: int, fmt: str) -> dict[str, Any]:
    def encoded(vector: list[float]) -> list[float] | str:
        if fmt == "float":
            return vector
        return base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode()

    return {
        "object": "list",
        "data": [
            {"object": "embedding", "index": i, "embedding": encoded(v)}
            for i, v in enumerate(vectors)
        ],
        "model": model,
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
    }


def ollama_request(body: bytes) -> EmbedAsk:
    request = decode_body(body, OllamaEmbedRequest)
    required_model(request.model)
    if request.dimensions is not None:
        raise ApiError.invalid(
            "dimensions is not supported (the model's size is used)", param="dimensions"
        )
    # No input (none, "" or []): only load the model, and answer no embeddings.
    texts = texts_of(request.input) if request.input else []
    return EmbedAsk(
        request.model, texts, truncate=request.truncate is not False,
        residency=residency(request.keep_alive),
    )  # fmt: skip


class OllamaLegacyRequest(msgspec.Struct, kw_only=True):
    """The older /api/embeddings: one `prompt`, one `embedding` back."""

    model: str
    prompt: str | None = None
    options: dict[str, Any] | None = None
    keep_alive: str | float | None = None


def ollama_legacy_request(body: bytes) -> EmbedAsk:
    request = decode_body(body, OllamaLegacyRequest)
    required_model(request.model)
    return EmbedAsk(
        request.model, texts_of(request.prompt) if request.prompt else [], truncate=True,
        residency=residency(request.keep_alive),
    )  # fmt: skip


def ollama_body(
    model: str, vectors: list[list[float]], tokens: int, started: float, load_s: float
) -> dict[str, Any]:
    return {
        "model": model,
        "embeddings": vectors,
        "total_duration": int((time.perf_counter() - started) * 1e9),
        "load_duration": int(load_s * 1e9),
        "prompt_eval_count": tokens,
    }
