"""An Anthropic Messages request as what to run (pure): the history, the tools, the thinking
switch and budget, the output format.

System prompts (a string or text blocks) lead as a system message; a `system` message in
`messages` stays where it is (the neuron folds it into the leading one if the model's
template refuses it there). `tool_use` blocks become the assistant's tool calls and
`tool_result` blocks become `tool` messages, so the model's chat template sees one history
whichever dialect sent it. Every field the API defines is honoured or refused with a 400
naming it; a field it does not define is refused too, never dropped.
"""

from __future__ import annotations

import json
from typing import Any

import msgspec

from cortex_gateway.errors import ApiError
from cortex_gateway.forced_calls import check_forced
from cortex_gateway.openai_chat import (
    check_positive,
    check_range,
    check_tool_names,
    decode_body,
    unsupported,
)
from cortex_gateway.sampling_defaults import ANTHROPIC
from cortex_wire.messages import ChatMessage, SamplingParams, ToolCall


class Block(msgspec.Struct, kw_only=True):
    type: str
    text: str | None = None
    thinking: str | None = None
    id: str | None = None
    name: str | None = None
    input: dict[str, Any] | None = None
    tool_use_id: str | None = None
    content: str | list[Block] | None = None
    is_error: bool | None = None
    tool_name: str | None = None  # a tool_reference: a deferred tool a search loaded
    # cache_control and citations ride along: prefix caching is automatic here.


class Message(msgspec.Struct, kw_only=True):
    role: str
    content: str | list[Block]


class Tool(msgspec.Struct, kw_only=True):
    name: str
    description: str | None = None
    input_schema: dict[str, Any] | None = None
    type: str | None = None
    # Left out of the prompt until a tool_reference in a tool result loads it (tool search).
    defer_loading: bool | None = None


class Thinking(msgspec.Struct, kw_only=True):
    type: str
    budget_tokens: int | None = None
    # "summarized": the reasoning is shown (whole: there is no summarizer here); "omitted":
    # its blocks come empty, as Anthropic sends them, for clients that do not show it.
    display: str | None = None


class ToolChoice(msgspec.Struct, kw_only=True):
    type: str
    name: str | None = None
    disable_parallel_tool_use: bool | None = None


