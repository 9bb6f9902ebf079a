"""The one-caller conveniences on the step interface: ``generate``, ``complete``, ``chat`` and
``chat_session``, and the ``ChatSession`` it opens.

A mixin of ``Engine`` (``edge_os.runtime.engine``), which holds the state its methods use.
"""

from __future__ import annotations

from collections.abc import Iterator

from edge_os.errors import InputError
from edge_os.runtime._sequence import Sequence
from edge_os.runtime.request import Event, Finished, GenerationRequest, TextDelta, request_options
from edge_os.runtime.tools import ChatReply, chat_messages, parse_tools


class Generation:
    """Generates for one caller at a time on top of ``start``/``step``/``release``."""

    def run(self, seq: Sequence) -> Iterator[Event]:
        """Step one sequence to its end, yielding its events."""
        while not seq.finished:
            yield from self.step([seq])[seq]

    def generate(self, request: GenerationRequest) -> Iterator[Event]:
        seq = self.start(request)
        try:
            yield from self.run(seq)
        finally:
            self.release(seq)

    def complete(self, prompt: str, **options) -> str:
        """The answer to ``prompt``, rendered as one user message with the model's chat template
        (``raw=True``: continued as plain text). ``options``: ``max_tokens``, ``temperature``,
        ``top_k``, ``top_p``, ``repetition_penalty``, ``seed``, ``stop``, ``ignore_eos``,
        ``response_format`` (OpenAI's form: ``{"type": "json_schema", "json_schema": {"schema": ...}}``)."""
        return self._answer(GenerationRequest(prompt=prompt, **request_options(options)))

    def chat(self, messages: list[dict], *, tools: list[dict] | None = None, tool_choice: str | dict | None = None,
             **options) -> ChatReply:
        """The assistant's answer to ``messages`` (``[{"role": ..., "content": ...}, ...]``; an
        ``assistant`` message may carry earlier ``tool_calls``, a ``tool`` message a tool's result),
        with the options of ``complete``. ``tools`` and ``tool_choice`` are OpenAI's (function tools;
        ``auto``, ``none``, ``required`` or ``{"type": "function", "function": {"name": ...}}``): the
        calls come back in ``ChatReply.tool_calls``, each valid for its tool's schema."""
        use = parse_tools(tools, tool_choice)
        fields = request_options(options)
        chat = chat_messages(messages)
        if use is not None:
            if "constraint" in fields:
                raise InputError("give tools or a response_format, not both")
            chat, fields["constraint"] = use.prompt(chat), use.constraint()
        finished = self._finished(GenerationRequest(messages=chat, **fields))
        content, calls = (finished.text, []) if use is None else use.split(finished.text)
        finish = "tool_calls" if calls else finished.finish_reason.value
        return ChatReply(content, tuple(calls), finish, finished.usage)

    def chat_session(self) -> ChatSession:
        """A conversation that keeps its KV cache between turns (``ChatSession.send``)."""
        return ChatSession(self)

    def _answer(self, request: GenerationRequest) -> str:
        return self._finished(request).text

    def _finished(self, request: GenerationRequest) -> Finished:
        *_, finished = self.generate(request)  # the last event is the Finished one, with the whole text
        return finished


class ChatSession:
    """A conversation whose KV cache survives between turns."""

    def __init__(self, engine: Generation):  # an Engine
        self.engine = engine
        self.messages: list[dict] = []
        self._seq: Sequence | None = None

    def send(self, text: str, **request_args) -> Iterator[Event]:
        """Add a user message and stream the assistant's answer (kept for the next turn)."""
        request = GenerationRequest(messages=(*self.messages, {"role": "user", "content": text}), **request_args)
        self._seq = self.engine.start(request, reuse=self._seq)  # raises before anything changes
        self.messages.append({"role": "user", "content": text})
        reply = []
        try:
            for event in self.engine.run(self._seq):
                if isinstance(event, TextDelta):
                    reply.append(event.text)
                yield event
        finally:  # an answer stopped half-way (the caller closed this generator) is kept as said
            self.messages.append({"role": "assistant", "content": "".join(reply)})

    def clear(self) -> None:
        """Forget the conversation; the next turn reuses the cached prefix it still shares."""
        self.messages = []

    def close(self) -> None:
        if self._seq is not None:
            self.engine.release(self._seq)
            self._seq = None
