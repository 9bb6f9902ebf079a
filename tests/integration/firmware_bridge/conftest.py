"""Fixtures: the C simulator, compiled once per session with the project's Makefile into a temporary
directory."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from .sim import Simulator, build, require_tool


@pytest.fixture(scope="session")
def sim_binary(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The simulator's executable, built once per session."""
    require_tool("gcc")
    build_dir = tmp_path_factory.mktemp("firmware-build")
    build("sim", build_dir)
    return build_dir / "edge-bridge-sim"


@pytest.fixture
def sim(sim_binary: Path, tmp_path) -> Iterator[Simulator]:
    simulator = Simulator.start(sim_binary, tmp_path / "journal.jsonl")
    yield simulator
    simulator.stop()
