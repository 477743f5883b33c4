"""The tiny GGUF builder, checked against real llama.cpp (llama-cpp-python)."""

from __future__ import annotations

from collections.abc import Sequence

import llama_cpp
import pytest

from tests.support.tiny_gguf import (
    DEFAULT_SPECIALS,
    IM_END,
    IM_START,
    TinyModel,
    build_tiny_gguf,
    render_chat,
)

REPLY = ("<think>", "Let", " me", " think", "</think>", "Hello", ",", " world", "!")
USER = [{"role": "user", "content": "Hi there, how are you?"}]


def load(model: TinyModel) -> llama_cpp.Llama:
    return llama_cpp.Llama(
        model_path=str(model.path), n_ctx=model.n_ctx, verbose=False, n_threads=2
    )


def prompt_tokens(llm: llama_cpp.Llama, model: TinyModel, messages: Sequence[dict]) -> list[int]:
    text = render_chat(model.chat_template, messages)
    return llm.tokenize(text.encode(), add_bos=False, special=True)


def greedy(llm: llama_cpp.Llama, tokens: list[int], eos_id: int, limit: int = 32) -> list[int]:
    """Greedy decode until EOS (included); Llama.generate never stops on EOS by itself."""
    out: list[int] = []
    for token in llm.generate(tokens, temp=0.0, top_k=1):
        out.append(token)
        if token == eos_id or len(out) >= limit:
            break
    return out


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> TinyModel:
    return build_tiny_gguf(tmp_path_factory.mktemp("tiny") / "tiny.gguf", REPLY)


@pytest.fixture(scope="module")
def llm(model: TinyModel) -> llama_cpp.Llama:
    return load(model)


def test_file_is_small_and_records_the_chain(model: TinyModel) -> None:
    assert model.path.stat().st_size < 4 * 1024 * 1024
    assert model.reply == REPLY
    assert model.eos == IM_END
    assert len(model.reply_ids) == len(REPLY)


@pytest.mark.parametrize("special", DEFAULT_SPECIALS)
def test_each_special_is_one_token(llm: llama_cpp.Llama, special: str) -> None:
    tokens = llm.tokenize(special.encode(), add_bos=False, special=True)
    assert len(tokens) == 1
    assert llm.detokenize(tokens, special=True) == special.encode()


def test_eos_and_bos(llm: llama_cpp.Llama, model: TinyModel) -> None:
    assert llm.token_eos() == model.eos_id
    assert llm.tokenize(IM_START.encode(), add_bos=False, special=True) == [llm.token_bos()]


def test_word_tokens_tokenize_to_themselves(llm: llama_cpp.Llama, model: TinyModel) -> None:
    for text, token_id in zip(model.reply, model.reply_ids, strict=True):
        special = text in model.specials
        assert llm.tokenize(text.encode(), add_bos=False, special=special) == [token_id], text


@pytest.mark.parametrize(
    "messages",
    [
        USER,
        [
            {"role": "system", "content": "You are terse.\n\nVery terse."},
            {"role": "user", "content": "Hello"},
            {"role": "assistant", "content": "Hi."},
            {"role": "user", "content": "Ünïcödé and 数字 123"},
        ],
    ],
)
def test_greedy_decoding_follows_the_chain(
    llm: llama_cpp.Llama, model: TinyModel, messages: list[dict]
) -> None:
    tokens = prompt_tokens(llm, model, messages)
    assert llm.detokenize(tokens[-1:]) == b"\n"

    out = greedy(llm, tokens, model.eos_id)

    assert out == [*model.reply_ids, model.eos_id]
    assert [llm.detokenize([t], special=True).decode() for t in out] == [*REPLY, IM_END]


def test_reply_text_without_specials(llm: llama_cpp.Llama, model: TinyModel) -> None:
    out = greedy(llm, prompt_tokens(llm, model, USER), model.eos_id)
    answer = out[out.index(model.reply_ids[REPLY.index("</think>")]) + 1 :]

    assert llm.detokenize(out, special=False) == b"Let me thinkHello, world!"
    assert llm.detokenize(answer, special=False) == b"Hello, world!"


