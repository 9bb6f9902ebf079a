"""Redaction of personal data from text before a request leaves the device.

E-mail addresses, phone numbers and a configured list of names are replaced by placeholders
(``[EMAIL]``, ``[PHONE]``, ``[NAME]``). The patterns are deliberately greedy: a false positive
costs the cloud model a number, a false negative leaks a user's data.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_EMAIL = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}")
# An optional +country code, then digits in groups separated by spaces, dots, dashes or
# parentheses, 7 to 15 digits in all (E.164 allows at most 15).
_PHONE = re.compile(r"(?<![\w+])(?:\+\d{1,3}[\s.-]?)?(?:\(\d{1,4}\)[\s.-]?)?\d(?:[\s.-]?\d){5,13}(?![\w])")
_MIN_PHONE_DIGITS = 7
# Digit runs that the phone pattern also matches but are not phone numbers.
_NOT_PHONE = re.compile(r"\d{4}-\d{2}-\d{2}|\d{1,2}[./]\d{1,2}[./]\d{2,4}|\d{1,3}(?:\.\d{1,3}){3}")


@dataclass(frozen=True)
class RedactionConfig:
    """What to remove. On by default; ``names`` are matched whole-word, case-insensitively."""

    enabled: bool = True
    emails: bool = True
    phones: bool = True
    names: tuple[str, ...] = ()


class Redactor:
    """Applies a ``RedactionConfig`` to strings and counts what it replaced."""

    def __init__(self, config: RedactionConfig) -> None:
        self.config = config
        names = sorted({n.strip() for n in config.names if n.strip()}, key=len, reverse=True)
        self._names = (
            re.compile(r"(?<!\w)(?:" + "|".join(re.escape(n) for n in names) + r")(?!\w)", re.IGNORECASE)
            if names
            else None
        )

    def redact(self, text: str) -> str:
        """``text`` with every configured pattern replaced (unchanged when disabled)."""
        if not self.config.enabled:
            return text
        if self.config.emails:
            text = _EMAIL.sub("[EMAIL]", text)
        if self.config.phones:
            text = _PHONE.sub(_phone_or_keep, text)
        if self._names is not None:
            text = self._names.sub("[NAME]", text)
        return text

    def redact_messages(self, messages: list[dict]) -> list[dict]:
        """Chat messages with their ``content`` redacted (roles and other keys kept)."""
        return [{**m, "content": self.redact(m["content"])} for m in messages]


def _phone_or_keep(match: re.Match[str]) -> str:
    text = match.group(0)
    if sum(c.isdigit() for c in text) < _MIN_PHONE_DIGITS or _NOT_PHONE.fullmatch(text):
        return text  # too short for a phone number, or a date or an IPv4 address
    return "[PHONE]"
