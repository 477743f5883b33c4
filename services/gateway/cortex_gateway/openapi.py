"""The gateway's OpenAPI description, served at /openapi.json (pure).

The request schemas come from the very msgspec Structs the routes decode bodies into, so
the description cannot drift from what is accepted; error responses use each dialect's
own envelope. Schemathesis fuzzes the gateway against it in the hostile-input suite.
"""

from __future__ import annotations

from functools import cache
from typing import Any

import msgspec

from cortex_gateway.routes import ROUTES

OPENAI_ERROR = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["message", "type"],
            "properties": {
                "message": {"type": "string"},
                "type": {"type": "string"},
                "param": {"type": ["string", "null"]},
                "code": {"type": ["string", "null"]},
            },
        }
    },
}
ANTHROPIC_ERROR = {
    "type": "object",
    "required": ["type", "error"],
    "properties": {
        "type": {"const": "error"},
        "error": {
            "type": "object",
            "required": ["type", "message"],
            "properties": {"type": {"type": "string"}, "message": {"type": "string"}},
        },
    },
}
OLLAMA_ERROR = {
    "type": "object",
    "required": ["error"],
    "properties": {"error": {"type": "string"}},
}
ERROR_STATUSES = ("400", "401", "403", "404", "408", "413", "429", "503")
STREAM_TYPES = {"openai": "text/event-stream", "anthropic": "text/event-stream",
                "ollama": "application/x-ndjson"}  # fmt: skip


def _errors(dialect: str) -> dict[str, Any]:
    ref = {"$ref": f"#/components/schemas/{dialect.capitalize()}Error"}
    return {
        status: {"description": "error", "content": {"application/json": {"schema": ref}}}
        for status in ERROR_STATUSES
    }


def _json(description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": {}}}}


@cache
def openapi_document() -> dict[str, Any]:
    structs = [route.request for route in ROUTES]
    (refs, components) = msgspec.json.schema_components(
        structs, ref_template="#/components/schemas/{name}"
    )
    components = {
        **components, "OpenaiError": OPENAI_ERROR, "AnthropicError": ANTHROPIC_ERROR,
        "OllamaError": OLLAMA_ERROR,
    }  # fmt: skip
    paths: dict[str, Any] = {}
    for route, ref in zip(ROUTES, refs, strict=True):
        ok = _json(route.summary)
        if route.streams:
            ok["content"][STREAM_TYPES[route.api]] = {"schema": {"type": "string"}}
        paths[route.path] = {
            "post": {
                "summary": route.summary,
                "requestBody": {"required": True, "content": {"application/json": {"schema": ref}}},
                "responses": {"200": ok, **_errors(route.api)},
            }
        }
    paths["/v1/models"] = {
        "get": {"summary": "every model any live neuron serves", "responses": {"200": _json("")}}
    }
    paths["/v1/models/{model_id}"] = {
        "get": {
            "summary": "one model",
            "parameters": [
                {"name": "model_id", "in": "path", "required": True, "schema": {"type": "string"}}
            ],
            "responses": {"200": _json("the model"), **_errors("openai")},
        }
    }
    paths["/health"] = {"get": {"summary": "liveness", "responses": {"200": _json("alive")}}}
    return {
        "openapi": "3.1.0",
        "info": {"title": "cortex gateway", "version": "1"},
        "paths": paths,
        "components": {"schemas": components},
    }
