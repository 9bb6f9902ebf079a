from __future__ import annotations

import pytest

from edge_os.errors import InputError
from edge_os.runtime.chat_template import ChatTemplate
from tests.tiny_model import CHATML


def test_chatml_renders_with_the_generation_prompt():
    text = ChatTemplate(CHATML).render([{"role": "user", "content": "hi"}])
    assert text == "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n"


def test_template_cannot_reach_python_internals():
    evil = "{{ messages.__class__.__mro__[1].__subclasses__() }}"
    with pytest.raises(Exception) as info:
        ChatTemplate(evil).render([{"role": "user", "content": "x"}])
    assert "unsafe" in str(info.value).lower() or "access" in str(info.value).lower()


def test_raise_exception_in_a_template_is_a_clear_input_error():
    tpl = ("{% if messages[0]['role'] != 'user' %}"
           "{{ raise_exception('first message must be from the user') }}{% endif %}")
    with pytest.raises(InputError, match="first message must be from the user"):
        ChatTemplate(tpl).render([{"role": "assistant", "content": "x"}])
