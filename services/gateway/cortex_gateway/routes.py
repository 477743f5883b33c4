"""Every inference route, once: its path, its API, what its body decodes into, and (for the
routes that answer through the projection core) how a body becomes a turn. The app's
handlers, the OpenAPI description and the error envelope all read this table."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import msgspec

from cortex_core.config import GatewaySettings
from cortex_gateway import (
    anthropic_messages,
    anthropic_request,
    embeddings,
    ollama_api,
    openai_chat,
    openai_completions,
    openai_responses,
    tokenizer_api,
)
from cortex_gateway.projection import Turn

Api = Literal["openai", "anthropic", "ollama"]


@dataclass(frozen=True)
class Route:
    path: str
    api: Api
    request: type[msgspec.Struct]
    summary: str
    turn: Callable[[bytes, GatewaySettings], Turn] | None = None  # None: its own handler
    streams: bool = True


ROUTES: tuple[Route, ...] = (
    Route("/v1/chat/completions", "openai", openai_chat.ChatCompletionRequest,
          "OpenAI chat completion", openai_chat.turn),
    Route("/v1/completions", "openai", openai_completions.CompletionRequest,
          "OpenAI text completion", openai_completions.turn),
    Route("/v1/responses", "openai", openai_responses.ResponsesRequest, "OpenAI response"),
    Route("/v1/messages", "anthropic", anthropic_request.MessagesRequest, "Anthropic message",
          anthropic_messages.turn),
    Route("/v1/messages/count_tokens", "anthropic", anthropic_request.CountTokensRequest,
          "Anthropic token count", streams=False),
    Route("/v1/embeddings", "openai", embeddings.OpenAIEmbeddingsRequest, "OpenAI embeddings",
          streams=False),
    Route("/api/chat", "ollama", ollama_api.ChatRequest, "Ollama chat", ollama_api.chat_turn),
    Route("/api/generate", "ollama", ollama_api.GenerateRequest, "Ollama generate",
          ollama_api.generate_turn),
    Route("/api/embed", "ollama", embeddings.OllamaEmbedRequest, "Ollama embeddings",
          streams=False),
    Route("/api/embeddings", "ollama", embeddings.OllamaLegacyRequest,
          "Ollama embeddings (the older, one-prompt form)", streams=False),
    Route("/tokenize", "openai", tokenizer_api.TokenizeRequest,
          "Text to token ids with the model's tokenizer (vLLM, llama-server)", streams=False),
    Route("/detokenize", "openai", tokenizer_api.DetokenizeRequest,
          "Token ids to text with the model's tokenizer (vLLM, llama-server)", streams=False),
)  # fmt: skip


def api_of(path: str, anthropic_client: bool = False) -> Api:
    """Whose error envelope a path answers in: its route's; the model list, which both
    share, and a path that is no route here, the client's own (an `anthropic_client` sent
    anthropic-version; any other gets OpenAI's)."""
    known = next((route.api for route in ROUTES if route.path == path), None)
    if known is not None:
        return known
    if path.startswith("/api/"):
        return "ollama"
    if path.startswith("/v1/messages") or anthropic_client:
        return "anthropic"
    return "openai"
