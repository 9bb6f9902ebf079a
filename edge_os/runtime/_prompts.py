"""Turning a request into prompt token ids: the chat template, BOS, and control tokens kept as
text when a message carries them (no role injection).

A mixin of ``Engine`` (``edge_os.runtime.engine``), which holds the state its methods use.
"""

from __future__ import annotations

from edge_os.errors import InputError
from edge_os.runtime.control_tokens import ControlTokens
from edge_os.runtime.request import GenerationRequest


class Prompts:
    """Renders and tokenizes requests' prompts."""

    def render(self, request: GenerationRequest) -> str:
        if request.raw and request.messages is None:
            return request.prompt
        return self.template.render(_messages(request))

    def encode(self, text: str) -> list[int]:
        """Token ids of ``text``, control tokens in it honoured (for raw prompts and templates)."""
        return self._with_bos(self.tokenizer.encode(text, add_special_tokens=False).ids)

    def prompt_ids(self, request: GenerationRequest) -> list[int]:
        """The request's prompt as token ids. In chat prompts only the template's own markers are
        control tokens: a control token's text inside a message stays text (no role injection)."""
        if request.raw and request.messages is None:
            return self.encode(request.prompt)
        messages = _messages(request)
        text = self.template.render(messages)
        ids: list[int] = []
        for piece, literal in _split_literal(text, [m["content"] for m in messages], self._control_tokens):
            self.tokenizer.encode_special_tokens = literal
            try:
                ids += self.tokenizer.encode(piece, add_special_tokens=False).ids
            finally:
                self.tokenizer.encode_special_tokens = False
        return self._with_bos(ids)

    def _with_bos(self, ids: list[int]) -> list[int]:
        if self.bos_id is not None and (not ids or ids[0] != self.bos_id):
            ids = [self.bos_id] + ids
        return ids


def _messages(request: GenerationRequest) -> list[dict]:
    if request.messages is not None:
        return list(request.messages)
    return [{"role": "user", "content": request.prompt}]


def _split_literal(text: str, contents: list[str], control: ControlTokens) -> list[tuple[str, bool]]:
    """``text`` cut into ``(piece, literal)``: control-token strings that come from a message's
    content are literal (tokenized as text); everything else is tokenized as usual."""
    if not control or not any(control.first(c) for c in contents):
        return [(text, False)]
    literal_spans = []
    cursor = 0
    for content in contents:
        at = text.find(content, cursor) if content else -1
        if at < 0:
            token = control.first(content)
            if token is not None:
                raise InputError(f"a message contains the model's control token {token!r} and its chat template "
                                 "changes the message, so it cannot be kept as text; remove the token")
            continue
        literal_spans += [(at + start, at + end) for start, end in control.spans(content)]
        cursor = at + len(content)
    pieces, last = [], 0
    for start, end in literal_spans:
        if start > last:
            pieces.append((text[last:start], False))
        pieces.append((text[start:end], True))
        last = end
    if last < len(text):
        pieces.append((text[last:], False))
    return pieces
