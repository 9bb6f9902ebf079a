"""KeyCheck on an ASGI app, with the client address set as a remote or a loopback peer."""

import pytest
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Route
from starlette.testclient import TestClient

from edge_os.api.auth import KeyCheck


def _ok(request):
    return PlainTextResponse("ok")


APP = Starlette(routes=[Route(p, _ok) for p in ("/health", "/metrics", "/v1/models")])


@pytest.mark.parametrize("keys, peer, path, header, status", [
    (set(), "192.0.2.7", "/v1/models", None, 200),        # no keys: open
    (set(), "192.0.2.7", "/metrics", None, 401),          # metrics stay local without keys
    (set(), "127.0.0.1", "/metrics", None, 200),
    ({"k"}, "192.0.2.7", "/health", None, 200),           # liveness always open
    ({"k"}, "192.0.2.7", "/v1/models", None, 401),
    ({"k"}, "192.0.2.7", "/v1/models", "Bearer nope", 401),
    ({"k"}, "192.0.2.7", "/v1/models", "Bearer k", 200),
    ({"k"}, "192.0.2.7", "/metrics", "Bearer k", 200),
    ({"k"}, "192.0.2.7", "/metrics", None, 401),
    ({"k"}, "::1", "/metrics", None, 200),
    ({"k"}, "127.0.0.1", "/metrics", "Bearer nope", 401),  # a key sent is checked, even locally
])
def test_key_rules(keys, peer, path, header, status):
    client = TestClient(KeyCheck(APP, frozenset(keys)), client=(peer, 50000))
    r = client.get(path, headers={"Authorization": header} if header else {})
    assert r.status_code == status
    if status == 401:
        assert r.json()["error"]["type"] == "authentication_error"
