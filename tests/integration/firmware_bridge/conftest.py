"""Fixtures: the C simulator, compiled once per session with the project's Makefile."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from .sim import Simulator, build, require_tool


@pytest.fixture(scope="session")
def sim_binary() -> None:
    require_tool("gcc")
    build("sim")


@pytest.fixture
def sim(sim_binary: None, tmp_path) -> Iterator[Simulator]:
    simulator = Simulator.start(tmp_path / "journal.jsonl")
    yield simulator
    simulator.stop()