def test_model_without_think_uses_other_markers(tmp_path) -> None:
    specials = (IM_START, IM_END, "[THINK]", "[/THINK]")
    reply = ("[THINK]", "Hmm", "[/THINK]", "Hi", "!")
    model = build_tiny_gguf(tmp_path / "mistralish.gguf", reply, specials=specials)
    llm = load(model)

    assert len(llm.tokenize(b"<think>", add_bos=False, special=True)) > 1
    assert len(llm.tokenize(b"[THINK]", add_bos=False, special=True)) == 1
    out = greedy(llm, prompt_tokens(llm, model, USER), model.eos_id)
    assert out == [*model.reply_ids, model.eos_id]
    assert llm.detokenize(out, special=False) == b"HmmHi!"


def test_custom_template_that_opens_thinking(tmp_path) -> None:
    template = (
        "{% for message in messages %}"
        "{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>\\n' }}"
        "{% endfor %}"
        "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n<think>\\n' }}{% endif %}"
    )
    reply = ("Pondering", "</think>", "Done")
    model = build_tiny_gguf(tmp_path / "think.gguf", reply, chat_template=template)
    llm = load(model)

    assert render_chat(model.chat_template, USER).endswith("assistant\n<think>\n")
    assert llm.metadata["tokenizer.chat_template"] == template
    out = greedy(llm, prompt_tokens(llm, model, USER), model.eos_id)
    assert out == [*model.reply_ids, model.eos_id]


@pytest.mark.parametrize(
    "reply",
    [
        ("\n", "Hello"),  # "\n" already ends the prompt
        ("Hello", IM_END),  # EOS ends the chain
    ],
)
def test_prompt_end_or_eos_inside_the_chain_is_rejected(tmp_path, reply: tuple[str, ...]) -> None:
    with pytest.raises(ValueError, match="only once"):
        build_tiny_gguf(tmp_path / "dup.gguf", reply)
    assert not (tmp_path / "dup.gguf").exists()


def test_a_repeated_text_is_spelled_again_with_new_tokens(tmp_path) -> None:
    """A text the reply writes twice (a word, a special) is two new tokens the second time,
    with the same text: greedy decoding still follows the chain, and it reads as written."""
    reply = ("<think>", "a", "</think>", "Hello", "<think>", " world", "Hello", "!")
    model = build_tiny_gguf(tmp_path / "twins.gguf", reply)
    llm = load(model)
    out = greedy(llm, prompt_tokens(llm, model, USER), model.eos_id)
    assert out == [*model.reply_ids, model.eos_id]
    assert len(set(model.reply_ids)) == len(model.reply_ids) == len(reply) + 2
    text = b"".join(llm.detokenize([t], special=True) for t in model.reply_ids).decode()
    assert text == "".join(reply)


def test_a_branch_answers_prompts_that_end_at_its_start(tmp_path) -> None:
    """A second chain from another prompt ending: the way a test model can call a tool,
    then answer once the template ends the prompt on the tool's result."""
    done = "<|tool_done|>"
    model = build_tiny_gguf(
        tmp_path / "branch.gguf", ("<tool_call>", "call", "</tool_call>"),
        specials=(*DEFAULT_SPECIALS, done), branches={done: ("All", " done", "!")},
    )  # fmt: skip
    llm = load(model)
    first = prompt_tokens(llm, model, USER)
    second = llm.tokenize(f"{IM_START}user\nHi{IM_END}\n{done}".encode(), special=True)

    def reply(tokens: list[int]) -> str:
        out = greedy(llm, tokens, model.eos_id)
        return llm.detokenize(out[:-1], special=True).decode()

    assert reply(first) == "<tool_call>call</tool_call>"
    assert reply(second) == "All done!"
    with pytest.raises(ValueError, match="already holds"):
        build_tiny_gguf(tmp_path / "bad.gguf", ("a",), branches={"\n": ("b",)})
