"""The microcontroller's Home Assistant entities: which platform each actuator gets, the number's
envelope, and what a command payload may hold."""

from __future__ import annotations

import pytest

from edge_os.agent import Policy, PolicyState
from edge_os.mqtt.ha_entities import McuEntities, platform_of
from edge_os.mqtt.ha_mcu import parse_command
from firmware_bridge import ActuatorInfo, Capabilities, SensorInfo

CAPS = Capabilities("fw", "2.1", 64,
                    (SensorInfo(0, "soil moisture", "%RH", 0, 100), SensorInfo(1, "co2", "ppm", 0, 5000)),
                    (ActuatorInfo(0, "pump", "", values=(0, 1)), ActuatorInfo(1, "dimmer", "%", min=0, max=100),
                     ActuatorInfo(2, "reset", "", values=(1,)), ActuatorInfo(3, "mode", "", values=(0, 2, 5))))


@pytest.mark.parametrize("index, platform", [(0, "switch"), (1, "number"), (2, "button"), (3, "select")])
def test_each_kind_of_actuator_gets_the_platform_that_fits(index: int, platform: str) -> None:
    assert platform_of(CAPS.actuators[index]) == platform


def test_configs_name_topics_safely_and_narrow_a_number_to_the_policy() -> None:
    policy = Policy.from_dict({"actuators": {"dimmer": {"min": 10, "max": 60}}})
    configs = McuEntities("kitchen/1", "homeassistant").configs(CAPS, policy)
    assert sorted(configs) == [
        "homeassistant/button/kitchen_1_mcu/reset/config", "homeassistant/number/kitchen_1_mcu/dimmer/config",
        "homeassistant/select/kitchen_1_mcu/mode/config", "homeassistant/sensor/kitchen_1_mcu/co2/config",
        "homeassistant/sensor/kitchen_1_mcu/soil_moisture/config", "homeassistant/switch/kitchen_1_mcu/pump/config"]
    dimmer = configs["homeassistant/number/kitchen_1_mcu/dimmer/config"]
    assert (dimmer["min"], dimmer["max"]) == (10, 60)
    assert dimmer["command_topic"] == "edge-os/kitchen/1/ha/mcu/actuator/dimmer/set"
    moisture = configs["homeassistant/sensor/kitchen_1_mcu/soil_moisture/config"]
    assert (moisture["device_class"], moisture["unit_of_measurement"]) == ("humidity", "%")
    assert configs["homeassistant/button/kitchen_1_mcu/reset/config"]["payload_press"] == "1"
    assert configs["homeassistant/select/kitchen_1_mcu/mode/config"]["options"] == ["0", "2", "5"]
    unique = {c["unique_id"] for c in configs.values()}
    assert len(unique) == len(configs)


@pytest.mark.parametrize("body, value", [(b"80", 80), (b" 1\n", 1), (b"80.0", 80), (b"-3", -3)])
def test_a_command_is_one_integer(body: bytes, value: int) -> None:
    assert parse_command(body) == value


@pytest.mark.parametrize("body", [b"", b"on", b"1.5", b"nan", b"inf", b"\xff", b"9" * 65, b'{"value": 1}'])
def test_anything_else_is_refused_with_a_reason(body: bytes) -> None:
    with pytest.raises(ValueError) as err:
        parse_command(body)
    assert str(err.value) and "\n" not in str(err.value)


def test_policy_state_tells_its_watchers_what_an_actuator_may_hold() -> None:
    state, seen = PolicyState(), []
    state.watch(lambda actuator, values: seen.append((actuator, values)))
    state.record("fan", 80, 0.0, acknowledged=True)
    state.record("fan", 90, 1.0, acknowledged=False)  # may or may not have run
    assert seen == [("fan", frozenset({80})), ("fan", frozenset({80, 90}))]
