"""The chat loop of ``edge-os chat`` and ``edge-os demo``.

At a terminal: line editing and history (``readline``; the history is kept in
``$EDGE_OS_HOME/chat_history``), slash commands, and Ctrl-C that stops an answer and returns to
the prompt (Ctrl-C at an empty prompt, Ctrl-D or ``/quit`` leave). Without a terminal each input
line is a turn, and slash commands work the same.
"""

from __future__ import annotations

import signal
import threading
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import TextIO

from edge_os.errors import InputError
from edge_os.runtime.request import Finished, SamplingParams, TextDelta

HINT = "Type a message. /help lists commands; Ctrl-C stops an answer; Ctrl-D or /quit leaves."
HELP = """\
  /help                  this list
  /clear                 forget the conversation and start over
  /set temperature 0.7   change a setting: temperature, top_k, top_p, repeat_penalty, seed, max_tokens
  /set                   show the settings
  /quit                  leave (also Ctrl-D, or Ctrl-C at an empty prompt)
  Ctrl-C while the model answers stops the answer."""

# /set names -> SamplingParams fields (max_tokens is the turn's, not the sampler's)
_SETTABLE = {"temperature": "temperature", "top_k": "top_k", "top_p": "top_p",
             "repeat_penalty": "repetition_penalty", "seed": "seed"}


@dataclass
class ChatOptions:
    """How each answer is generated; ``/set`` changes it during the session."""

    sampling: SamplingParams
    max_tokens: int
    stop: tuple[str, ...] = ()
    ignore_eos: bool = False

    def set(self, name: str, text: str) -> None:
        """Apply ``/set NAME VALUE``; raises ``InputError`` with the reason when it cannot."""
        if name == "max_tokens":
            value = _number(name, text, int)
            if value < 1:
                raise InputError(f"max_tokens must be at least 1 (got {value})")
            self.max_tokens = value
            return
        field = _SETTABLE.get(name)
        if field is None:
            raise InputError(f"cannot set {name!r}; settable: {', '.join([*_SETTABLE, 'max_tokens'])}")
        kind = {f.name: f.type for f in fields(SamplingParams)}[field]
        value = _number(name, text, int if "int" in str(kind) else float)
        self.sampling = replace(self.sampling, **{field: None if field == "seed" and value == -1 else value})

    def describe(self) -> str:
        s = self.sampling
        return (f"  temperature {s.temperature}, top_k {s.top_k}, top_p {s.top_p}, repeat_penalty "
                f"{s.repetition_penalty}, seed {'random' if s.seed is None else s.seed}, max_tokens {self.max_tokens}")


def _number(name: str, text: str, kind: type):
    try:
        return kind(text)
    except ValueError:
        raise InputError(f"{name} takes a {'whole ' if kind is int else ''}number, got {text!r}") from None


class _StopOnInterrupt:
    """While active, Ctrl-C (SIGINT) sets ``stopped`` instead of raising, so an answer can end
    between two tokens and leave the session usable. Only the main thread can catch signals;
    elsewhere this does nothing."""

    def __init__(self) -> None:
        self.stopped = False
        self._previous = None

    def __enter__(self) -> _StopOnInterrupt:
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGINT, self._on_sigint)
        return self

    def _on_sigint(self, _signum, _frame) -> None:
        self.stopped = True

    def __exit__(self, *_exc) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)


def chat_turn(session, text: str, out: TextIO, options: ChatOptions) -> Finished | None:
    """Stream one answer to ``out``; returns its Finished event, or None when Ctrl-C stopped it."""
    out.write("assistant> ")
    out.flush()
    final = None
    events = session.send(text, sampling=options.sampling, max_tokens=options.max_tokens, stop=options.stop,
                          ignore_eos=options.ignore_eos)
    with _StopOnInterrupt() as interrupt:
        for event in events:
            if isinstance(event, TextDelta):
                out.write(event.text)
                out.flush()
            elif isinstance(event, Finished):
                final = event
            if interrupt.stopped:
                events.close()  # the session keeps what was said so far
                out.write(" [stopped]\n")
                out.flush()
                return None
    t = final.timings
    out.write(f"\n  [{final.usage.completion_tokens} tokens, first after {t.ttft_s * 1000:.0f} ms, "
              f"prefill {t.prefill_tok_s:.0f} tok/s, decode {t.decode_tok_s:.1f} tok/s]\n")
    return final


class _TerminalInput:
    """``input()`` with readline's line editing and a history file."""

    def __init__(self, history: Path | None) -> None:
        try:
            import readline
        except ImportError:  # pragma: no cover - Python built without readline
            readline = None
        self._readline = readline
        self._history = history
        if readline is not None and history is not None:
            readline.set_history_length(1000)
            try:
                readline.read_history_file(history)
            except OSError:
                pass

    def read(self, prompt: str) -> str | None:
        """The next line; None to leave (Ctrl-D, or Ctrl-C at an empty prompt); "" after Ctrl-C
        discarded a half-typed line."""
        typed = []

        def on_sigint(_signum, _frame):
            # Runs inside readline's wait for a key, before it clears the line: what was typed.
            typed.append(self._readline.get_line_buffer() if self._readline is not None else "")
            raise KeyboardInterrupt

        previous = signal.signal(signal.SIGINT, on_sigint)
        try:
            return input(prompt)
        except EOFError:
            print()
            return None
        except KeyboardInterrupt:
            print()
            return "" if typed and typed[0] else None
        finally:
            signal.signal(signal.SIGINT, previous)

    def close(self) -> None:
        if self._readline is not None and self._history is not None:
            try:
                self._history.parent.mkdir(parents=True, exist_ok=True)
                self._readline.write_history_file(self._history)
            except OSError:
                pass  # history is a convenience; never fail a chat for it


def chat_loop(engine, lines: TextIO, out: TextIO, options: ChatOptions, interactive: bool,
              history: Path | None = None) -> None:
    """Run a chat until the input ends or the user leaves."""
    session = engine.chat_session()
    terminal = _TerminalInput(history) if interactive else None
    if interactive:
        out.write(HINT + "\n")
    try:
        while True:
            if terminal is not None:
                line = terminal.read("you> ")
                if line is None:
                    return
            else:
                line = lines.readline()
                if not line:
                    return
            text = line.strip()
            if not text:
                continue
            if not interactive:
                out.write(f"you> {text}\n")
            if text.startswith("/"):
                if not _command(text, session, options, out):
                    return
                continue
            try:
                chat_turn(session, text, out, options)
            except InputError as exc:  # e.g. the conversation outgrew the context: say so, go on
                out.write(f"\n  error: {exc}\n")
    finally:
        if terminal is not None:
            terminal.close()
        session.close()


def _command(text: str, session, options: ChatOptions, out: TextIO) -> bool:
    """Run a slash command; False when it ends the chat."""
    name, *args = text.split()
    if name in ("/quit", "/exit", "/bye"):
        return False
    if name == "/help":
        out.write(HELP + "\n")
    elif name == "/clear":
        session.clear()
        out.write("  (conversation cleared)\n")
    elif name == "/set" and not args:
        out.write(options.describe() + "\n")
    elif name == "/set" and len(args) == 2:
        try:
            options.set(args[0], args[1])
            out.write(options.describe() + "\n")
        except InputError as exc:
            out.write(f"  error: {exc}\n")
    else:
        out.write(f"  unknown command {text!r}; /help lists the commands\n")
    out.flush()
    return True
