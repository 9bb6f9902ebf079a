"""The policy file and the checks it drives; tools from Python functions; argument checking."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import pytest

from edge_os.agent import Policy, PolicyState, tool
from edge_os.agent.policy import check
from edge_os.agent.tools import AgentTool, check_arguments, relevant
from edge_os.errors import InputError


def test_the_policy_file(tmp_path: Path) -> None:
    path = tmp_path / "policy.toml"
    path.write_text('dry_run = true\n[actuators.fan]\nmin = 10\nmax = 90\nmax_per_minute = 2\nconfirm = true\n'
                    '[tools]\nallow = ["water"]\n[audit]\nmax_entries = 100\n')
    policy = Policy.load(path)
    assert policy.dry_run and policy.allowed_tools == {"water"} and policy.audit_max_entries == 100
    fan = policy.actuators["fan"]
    assert (fan.min, fan.max, fan.max_per_minute, fan.confirm) == (10, 90, 2, True)


@pytest.mark.parametrize("text, message", [
    ("[actuators.fan]\nmaxx = 3\n", "unknown key(s) ['maxx']"),
    ("[actuators.fan]\nmin = 5\nmax = 1\n", "min 5 is above max 1"),
    ("[actuators.fan]\nmax = 'high'\n", "actuators.fan.max must be an integer"),
    ("confirm_timeout_s = 0\n", "confirm_timeout_s must be a number of seconds > 0"),
    ("[actuators.fan\n", "is not valid TOML"),
])
def test_bad_policy_files_say_what_is_wrong(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "policy.toml"
    path.write_text(text)
    with pytest.raises(InputError, match="policy") as error:
        Policy.load(path)
    assert message in str(error.value)


def test_deny_by_default() -> None:
    state = PolicyState()
    assert not check(Policy(), state, "fan", "set_fan", 1, 0).allowed
    assert not check(Policy(), state, None, "water", None, 0).allowed
    assert check(Policy(allowed_tools=frozenset({"water"})), state, None, "water", None, 0).allowed


def test_rate_window_slides() -> None:
    policy = Policy.from_dict({"actuators": {"fan": {"max_per_minute": 2}}})
    state = PolicyState()
    for at in (0.0, 10.0):
        assert check(policy, state, "fan", "set_fan", 5, at).allowed
        state.record("fan", 5, at, acknowledged=True)
    assert not check(policy, state, "fan", "set_fan", 5, 59.0).allowed
    assert check(policy, state, "fan", "set_fan", 5, 60.5).allowed


def test_an_unacknowledged_command_leaves_both_values_possible() -> None:
    policy = Policy.from_dict({"actuators": {"fan": {"max_step": 50}}})
    state = PolicyState()
    state.record("fan", 40, 0, acknowledged=True)
    state.record("fan", 90, 1, acknowledged=False)  # may or may not have run
    assert check(policy, state, "fan", "set_fan", 70, 2).allowed  # within 50 of 40 and of 90
    assert not check(policy, state, "fan", "set_fan", 0, 2).allowed  # 90 away from 90


def test_tools_from_functions() -> None:
    @tool
    def forecast(city: str, days: int = 1, unit: Literal["C", "F"] = "C", hours: list[int] | None = None) -> dict:
        """The forecast for a city.

        More text that the model does not need.
        """
        return {}

    assert isinstance(forecast, AgentTool) and not forecast.acting
    assert forecast.description == "The forecast for a city."
    assert forecast.parameters["required"] == ["city"]
    assert forecast.parameters["properties"]["unit"] == {"enum": ["C", "F"]}
    assert forecast.parameters["properties"]["hours"] == {"type": "array", "items": {"type": "integer"}}


def test_tool_types_that_cannot_be_described_are_refused() -> None:
    with pytest.raises(InputError, match="parameter when has type"):
        @tool
        def bad(when: object) -> None:
            """."""


def test_tool_decorator_marks_acting() -> None:
    @tool(acting=True)
    def water(litres: float) -> None:
        """Water."""

    assert water.acting and water.parameters["properties"]["litres"] == {"type": "number"}


@pytest.mark.parametrize("arguments, problem", [
    ({}, "missing argument(s) ['value']"),
    ({"value": "1"}, "must be an integer"),
    ({"value": True}, "must be an integer"),
    ({"value": 300}, "must be at most 255"),
    ({"value": 1, "x": 2}, "unknown argument(s) ['x']"),
    ([1], "arguments must be a JSON object"),
])
def test_check_arguments(arguments, problem: str) -> None:
    schema = {"type": "object", "properties": {"value": {"type": "integer", "minimum": 0, "maximum": 255}},
              "required": ["value"], "additionalProperties": False}
    assert problem in check_arguments(schema, arguments)
    assert check_arguments(schema, {"value": 255}) is None and check_arguments(schema, {"value": 3.0}) is None


def test_only_relevant_tools_when_there_are_many() -> None:
    tools = [AgentTool(f"read_{n}", f"Read the {n} sensor", {}, lambda a: {}) for n in
             ("temperature", "humidity", "light", "soil", "wind", "rain")]
    picked = relevant(tools, "read the wind and the rain", 2)
    assert [t.name for t in picked] == ["read_wind", "read_rain"]
    assert relevant(tools, "anything", 10) == tools


def test_the_greenhouse_example_policy() -> None:
    policy = Policy.load(Path(__file__).resolve().parents[3] / "examples" / "greenhouse" / "policy.toml")
    assert set(policy.actuators) == {"fan", "led", "relay"} and policy.actuators["relay"].confirm
    state = PolicyState()
    assert check(policy, state, "fan", "set_fan", 100, 0).allowed
    assert not check(policy, state, "fan", "set_fan", 255, 0).allowed
