"""API keys on a real `edge-os serve --http`: bearer tokens from a file and from EDGE_OS_API_KEYS."""

from __future__ import annotations

import json

import httpx
import openai
import pytest

from tests.integration.http_service import HttpService


def test_keys_are_required_except_for_health(tmp_path, tiny_package):
    keys = tmp_path / "keys"
    keys.write_text("# one key a line\nfile-key\n")
    svc = HttpService(tmp_path, [tiny_package], "--api-key-file", str(keys), env={"EDGE_OS_API_KEYS": "env-key"})
    model = json.loads((tiny_package / "manifest.json").read_text())["name"]
    try:
        assert httpx.get(svc.url + "/health").status_code == 200
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "Basic file-key"},
                        {"Authorization": "Bearer"}):
            r = httpx.get(svc.url + "/v1/models", headers=headers)
            assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer"
            assert r.json()["error"]["code"] == "invalid_api_key"
        with pytest.raises(openai.AuthenticationError):
            openai.OpenAI(base_url=svc.url + "/v1", api_key="wrong", max_retries=0).models.list()
        for key in ("file-key", "env-key"):
            client = openai.OpenAI(base_url=svc.url + "/v1", api_key=key, max_retries=0, timeout=60)
            assert client.chat.completions.create(model=model, messages=[{"role": "user", "content": "hi"}],
                                                  max_tokens=2).choices
    finally:
        assert svc.stop() == 0
    assert not any("without API keys" in line for line in svc.log_lines)


def test_binding_beyond_loopback_without_keys_warns(tmp_path, tiny_package):
    svc = HttpService(tmp_path, [tiny_package], http="0.0.0.0:0")
    try:
        svc.wait_log(r"WARNING .*listens on 0\.0\.0\.0 without API keys")
    finally:
        assert svc.stop() == 0
