"""Fixtures: an open device on the firmware simulator (tests/integration/conftest.py) and an audit
log in a temporary directory."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from edge_os.agent import AuditLog
from firmware_bridge import Device
from firmware_bridge.link import LinkConfig

from ..firmware_bridge.sim import Simulator

CONTEXT = 2048  # the tiny model's context, with room for the agent's prompt (its byte-sized tokens make it long)


@pytest.fixture(scope="session")
def long_tiny_package(tiny_package_factory) -> Path:
    return tiny_package_factory("q4f32", max_position_embeddings=CONTEXT)


@pytest.fixture
def device(sim: Simulator) -> Iterator[Device]:
    with Device.open(sim.path, LinkConfig(timeout=0.1, retries=2)) as dev:
        yield dev


@pytest.fixture
def audit(tmp_path: Path) -> AuditLog:
    return AuditLog(tmp_path / "audit.jsonl")
