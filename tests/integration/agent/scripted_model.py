"""A TEST DOUBLE for the model: it replays scripted turns, so a test chooses which tool calls the agent
sees. Only the choice of calls is scripted; the policy, the serial wire, the audit log and the
simulator that the calls reach are all real. It implements the agent's ``ChatModel`` interface."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence

Turn = str | Callable[[list[dict]], str]


def call(name: str, **arguments: object) -> str:
    """A turn that calls ``name`` the way the grammar lets a model write it."""
    body = json.dumps({"name": name, "arguments": arguments})
    return f"<tool_call>{body}</tool_call>"


def last_result(messages: list[dict]) -> dict:
    """The tool result the agent handed back last."""
    return json.loads(next(m for m in reversed(messages) if m["role"] == "tool")["content"])


class ScriptedModel:
    """Answers each turn with the next scripted one (text, or a function of the messages so far);
    after the script, it answers "Done." Records every prompt it was given in ``prompts``."""

    def __init__(self, turns: Sequence[Turn]) -> None:
        self.turns = list(turns)
        self.prompts: list[list[dict]] = []
        self.constraints: list = []

    def turn(self, messages: list[dict], constraint, max_tokens: int) -> str:
        self.prompts.append([dict(m) for m in messages])
        self.constraints.append(constraint)
        if not self.turns:
            return "Done."
        turn = self.turns.pop(0)
        return turn(messages) if callable(turn) else turn
