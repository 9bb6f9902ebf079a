"""The text chat loop shared by ``edge-os chat`` and ``edge-os demo``."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TextIO

from edge_os.runtime.request import Finished, SamplingParams, TextDelta


def chat_turn(session, text: str, out: TextIO, sampling: SamplingParams, max_tokens: int) -> Finished:
    """Stream one answer to ``out`` and return its Finished event."""
    out.write("assistant> ")
    final = None
    for event in session.send(text, sampling=sampling, max_tokens=max_tokens):
        if isinstance(event, TextDelta):
            out.write(event.text)
            out.flush()
        elif isinstance(event, Finished):
            final = event
    t = final.timings
    out.write(f"\n  [{final.usage.completion_tokens} tokens, first after {t.ttft_s * 1000:.0f} ms, "
              f"prefill {t.prefill_tok_s:.0f} tok/s, decode {t.decode_tok_s:.1f} tok/s]\n")
    return final


def chat_loop(engine, lines: Iterable[str] | TextIO, out: TextIO, sampling: SamplingParams, max_tokens: int,
              interactive: bool) -> None:
    session = engine.chat()
    try:
        while True:
            if interactive:
                out.write("you> ")
                out.flush()
            line = lines.readline() if hasattr(lines, "readline") else next(iter(lines), "")
            if not line or not line.strip():
                break
            if not interactive:
                out.write(f"you> {line.strip()}\n")
            chat_turn(session, line.strip(), out, sampling, max_tokens)
    finally:
        session.close()
