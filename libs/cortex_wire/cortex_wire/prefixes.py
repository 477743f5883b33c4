"""Digests of a conversation's prefixes, for routing a request to the replica whose cache
already holds its start (pure).

The gateway cannot tokenize (the model's template and vocabulary live on the neurons), so
a prefix is named by what renders it: digest i covers everything that shapes the prompt
before message i+1 — the tools, the template switches, and messages 0..i. A neuron lists
the digests of the conversations its slots hold; the gateway computes the same digests for
a request and looks for the longest one a replica lists. Both sides use this one function.
"""

from __future__ import annotations

import hashlib

import msgspec

from cortex_wire.messages import ChatMessage, InferRequest

DIGEST_HEX = 16  # 64 bits: collisions within one replica's few hundred digests are moot
_encode = msgspec.json.Encoder(order="sorted").encode


def prefix_digests(request: InferRequest) -> list[str]:
    """One digest per message prefix (the first covers message 0), shortest first; none
    for a raw prompt (its text is the client's own rendering)."""
    if request.messages is None:
        return []
    head = _encode([request.tools, request.chat_template_kwargs, request.thinking,
                    request.reasoning_effort])  # fmt: skip
    state = hashlib.sha256(head)
    digests = []
    for message in request.messages:
        state.update(_encode(_canonical(message)))
        digests.append(state.copy().hexdigest()[:DIGEST_HEX])
    return digests


def _canonical(message: ChatMessage) -> object:
    return msgspec.to_builtins(message)
