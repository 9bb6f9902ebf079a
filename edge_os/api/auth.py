"""API keys as bearer tokens: a pure ASGI wrapper, so streamed answers pass through untouched.

``/health`` is always open. ``/metrics`` is open to loopback clients; others need a valid key
(and cannot have one when no keys are configured). Everything else needs a valid key when keys
are configured.
"""

from __future__ import annotations

import hmac
import json

from edge_os.api.config import is_loopback
from edge_os.api.errors import ApiError

OPEN_PATHS = frozenset({"/health"})
LOOPBACK_PATHS = frozenset({"/metrics"})


class KeyCheck:
    def __init__(self, app, keys: frozenset[str]) -> None:
        self.app = app
        self._keys = tuple(k.encode() for k in keys)

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http" or scope["path"] in OPEN_PATHS:
            return await self.app(scope, receive, send)
        token = _bearer(scope)
        if scope["path"] in LOOPBACK_PATHS:
            client = scope.get("client")
            allowed = self._valid(token) if token is not None else bool(client and is_loopback(client[0]))
        else:
            allowed = not self._keys or self._valid(token)
        if allowed:
            return await self.app(scope, receive, send)
        message = ("a valid API key is needed: send the header 'Authorization: Bearer KEY'" if token is None
                   else "the API key is not valid")
        err = ApiError(401, message, code="invalid_api_key")
        body = json.dumps(err.body()).encode()
        await send({"type": "http.response.start", "status": 401, "headers": [
            (b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
            (b"www-authenticate", b"Bearer")]})
        await send({"type": "http.response.body", "body": body})

    def _valid(self, token: bytes | None) -> bool:
        if token is None:
            return False
        # Compare with every key, in constant time each, so timing says nothing about which matched.
        return any([hmac.compare_digest(token, key) for key in self._keys])  # noqa: C419 (all compared)


def _bearer(scope) -> bytes | None:
    for name, value in scope.get("headers", ()):
        if name == b"authorization":
            scheme, _, token = value.partition(b" ")
            return token.strip() if scheme.lower() == b"bearer" and token.strip() else b""
    return None
