"""`edge-os chat` at a real terminal (a pty driven by pexpect) and through a pipe."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pexpect
import pytest

EDGE_OS = str(Path(sys.executable).parent / "edge-os")
PROMPT = "you> "


@pytest.fixture
def chat(tiny_package, tmp_path):
    """Start `edge-os chat` on a pty; the history file lives in this test's EDGE_OS_HOME."""
    children = []

    def start(*args: str) -> pexpect.spawn:
        child = pexpect.spawn(EDGE_OS, ["chat", "-m", str(tiny_package), *args], encoding="utf-8", timeout=120,
                              env={**os.environ, "EDGE_OS_HOME": str(tmp_path / "home")}, dimensions=(40, 200))
        children.append(child)
        child.expect_exact("/help lists commands")
        child.expect_exact(PROMPT)
        return child

    yield start
    for child in children:
        child.close(force=True)


def ended(child: pexpect.spawn) -> int:
    child.expect(pexpect.EOF)
    child.close()
    return child.exitstatus


def test_ctrl_c_stops_an_answer_and_the_chat_goes_on(chat):
    child = chat("--max-tokens", "100000", "--ignore-eos", "--ctx", "512")  # seconds of answer
    child.sendline("tell me everything")
    child.expect_exact("assistant> ")
    child.expect(r"\S")  # the answer has begun
    child.sendintr()
    child.expect_exact("[stopped]")
    child.expect_exact(PROMPT)
    child.sendline("/set max_tokens 3")
    child.expect_exact("max_tokens 3")
    child.expect_exact(PROMPT)
    child.sendline("and now?")  # the session survived: a full answer with its timings line
    child.expect(r"\[3 tokens, first after")
    child.expect_exact(PROMPT)
    child.sendline("/quit")
    assert ended(child) == 0


def test_ctrl_c_discards_a_half_typed_line_and_at_an_empty_prompt_leaves(chat):
    child = chat()
    child.send("half a thought")
    child.expect_exact("half a thought")
    child.sendintr()
    child.expect_exact(PROMPT)  # still chatting
    child.sendintr()
    assert ended(child) == 0


def test_ctrl_d_leaves(chat):
    child = chat()
    child.sendeof()
    assert ended(child) == 0


def test_slash_commands_are_not_sent_to_the_model(chat):
    child = chat("--max-tokens", "2")
    child.sendline("/help")
    child.expect_exact("/set temperature 0.7")
    child.expect_exact(PROMPT)
    child.sendline("/set temperature 0.25")
    child.expect_exact("temperature 0.25,")
    child.expect_exact(PROMPT)
    child.sendline("/set temperature -1")
    child.expect_exact("error: temperature must be a number >= 0")
    child.expect_exact(PROMPT)
    child.sendline("/teleport")
    child.expect_exact("unknown command '/teleport'")
    child.expect_exact(PROMPT)
    child.sendline("/clear")
    child.expect_exact("conversation cleared")
    child.expect_exact(PROMPT)
    assert "assistant> " not in child.before
    child.sendline("/quit")
    assert ended(child) == 0


def test_line_editing_and_history_across_sessions(chat):
    child = chat("--max-tokens", "1")
    child.sendline("first question")
    child.expect_exact(PROMPT)
    child.sendline("/quit")
    assert ended(child) == 0

    child = chat("--max-tokens", "1")
    child.send("\x1b[A\x1b[A")  # up arrow twice (past /quit): the previous session's question, to edit
    child.expect_exact("first question")
    child.send("\x7f" * len("question") + "answer?\r")  # backspaces, then new text
    child.expect_exact("assistant> ")
    child.expect_exact(PROMPT)
    child.sendline("/quit")
    assert ended(child) == 0
    history = (Path(child.env["EDGE_OS_HOME"]) / "chat_history").read_text()
    assert "first answer?" in history


def piped_chat(tiny_package, lines: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([EDGE_OS, "chat", "-m", str(tiny_package), "--temperature", "0", *args],
                          input=lines, capture_output=True, text=True, timeout=300)


def answers(stdout: str) -> list[str]:
    return re.findall(r"assistant> (.*?)\n  \[\d+ tokens", stdout, re.S)


def test_stop_and_ignore_eos_are_honoured(tiny_package):
    full = piped_chat(tiny_package, "hello\n", "--max-tokens", "24", "--ignore-eos")
    assert full.returncode == 0, full.stderr
    assert "[24 tokens" in full.stdout  # --ignore-eos: the whole budget, end-of-sequence or not
    [text] = answers(full.stdout)
    stop = text.strip()[6:9]
    assert stop, text
    cut = piped_chat(tiny_package, "hello\n", "--max-tokens", "24", "--ignore-eos", "--stop", stop)
    [shorter] = answers(cut.stdout)
    assert stop not in shorter and text.startswith(shorter.rstrip()) and len(shorter) < len(text)


def test_chat_help_states_its_defaults():
    help_text = subprocess.run([EDGE_OS, "chat", "--help"], capture_output=True, text=True, timeout=60).stdout
    assert "(default 0.0)" in help_text and "(default 1.1)" in help_text and "/quit" in help_text
