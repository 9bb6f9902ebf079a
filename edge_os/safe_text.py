"""Untrusted text (names and logs a device sends, messages that quote them) made safe to print.

A terminal acts on control characters: ESC starts sequences that can clear the screen, retitle
the window, move the cursor over earlier output or (on some terminals) answer back; C1 controls
such as U+009B do the same in one character; bidirectional overrides reorder what is shown.
``terminal_safe`` shows each such character as a visible escape (``\\x1b``, ``\\u202e``) instead,
so the text stays readable and on one line. ``json_dumps`` makes JSON that is just as safe.
"""

from __future__ import annotations

import json
import unicodedata
from typing import Any

# Controls, format characters (bidi overrides, zero-width), surrogates, private use, unassigned,
# and the line/paragraph separators.
_UNSAFE_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"})
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _unsafe(ch: str) -> bool:
    return unicodedata.category(ch) in _UNSAFE_CATEGORIES


def terminal_safe(text: str) -> str:
    """``text`` with every control, format or separator character written as a visible escape."""
    if text.isprintable():  # the common case: nothing to do (isprintable is false for all of the above)
        return text
    out = []
    for ch in text:
        if ch in _NAMED:
            out.append(_NAMED[ch])
        elif _unsafe(ch):
            code = ord(ch)
            out.append(f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}")
        else:
            out.append(ch)
    return "".join(out)


def json_dumps(value: Any, **kwargs: Any) -> str:
    """``json.dumps`` that keeps readable non-ASCII text (``°C``) but writes every character a
    terminal would act on as a ``\\u`` escape, and refuses NaN and infinities (not JSON)."""
    text = json.dumps(value, ensure_ascii=False, allow_nan=False, **kwargs)
    if text.isprintable():
        return text
    # Outside strings JSON has only ASCII, and json.dumps already escaped C0 controls, so every
    # character left to escape is inside a string, where \uXXXX is valid.
    out = []
    for ch in text:
        if ch not in " \n" and _unsafe(ch):  # indent's newlines and spaces are JSON's own
            code = ord(ch)
            if code < 0x10000:
                out.append(f"\\u{code:04x}")
            else:
                code -= 0x10000
                out.append(f"\\u{0xD800 + (code >> 10):04x}\\u{0xDC00 + (code & 0x3FF):04x}")
        else:
            out.append(ch)
    return "".join(out)
