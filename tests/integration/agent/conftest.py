"""Fixtures: the firmware simulator on a pty (built once per session), an open device on it, and an
audit log in a temporary directory."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from edge_os.agent import AuditLog
from firmware_bridge import Device
from firmware_bridge.link import LinkConfig

from ..firmware_bridge.sim import Simulator, build, require_tool

CONTEXT = 2048  # the tiny model's context, with room for the agent's prompt (its byte-sized tokens make it long)


@pytest.fixture(scope="session")
def long_tiny_package(tiny_package_factory) -> Path:
    return tiny_package_factory("q4f32", max_position_embeddings=CONTEXT)


@pytest.fixture(scope="session")
def sim_binary(tmp_path_factory: pytest.TempPathFactory) -> Path:
    require_tool("gcc")
    build_dir = tmp_path_factory.mktemp("firmware-build")
    build("sim", build_dir)
    return build_dir / "edge-bridge-sim"


@pytest.fixture
def sim(sim_binary: Path, tmp_path: Path) -> Iterator[Simulator]:
    simulator = Simulator.start(sim_binary, tmp_path / "journal.jsonl")
    yield simulator
    simulator.stop()


@pytest.fixture
def device(sim: Simulator) -> Iterator[Device]:
    with Device.open(sim.path, LinkConfig(timeout=0.1, retries=2)) as dev:
        yield dev


@pytest.fixture
def audit(tmp_path: Path) -> AuditLog:
    return AuditLog(tmp_path / "audit.jsonl")
