"""Parameters of other OpenAI-compatible servers (vLLM, llama-server) that clients send in
`extra_body` (pure). Each changes the output and cortex has no such knob, so one set to
anything but the value that changes nothing is refused, named, rather than dropped."""

from __future__ import annotations

from typing import Any

import msgspec

from cortex_gateway.errors import ApiError
from cortex_wire.outcomes import Code


class ForeignParams(msgspec.Struct, kw_only=True):
    ignore_eos: Any = None
    min_tokens: Any = None
    include_stop_str_in_output: Any = None
    typical_p: Any = None
    mirostat: Any = None
    tfs_z: Any = None
    guided_json: Any = None
    guided_regex: Any = None
    guided_choice: Any = None
    guided_grammar: Any = None
    grammar: Any = None
    json_schema: Any = None
    n_probs: Any = None


# Each parameter's values that change nothing (none: any value changes the output).
NEUTRAL: dict[str, tuple[Any, ...]] = {
    "ignore_eos": (False,), "min_tokens": (0,), "include_stop_str_in_output": (False,),
    "typical_p": (1,), "mirostat": (0,), "tfs_z": (1,),
    "guided_json": (), "guided_regex": (), "guided_choice": (), "guided_grammar": (),
    "grammar": (), "json_schema": (), "n_probs": (0,),
}  # fmt: skip
# What to send instead, where cortex has a way to it.
INSTEAD = {
    "guided_json": "use response_format with a json_schema",
    "json_schema": "use response_format with a json_schema",
    "guided_choice": "use response_format with a json_schema (an enum)",
    "n_probs": "use logprobs",
}


def check_foreign(body: bytes) -> None:
    """Refuse another server's parameter that would change the output (ApiError)."""
    try:
        given = msgspec.json.decode(body, type=ForeignParams)
    except (msgspec.DecodeError, msgspec.ValidationError, RecursionError):
        return  # not an object: the request's own decoding says what is wrong
    for name, neutral in NEUTRAL.items():
        value = getattr(given, name)
        if value is not None and value not in neutral:
            why = INSTEAD.get(name, "another server's; cortex has no such setting")
            raise ApiError.of(
                Code.UNSUPPORTED_PARAMETER, f"parameter {name!r} is not supported: {why}",
                param=name,
            )  # fmt: skip
