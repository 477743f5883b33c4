"""Every NATS subject cortex uses is built here and nowhere else.

Model ids and node names are untrusted text. They are encoded into a single subject token
so that `.`, `*`, `>`, whitespace, control characters or unicode can never add a level or a
wildcard to a subject: letters, digits, `-` and `_` pass through, every other UTF-8 byte
becomes `~XX` (hex), and the empty string becomes `~`.
"""

from __future__ import annotations

import base64
import string

ROOT = "cortex"
_PLAIN = frozenset(string.ascii_letters + string.digits + "-_")

HEARTBEATS = f"{ROOT}.neuron.*.heartbeat"
GATEWAY_HEARTBEATS = f"{ROOT}.gateway.*.heartbeat"
CANCEL = f"{ROOT}.cancel"
SCHED_ENSURE = f"{ROOT}.sched.ensure"
SCHED_UNLOAD = f"{ROOT}.sched.unload"
SCHED_PIN = f"{ROOT}.sched.pin"
SCHED_UNPIN = f"{ROOT}.sched.unpin"
SCHED_EXPLAIN = f"{ROOT}.sched.explain"
SCHED_STATUS = f"{ROOT}.sched.status"
REQUEST_RECORDS = f"{ROOT}.metrics.request"

# JetStream KV buckets (durable scheduler state).
PINS_BUCKET = "cortex_pins"
LEASE_BUCKET = "cortex_scheduler_lease"
LEASE_KEY = "leader"
# Stored Responses (OpenAI's store / previous_response_id), kept by every gateway replica.
RESPONSES_BUCKET = "cortex_responses"


def encode_token(text: str) -> str:
    """Encode arbitrary text as one safe subject token (reversible, see `decode_token`)."""
    if not text:
        return "~"
    out: list[str] = []
    for char in text:
        if char in _PLAIN:
            out.append(char)
        else:
            out.extend(f"~{byte:02x}" for byte in char.encode("utf-8"))
    return "".join(out)


def decode_token(token: str) -> str:
    """Inverse of `encode_token`; raises ValueError on a token it could not have produced."""
    if token == "~":
        return ""
    raw = bytearray()
    i = 0
    while i < len(token):
        char = token[i]
        if char == "~":
            pair = token[i + 1 : i + 3]
            if len(pair) != 2 or any(c not in string.hexdigits for c in pair):
                raise ValueError(f"bad escape in subject token {token!r}")
            raw.append(int(pair, 16))
            i += 3
        elif char in _PLAIN:
            raw.extend(char.encode())
            i += 1
        else:
            raise ValueError(f"character {char!r} cannot appear in an encoded token")
    return raw.decode("utf-8")


def heartbeat(node: str) -> str:
    return f"{ROOT}.neuron.{encode_token(node)}.heartbeat"


def gateway_heartbeat(gateway: str) -> str:
    """A gateway saying it is alive: neurons cancel the requests of a gateway that stops."""
    return f"{ROOT}.gateway.{encode_token(gateway)}.heartbeat"


def infer(node: str) -> str:
    """Inference requests for one neuron (fast path: accept or refuse at once)."""
    return f"{ROOT}.neuron.{encode_token(node)}.infer"


def embed(node: str) -> str:
    """Embedding requests for one neuron (request/reply: the vectors come back at once)."""
    return f"{ROOT}.neuron.{encode_token(node)}.embed"


def tokenize(node: str) -> str:
    """Prompt token counts with a loaded model's own tokenizer and chat template."""
    return f"{ROOT}.neuron.{encode_token(node)}.tokenize"


def vocab(node: str) -> str:
    """Text to token ids and back with a loaded model's own tokenizer (request/reply)."""
    return f"{ROOT}.neuron.{encode_token(node)}.vocab"


def control(node: str) -> str:
    """Load/unload commands for one neuron (slow: replies when the operation is done)."""
    return f"{ROOT}.neuron.{encode_token(node)}.control"


def stream(request_id: str) -> str:
    """The per-request subject a neuron streams frames to."""
    return f"{ROOT}.stream.{encode_token(request_id)}"


def model_event(node: str, model: str) -> str:
    """Model lifecycle events (loading, ready, failed, unloaded) of one model on one neuron."""
    return f"{ROOT}.event.model.{encode_token(node)}.{encode_token(model)}"


def scheduler_event(kind: str) -> str:
    return f"{ROOT}.event.scheduler.{encode_token(kind)}"


def kv_key(text: str) -> str:
    """A JetStream KV key for arbitrary text (KV keys allow only [-_=./a-zA-Z0-9])."""
    return "k" + base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")