class OutputFormat(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    type: str
    schema: dict[str, Any] | None = None


class OutputConfig(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    effort: str | None = None
    format: OutputFormat | None = None


class ContextManagement(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    edits: list[dict[str, Any]] = msgspec.field(default_factory=list)


# "adaptive": the model decides how long to think (the effort, if given, bounds it).
THINKING_TYPES = ("enabled", "disabled", "adaptive")
THINKING_DISPLAYS = (None, "summarized", "omitted")
# The tool_choice types the API defines.
TOOL_CHOICE_TYPES = ("auto", "any", "tool", "none")
# output_config.effort → reasoning tokens before the neuron closes the reasoning itself
# (None: no bound), and the effort level a model's template takes.
EFFORT_BUDGETS: dict[str, int | None] = {
    "low": 1024, "medium": 4096, "high": 16384, "xhigh": 32768, "max": None,
}  # fmt: skip
EFFORT_LEVELS = {"low": "low", "medium": "medium", "high": "high", "xhigh": "high", "max": "high"}
# Request fields for services that run at Anthropic, each refused with the reason.
ANTHROPIC_SIDE = {
    "container": "code execution containers run at Anthropic, not here",
    "compaction": "server-side compaction is not done here; compact in the client",
    "fallbacks": "there is no fallback model; name the model to run",
    "fallback_credit_token": "there is no fallback model here",
    "thread": "the gateway holds no conversation state; send the whole history",
    "diagnostics": "prompt-cache diagnostics are not reported here",
}
# What Claude Code writes first in its system prompt: billing metadata that changes with
# every request, so it would defeat prefix reuse; a local model has nothing to do with it.
BILLING_LINE = "x-anthropic-billing-header:"
CLEAR_THINKING = "clear_thinking_20251015"


class Conversation(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """What both /v1/messages and /v1/messages/count_tokens take about the conversation."""

    model: str
    messages: list[Message]
    system: str | list[Block] | None = None
    tools: list[Tool] | None = None
    tool_choice: ToolChoice | None = None
    thinking: Thinking | None = None
    output_config: OutputConfig | None = None
    context_management: ContextManagement | None = None
    mcp_servers: list[Any] | None = None
    # Taken as they are: prefix caching is automatic here; ids are the client's own
    # records. (Counting tokens takes them too: a client counts the body it will send.)
    cache_control: Any = None
    user_profile_id: str | None = None
    workspace_id: str | None = None
    billing_policy: Any = None
    speed: str | None = None  # answering: "standard" only; counting: either


class Metadata(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    user_id: str | None = None  # the one field Anthropic's API defines (and checks)


class MessagesRequest(Conversation, kw_only=True, forbid_unknown_fields=True):
    max_tokens: int | None = None
    stop_sequences: list[str] | None = None
    temperature: float | None = None
    top_p: float | None = None
    top_k: int | None = None
    stream: bool = False
    # Taken as they are: metadata is the client's own record; there is one place and one
    # tier to run in.
    metadata: Metadata | None = None
    inference_geo: str | None = None
    service_tier: str | None = None  # "auto" or "standard_only": both fit the one tier
    # Refused (see ANTHROPIC_SIDE).
    container: Any = None
    compaction: Any = None
    fallbacks: Any = None
    fallback_credit_token: Any = None
    thread: Any = None
    diagnostics: Any = None


class CountTokensRequest(Conversation, kw_only=True, forbid_unknown_fields=True):
    # Anthropic's count_tokens takes it and counts the messages as sent; so does this.
    compaction: Any = None


# --- the conversation -----------------------------------------------------------------------


def _texts(blocks: str | list[Block] | None, where: str) -> str:
    if blocks is None:
        return ""
    if isinstance(blocks, str):
        return blocks
    parts = []
    for index, block in enumerate(blocks):
        if block.type != "text" or block.text is None:
            raise _block_error(block, f"{where}[{index}]")
        parts.append(block.text)
    return "\n".join(parts)


def _tool_result_text(blocks: str | list[Block] | None, where: str) -> str:
    """A tool's result as text. An image or a document in it (Claude Code's Read of a
    screenshot or a PDF) is named in its place: refused, it would stay in the history and
    fail every later turn of the session."""
    if not isinstance(blocks, list):
        return _texts(blocks, where)
    parts = []
    for index, block in enumerate(blocks):
        if block.type in ("image", "document"):
            parts.append(f"[{block.type} omitted: the model reads text only]")
        elif block.type == "tool_reference" and block.tool_name:
            parts.append(f"[tool {block.tool_name} loaded]")  # (template_tools adds it)
        elif block.type == "text" and block.text is not None:
            parts.append(block.text)
        else:
            raise _block_error(block, f"{where}[{index}]")
    return "\n".join(parts)


def _block_error(block: Block, where: str) -> ApiError:
    if block.type == "text":  # the one kind taken everywhere: what is wrong is its text
        return ApiError.invalid(f"{where}.text: a text block needs its text", param=f"{where}.text")
    if block.type in ("image", "document"):
        message = f"{block.type} blocks are not supported: the models served here read text only"
    else:
        message = f"unexpected content block type {block.type!r} here"
    return ApiError.invalid(message, param=f"{where}.type")


def system_text(system: str | list[Block] | None, strip_billing: bool) -> str:
    """The system prompt as one text; Claude Code's billing line dropped if asked."""
    if isinstance(system, list) and strip_billing:
        system = [b for b in system if not (b.text or "").startswith(BILLING_LINE)]
    return _texts(system, "system")


def _validate_roles(messages: list[Message]) -> None:
    if not messages:
        raise ApiError.invalid("messages: at least one message is required", param="messages")
    for index, message in enumerate(messages):
        if message.role not in ("user", "assistant", "system"):
            raise ApiError.invalid(
                f"messages[{index}].role must be 'user', 'assistant' or 'system', "
                f"got {message.role!r}", param=f"messages[{index}].role",
            )  # fmt: skip
        if not message.content and not (index == len(messages) - 1 and message.role == "assistant"):
            raise ApiError.invalid(
                f"messages[{index}]: all messages must have non-empty content except for the "
                "optional final assistant message", param=f"messages[{index}].content",
            )  # fmt: skip


def chat_messages(
    system: str | list[Block] | None, messages: list[Message], strip_billing: bool = True
) -> list[ChatMessage]:
    _validate_roles(messages)
    out: list[ChatMessage] = []
    leading = system_text(system, strip_billing)
    if leading:
        out.append(ChatMessage(role="system", content=leading))
    for index, message in enumerate(messages):
        where = f"messages[{index}].content"
        if message.role == "system":
            out.append(ChatMessage(role="system", content=_texts(message.content, where)))
        elif isinstance(message.content, str):
            out.append(ChatMessage(role=message.role, content=message.content))
        else:
            out += _from_blocks(message.role, message.content, where)
    return out


def _from_blocks(role: str, blocks: list[Block], where: str) -> list[ChatMessage]:
    out: list[ChatMessage] = []
    texts: list[str] = []
    calls: list[ToolCall] = []
    thoughts: list[str] = []
    for position, block in enumerate(blocks):
        if block.type == "text" and block.text is not None:
            texts.append(block.text)
        elif block.type == "tool_use" and role == "assistant":
            arguments = json.dumps(block.input or {}, ensure_ascii=False)
            calls.append(ToolCall(id=block.id or "", name=block.name or "", arguments=arguments))
        elif block.type == "tool_result" and role == "user":
            if not block.tool_use_id:  # as Anthropic's API: a result must say whose it is
                raise ApiError.invalid(
                    f"{where}[{position}].tool_use_id: field required",
                    param=f"{where}[{position}].tool_use_id",
                )
            result = _tool_result_text(block.content, f"{where}[{position}].content")
            if block.is_error:
                result = f"Error: {result}"
            out.append(
                ChatMessage(role="tool", content=result, tool_call_id=block.tool_use_id or "")
            )
        elif block.type == "thinking" and role == "assistant":
            thoughts.append(block.thinking or "")  # the template decides if it is kept
        elif block.type == "redacted_thinking" and role == "assistant":
            continue  # encrypted by another provider: nothing a local model can read
        else:
            raise _block_error(block, f"{where}[{position}]")
    if texts or calls or thoughts:
        # A user's blocks are separate texts (Claude Code's reminders, then the prompt); an
        # assistant's are one reply, cut where its calls were.
        content = ("\n" if role == "user" else "").join(texts)
        out.append(
            ChatMessage(role=role, content=content, tool_calls=calls, reasoning="".join(thoughts))
        )
    return out


def thinking_kept(management: ContextManagement | None) -> int | None:
    """How many of the last assistant turns keep their reasoning under the request's
    context edits (`clear_thinking` with `keep: {"type": "thinking_turns", "value": N}`);
    None: all of them (no edit, or `keep: "all"`). Edits that clear tool results are
    refused: they are not done here."""
    keep: int | None = None
    for index, edit in enumerate(management.edits if management else []):
        where = f"context_management.edits[{index}]"
        if edit.get("type") != CLEAR_THINKING:
            raise unsupported(f"{where}.type", f"{edit.get('type')!r}; only {CLEAR_THINKING!r}")
        rule = edit.get("keep", {"type": "thinking_turns", "value": 1})
        if rule == "all":
            continue
        value = rule.get("value") if isinstance(rule, dict) else None
        if rule.get("type") != "thinking_turns" or not isinstance(value, int) or value < 0:
            raise ApiError.invalid(
                'keep must be "all" or {"type": "thinking_turns", "value": N}',
                param=f"{where}.keep",
            )
        keep = value if keep is None else min(keep, value)
    return keep


def edited(messages: list[ChatMessage], keep: int | None) -> list[ChatMessage]:
    """The history with reasoning cleared from all but the last `keep` assistant turns."""
    if keep is None:
        return messages
    turns = [i for i, m in enumerate(messages) if m.role == "assistant" and m.reasoning]
    cleared = set(turns[: max(len(turns) - keep, 0)])
    return [
        msgspec.structs.replace(m, reasoning="") if i in cleared else m
        for i, m in enumerate(messages)
    ]


def forced_tool(choice: ToolChoice | None) -> tuple[bool, str | None]:
    """Whether `tool_choice` forces a call (`any`, or `tool` with its name), and to which
    tool (None: any of them)."""
    if choice is None or choice.type not in ("any", "tool"):
        return False, None
    if choice.type == "any":
        return True, None
    if not choice.name:
        raise ApiError.invalid('tool_choice "tool" needs a name', param="tool_choice.name")
    return True, choice.name


def template_tools(
    tools: list[Tool] | None, choice: ToolChoice | None, loaded: frozenset[str] = frozenset()
) -> list[dict[str, Any]]:
    """The tools the template is given: all but the deferred ones no tool result has
    `loaded` yet (what tool search keeps out of the context until it finds them)."""
    if choice is not None and choice.type == "none":
        return []
    definitions = []
    check_tool_names([tool.name for tool in tools or []], "name")
    for index, tool in enumerate(tools or []):
        if tool.type not in (None, "custom"):
            raise unsupported(f"tools[{index}].type", f"{tool.type!r}; only client tools")
        if tool.defer_loading and tool.name not in loaded:
            continue
        function: dict[str, Any] = {"name": tool.name, "parameters": tool.input_schema or {}}
        if tool.description:
            function["description"] = tool.description
        definitions.append({"type": "function", "function": function})
    return definitions


# --- thinking and output -------------------------------------------------------------------


def _effort(config: OutputConfig | None) -> str | None:
    effort = config.effort if config else None
    if effort is not None and effort not in EFFORT_BUDGETS:
        raise ApiError.invalid(
            f"output_config.effort must be one of {', '.join(EFFORT_BUDGETS)}, got {effort!r}",
            param="output_config.effort",
        )
    return effort


def thinking_switch(
    thinking: Thinking | None, config: OutputConfig | None = None
) -> dict[str, Any]:
    """InferRequest fields for the model's thinking switch and effort level."""
    fields: dict[str, Any] = {}
    if thinking is not None:
        fields["thinking"] = thinking.type != "disabled"
    effort = _effort(config)
    if effort is not None:
        fields["reasoning_effort"] = EFFORT_LEVELS[effort]
    return fields


def thinking_budget(thinking: Thinking | None, config: OutputConfig | None = None) -> int | None:
    """Reasoning tokens allowed: `budget_tokens` when enabled, the effort's when adaptive,
    none when disabled (a model that reasons anyway has its reasoning closed at once)."""
    if thinking is None:
        return None
    if thinking.type == "disabled":
        return 0
    if thinking.type == "adaptive":
        effort = _effort(config)
        return EFFORT_BUDGETS[effort] if effort else None
    if thinking.budget_tokens is None:
        raise ApiError.invalid(
            "thinking.budget_tokens is required when thinking is enabled",
            param="thinking.budget_tokens",
        )
    if thinking.budget_tokens < 0:
        raise ApiError.invalid(
            f"thinking.budget_tokens must be 0 or more, got {thinking.budget_tokens}",
            param="thinking.budget_tokens",
        )
    return thinking.budget_tokens


def output_schema(config: OutputConfig | None) -> dict[str, Any] | None:
    """The JSON schema the answer must follow (constrained decoding), if the request set one."""
    fmt = config.format if config else None
    if fmt is None:
        return None
    if fmt.type != "json_schema" or not fmt.schema:
        raise ApiError.invalid(
            'output_config.format must be {"type": "json_schema", "schema": {...}}',
            param="output_config.format",
        )
    return fmt.schema


def check_conversation(request: Conversation) -> None:
    """What both routes refuse alike."""
    if not request.model:
        raise ApiError.invalid("model: field required", param="model")
    if request.mcp_servers:
        raise unsupported(
            "mcp_servers", "the gateway connects to no MCP server; run tools in the client"
        )
    forced, name = forced_tool(request.tool_choice)
    if forced:  # count_tokens too: it answers what the request would cost
        check_forced({tool.name for tool in request.tools or []}, name, "tool_choice")
    if forced and request.thinking is not None and request.thinking.type != "disabled":
        # As Anthropic's API: a forced call is written at once, with no thinking before it.
        raise ApiError.invalid(
            "thinking may not be enabled when tool_choice forces tool use", param="tool_choice"
        )
    if request.thinking is not None and request.thinking.type not in THINKING_TYPES:
        raise ApiError.invalid(
            f"thinking.type must be one of {', '.join(THINKING_TYPES)}", param="thinking.type"
        )
    if request.thinking is not None and request.thinking.display not in THINKING_DISPLAYS:
        raise ApiError.invalid(
            "thinking.display must be 'summarized' or 'omitted'", param="thinking.display"
        )
    _effort(request.output_config)
    thinking_budget(request.thinking, request.output_config)
    output_schema(request.output_config)
    thinking_kept(request.context_management)
    choice = request.tool_choice
    if choice is not None and choice.type not in TOOL_CHOICE_TYPES:
        raise ApiError.invalid(
            f"tool_choice.type must be one of {', '.join(TOOL_CHOICE_TYPES)}, got "
            f"{choice.type!r}", param="tool_choice.type",
        )  # fmt: skip


def parse_request(body: bytes) -> MessagesRequest:
    request: MessagesRequest = decode_body(body, MessagesRequest)
    check_conversation(request)
    if request.max_tokens is None:
        raise ApiError.invalid("max_tokens: field required", param="max_tokens")
    check_positive("max_tokens", request.max_tokens)
    check_range("temperature", request.temperature, 0.0, 1.0)
    check_range("top_p", request.top_p, 0.0, 1.0)
    if request.top_k is not None and request.top_k < 0:
        raise ApiError.invalid(f"top_k must be >= 0, got {request.top_k}", param="top_k")
    for name, why in ANTHROPIC_SIDE.items():
        if getattr(request, name) is not None:
            error = unsupported(name, why)
            if name == "thread":  # what the SDK's threads (its tool runner's default) go on
                error.details = {"error_code": "thread_unsupported_request", "unsupported": []}
            raise error
    if request.speed not in (None, "standard"):
        raise unsupported("speed", f"{request.speed!r}; one speed here: 'standard'")
    if request.service_tier not in (None, "auto", "standard_only"):
        raise ApiError.invalid(
            "service_tier must be 'auto' or 'standard_only'", param="service_tier"
        )
    return request


def parse_count(body: bytes) -> CountTokensRequest:
    request: CountTokensRequest = decode_body(body, CountTokensRequest)
    check_conversation(request)
    if request.speed not in (None, "standard", "fast"):  # the count is the same at either
        raise ApiError.invalid("speed must be 'standard' or 'fast'", param="speed")
    return request


def loaded_tools(messages: list[Message]) -> frozenset[str]:
    """The tools tool results have loaded by reference (`tool_reference` blocks)."""
    return frozenset(
        inner.tool_name
        for message in messages
        if isinstance(message.content, list)
        for block in message.content
        if block.type == "tool_result" and isinstance(block.content, list)
        for inner in block.content
        if inner.type == "tool_reference" and inner.tool_name
    )


def history(request: Conversation, strip_billing: bool) -> list[ChatMessage]:
    messages = chat_messages(request.system, request.messages, strip_billing)
    return edited(messages, thinking_kept(request.context_management))


def template_fields(request: Conversation, strip_billing: bool) -> dict[str, Any]:
    """What the model's template is given for a conversation (Ask / InferRequest fields):
    one source for an answer and for counting its tokens, so the count stays exact."""
    return {
        "messages": history(request, strip_billing),
        "tools": template_tools(request.tools, request.tool_choice, loaded_tools(request.messages)),
        # A last assistant message is the start of the reply: the model continues it.
        "continue_final": request.messages[-1].role == "assistant",
        # A forced call is written at once: the model's thinking is off (Anthropic refuses
        # thinking with it; counting renders the prompt the answer would have).
        "thinking": False if forced_tool(request.tool_choice)[0] else None,
        **thinking_switch(request.thinking, request.output_config),
    }


def sampling_params(request: MessagesRequest) -> SamplingParams:
    return SamplingParams(
        max_tokens=request.max_tokens,
        temperature=ANTHROPIC.temperature if request.temperature is None else request.temperature,
        top_p=ANTHROPIC.top_p if request.top_p is None else request.top_p,
        top_k=request.top_k or ANTHROPIC.top_k,
        min_p=ANTHROPIC.min_p,
        repeat_penalty=ANTHROPIC.repeat_penalty,
        stop=list(request.stop_sequences or []),
        reasoning_budget=thinking_budget(request.thinking, request.output_config),
        json_schema=output_schema(request.output_config),
    )
