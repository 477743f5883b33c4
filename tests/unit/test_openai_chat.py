import json

import pytest

from cortex_gateway import openai_chat
from cortex_gateway.errors import ApiError
from cortex_wire.messages import Usage


def parse(body: dict) -> openai_chat.ChatCompletionRequest:
    return openai_chat.parse_request(json.dumps(body).encode())


def error_of(body: bytes | dict) -> ApiError:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    with pytest.raises(ApiError) as caught:
        openai_chat.parse_request(raw)
    return caught.value


def test_valid_request_becomes_messages_and_params() -> None:
    request = parse(
        {
            "model": "m",
            "messages": [
                {"role": "system", "content": "Be brief."},
                {
                    "role": "user",
                    "content": [{"type": "text", "text": "Hi "}, {"type": "text", "text": "there"}],
                },
            ],
            "max_completion_tokens": 5,
            "temperature": 0,
            "stop": "END",
            "seed": 7,
        }
    )
    messages = openai_chat.chat_messages(request)
    assert [(m.role, m.content) for m in messages] == [
        ("system", "Be brief."),
        ("user", "Hi there"),
    ]
    params = openai_chat.sampling_params(request)
    assert (params.max_tokens, params.temperature, params.stop, params.seed) == (5, 0.0, ["END"], 7)
    assert (params.top_k, params.min_p) == (0, 0.0)


@pytest.mark.parametrize(
    ("body", "status", "param"),
    [
        (b"{not json", 400, None),
        ({"model": "m"}, 400, None),
        ({"model": "m", "messages": []}, 400, "messages"),
        ({"model": "m", "messages": [{"role": "wizard", "content": "x"}]}, 400, "messages[0].role"),
        ({"model": "m", "messages": [{"role": "user", "content": 5}]}, 400, "messages[0].content"),
        (
            {"model": "m", "messages": [{"role": "user", "content": "x"}], "temperature": 9},
            400,
            "temperature",
        ),
        (
            {"model": "m", "messages": [{"role": "user", "content": "x"}], "max_tokens": 0},
            400,
            "max_tokens",
        ),
        ({"model": "m", "messages": [{"role": "user", "content": "x"}], "n": 2}, 400, "n"),
        (
            {"model": "m", "messages": [{"role": "user", "content": [{"type": "image_url"}]}]},
            400,
            "messages[0].content[0].type",
        ),
    ],
)
def test_bad_requests_get_400_naming_the_parameter(body, status: int, param: str | None) -> None:
    error = error_of(body)
    assert error.status == status
    assert error.param == param
    assert error.openai_body()["error"]["type"] == "invalid_request_error"


def test_image_content_is_rejected_clearly() -> None:
    error = error_of(
        {"model": "m", "messages": [{"role": "user", "content": [{"type": "image_url"}]}]}
    )
    assert "image_url" in error.message


def test_response_shapes() -> None:
    usage = Usage(prompt_tokens=3, completion_tokens=2, cached_tokens=1, reasoning_tokens=1)
    message = {"role": "assistant", "content": "hi"}
    body = openai_chat.completion_body(
        request_id="c1", model="m", created=1, message=message, reason="length", usage=usage
    )
    assert body["choices"][0]["message"] == {"role": "assistant", "content": "hi"}
    assert body["choices"][0]["finish_reason"] == "length"
    assert body["usage"] == {
        "prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5,
        "prompt_tokens_details": {"cached_tokens": 1},
        "completion_tokens_details": {"reasoning_tokens": 1},
    }  # fmt: skip
    chunk = openai_chat.chunk_body(request_id="c1", model="m", created=1, delta={"content": "x"})
    assert chunk["object"] == "chat.completion.chunk"
    assert chunk["choices"][0]["finish_reason"] is None
