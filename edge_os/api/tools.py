"""``tools`` and ``tool_choice`` of a chat request, checked as 400s (the logic is
``edge_os.runtime.tools``, shared with ``Engine.chat``)."""

from __future__ import annotations

from typing import Any

from edge_os.api.errors import bad_request
from edge_os.errors import ToolsError
from edge_os.runtime.tools import ToolUse
from edge_os.runtime.tools import parse_tools as _parse


def parse_tools(data: dict[str, Any]) -> ToolUse | None:
    """The request's tools (``None``: no tools in play); a 400 naming the field otherwise."""
    try:
        return _parse(data.get("tools"), data.get("tool_choice"))
    except ToolsError as exc:
        raise bad_request(str(exc), exc.param) from None
