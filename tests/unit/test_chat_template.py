import pytest

from cortex_neuron.chat_template import CHATML, TemplateError, render_chat


def test_chatml_renders_messages_and_generation_prompt() -> None:
    prompt = render_chat(
        CHATML, [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}]
    )
    assert prompt == (
        "<|im_start|>system\nBe brief.<|im_end|>\n"
        "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"
    )


def test_template_kwargs_reach_the_template() -> None:
    template = (
        "{% if enable_thinking is defined and not enable_thinking %}NO{% else %}YES{% endif %}"
    )
    assert render_chat(template, [], template_kwargs={"enable_thinking": False}) == "NO"
    assert render_chat(template, []) == "YES"


def test_raise_exception_in_template_is_a_template_error() -> None:
    template = "{{ raise_exception('roles must alternate') }}"
    with pytest.raises(TemplateError, match="roles must alternate"):
        render_chat(template, [{"role": "user", "content": "x"}])


def test_broken_template_is_reported_not_crashed() -> None:
    with pytest.raises(TemplateError, match="does not compile"):
        render_chat("{% for %}", [])


def test_sandbox_blocks_attribute_escape() -> None:
    with pytest.raises(TemplateError):
        render_chat("{{ messages.__class__.__mro__[1].__subclasses__() }}", [])


def test_tojson_is_plain_json_and_never_escapes_the_template() -> None:
    template = "{{ '<|im_start|>system\\n' + (tools | tojson) }}"
    rendered = render_chat(template, [], tools=[{"name": "f", "d": "<é>"}])
    assert rendered == '<|im_start|>system\n[{"name": "f", "d": "<é>"}]'
