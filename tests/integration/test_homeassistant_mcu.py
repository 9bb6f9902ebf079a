"""The microcontroller's sensors and actuators as Home Assistant entities: a real mosquitto, the C
firmware simulator on a pty, the agent's real policy and audit log.

Key sets are those Home Assistant documents for MQTT discovery of ``sensor``
(https://www.home-assistant.io/integrations/sensor.mqtt/), ``switch`` (.../switch.mqtt/) and
``number`` (.../number.mqtt/), with the shared ``device``, ``availability`` and ``origin`` blocks of
https://www.home-assistant.io/integrations/mqtt/. Commands are published the way Home Assistant
publishes them: the configured payload, QoS 1, not retained, on the entity's command topic.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Iterator
from pathlib import Path

import jinja2
import paho.mqtt.client as paho
import pytest

from edge_os.agent import AuditLog, Policy, from_device
from edge_os.api.agent_runs import AgentRuns, RunRequest
from edge_os.mqtt import BridgeConfig, BrokerConfig, MqttBridge
from edge_os.mqtt.ha_entities import command_topic
from firmware_bridge import Device
from firmware_bridge.link import LinkConfig
from tests.integration.agent.scripted_model import ScriptedModel, call
from tests.integration.conftest import FAST_BACKOFF
from tests.integration.echo_scheduler import EchoScheduler
from tests.integration.firmware_bridge.sim import Simulator
from tests.integration.mqtt_harness import Mosquitto
from tests.integration.test_homeassistant import AVAILABILITY_KEYS, DEVICE_KEYS, ORIGIN_KEYS, SENSOR_KEYS, Watcher
from tests.waiting import wait_until

COMMON_KEYS = {
    "availability", "availability_mode", "availability_template", "availability_topic", "default_entity_id",
    "device", "enabled_by_default", "encoding", "entity_category", "entity_picture", "icon",
    "json_attributes_template", "json_attributes_topic", "name", "origin", "payload_available",
    "payload_not_available", "platform", "qos", "unique_id",
}  # fmt: skip
SWITCH_KEYS = COMMON_KEYS | {"command_template", "command_topic", "device_class", "optimistic", "payload_off",
                             "payload_on", "retain", "state_off", "state_on", "state_topic", "value_template"}
NUMBER_KEYS = COMMON_KEYS | {"command_template", "command_topic", "device_class", "max", "min", "mode", "optimistic",
                             "payload_reset", "retain", "state_topic", "step", "unit_of_measurement", "value_template"}
SENSOR_UNITS = {"temperature": {"°C", "°F", "K"}, "humidity": {"%"}, "illuminance": {"lx"}}
PREFIX = "homeassistant"
DEVICE = "dev1"
NODE = f"{DEVICE}_mcu"
ROOT = f"edge-os/{DEVICE}/ha/mcu"
ERRORS = f"{ROOT}/error"
SENSORS = {"temperature", "humidity", "light", "button"}
POLICY = {"actuators": {"fan": {"min": 0, "max": 120, "max_per_minute": 3, "max_step": 100},
                        "led": {}, "relay": {"confirm": True}}}


def config_topic(platform: str, name: str) -> str:
    return f"{PREFIX}/{platform}/{NODE}/{name}/config"


ENTITIES = {config_topic("sensor", s) for s in SENSORS} | {
    config_topic("switch", "led"), config_topic("switch", "relay"), config_topic("number", "fan")}


class StatusScheduler(EchoScheduler):
    """The echo scheduler, answering ``status()`` in the real scheduler's shape (the edge-os device's
    own entities are built from it)."""

    def status(self) -> dict:
        return {"thermal": {"zones": [{"temp_c": 41.5}]}, "governor": {"level": "NORMAL"},
                "memory": {"accounted_bytes": 1 << 20, "budget_bytes": 1 << 30}, "tok_s": 0.0, "models": []}


@pytest.fixture
def device(sim: Simulator) -> Iterator[Device]:
    # Generous retransmission: on a loaded machine the simulator may take a while to answer HELLO.
    with Device.open(sim.path, LinkConfig(timeout=0.2, retries=5)) as dev:
        yield dev


@pytest.fixture
def audit(tmp_path: Path) -> AuditLog:
    return AuditLog(tmp_path / "audit.jsonl")


@pytest.fixture
def watcher(mosquitto: Mosquitto) -> Iterator[Watcher]:
    w = Watcher(mosquitto.port, f"{PREFIX}/#", f"edge-os/{DEVICE}/#")
    yield w
    w.close()


@pytest.fixture
def start(mosquitto: Mosquitto, device: Device, audit: AuditLog, tmp_path: Path) -> Iterator[Callable[..., tuple]]:
    """``start(policy, turns=())`` -> (bridge, runs): serve's MQTT bridge with Home Assistant discovery
    and the agent on the simulator, online on the broker."""
    bridges: list[MqttBridge] = []

    def go(policy: dict = POLICY, turns: tuple = ()) -> tuple[MqttBridge, AgentRuns]:
        runs = AgentRuns(from_device(device), Policy.from_dict(policy), audit, model=ScriptedModel(list(turns)),
                         device=device)
        config = BridgeConfig(BrokerConfig.from_url(mosquitto.url), device_id=DEVICE, state_dir=tmp_path / "state",
                              telemetry_interval_s=60.0, backoff=FAST_BACKOFF, homeassistant=PREFIX,
                              homeassistant_interval_s=0.2)
        bridge = MqttBridge(StatusScheduler(), config, agent=runs).start()
        bridges.append(bridge)
        assert bridge.wait_connected(10), "bridge did not connect"
        return bridge, runs

    yield go
    for bridge in bridges:
        bridge.stop()


class Commander:
    """Publishes commands as Home Assistant does (QoS 1, not retained)."""

    def __init__(self, port: int) -> None:
        self.client = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id="home-assistant", protocol=paho.MQTTv5)
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()

    def send(self, topic: str, payload: bytes | str) -> None:
        self.client.publish(topic, payload, qos=1, retain=False).wait_for_publish(5)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@pytest.fixture
def ha(mosquitto: Mosquitto) -> Iterator[Commander]:
    commander = Commander(mosquitto.port)
    yield commander
    commander.close()


def payload(watcher: Watcher, topic: str) -> bytes | None:
    return watcher.last.get(topic, (None,))[0]


def errors(watcher: Watcher) -> list[dict]:
    return [json.loads(p) for t, p, _ in list(watcher.seen) if t == ERRORS]


def entries(audit: AuditLog, kind: str) -> list[dict]:
    return [e["data"] for e in audit.entries() if e["kind"] == kind]


def check_common(config: dict, platform: str, keys: set[str]) -> None:
    assert set(config) <= keys, set(config) - keys
    assert isinstance(config["name"], str) and config["unique_id"].startswith("edge-os_")
    assert config["default_entity_id"].startswith(f"{platform}.") and config["default_entity_id"].islower()
    device = config["device"]
    assert set(device) <= DEVICE_KEYS and device["identifiers"] == [f"edge-os_{NODE}"]
    assert (device["model"], device["sw_version"]) == ("edge-bridge-sim", "1.0.0")  # from the firmware's HELLO
    assert device["via_device"] == f"edge-os_{DEVICE}"  # the edge-os device's identifier
    assert set(config["origin"]) <= ORIGIN_KEYS and config["origin"]["name"] == "edge-os"
    assert config["availability_mode"] == "all"
    bridge, link = config["availability"]
    assert set(bridge) <= AVAILABILITY_KEYS and set(link) <= AVAILABILITY_KEYS
    assert bridge["topic"] == f"edge-os/{DEVICE}/status" and link["topic"] == f"{ROOT}/availability"


def test_sensors_and_actuators_are_announced_in_home_assistants_schema(start, watcher: Watcher, audit,
                                                                      mosquitto: Mosquitto) -> None:
    start()
    configs = wait_until(lambda: ENTITIES <= set(c := watcher.configs()) and c, 10, what="the MCU's entities")
    ids = [c["unique_id"] for t, c in configs.items() if t in ENTITIES]
    assert len(set(ids)) == len(ENTITIES)
    env = jinja2.Environment()
    for name in SENSORS:
        config = configs[config_topic("sensor", name)]
        check_common(config, "sensor", SENSOR_KEYS)
        assert config["state_class"] == "measurement"
        if "device_class" in config:
            assert config["unit_of_measurement"] in SENSOR_UNITS[config["device_class"]]
        reading = wait_until(lambda c=config: payload(watcher, c["state_topic"]), 10, what=f"a {name} reading")
        float(reading)  # a measurement's state is a number
    assert configs[config_topic("sensor", "temperature")]["device_class"] == "temperature"
    assert configs[config_topic("sensor", "humidity")]["unit_of_measurement"] == "%"  # the firmware says %RH
    assert configs[config_topic("sensor", "light")]["device_class"] == "illuminance"
    assert "unit_of_measurement" not in configs[config_topic("sensor", "button")]
    for name in ("led", "relay"):
        config = configs[config_topic("switch", name)]
        check_common(config, "switch", SWITCH_KEYS)
        assert (config["payload_on"], config["payload_off"], config["state_on"], config["state_off"]) == ("1", "0", "1",
                                                                                                          "0")
        assert config["command_topic"] == f"{ROOT}/actuator/{name}/set" and config["retain"] is False
        assert payload(watcher, config["state_topic"]) in (b"None", None)  # nothing acknowledged yet: unknown
    fan = configs[config_topic("number", "fan")]
    check_common(fan, "number", NUMBER_KEYS)
    assert (fan["min"], fan["max"], fan["step"], fan["mode"]) == (0, 120, 1, "slider")  # device 0..255, policy ..120
    assert fan["unit_of_measurement"] == "pwm"
    # Availability: both topics say available, so (mode "all") the entities are available.
    for availability in fan["availability"]:
        raw = wait_until(lambda a=availability: payload(watcher, a["topic"]), 10, what="availability")
        template = availability.get("value_template")
        value = env.from_string(template).render(value_json=json.loads(raw)) if template else raw.decode()
        assert value == availability.get("payload_available", "online")
    # A Home Assistant connecting later finds every config and every reading retained.
    late = Watcher(mosquitto.port, f"{PREFIX}/+/{NODE}/+/config", f"{ROOT}/sensor/+/state")
    try:
        wanted = ENTITIES | {f"{ROOT}/sensor/{s}/state" for s in SENSORS}
        wait_until(lambda: wanted <= set(late.last), 10, what="the retained configs and readings")
        assert all(late.last[t][1] for t in wanted)
    finally:
        late.close()
    # via_device names the edge-os device that the bridge's own entities belong to.
    host = wait_until(lambda: watcher.configs().get(f"{PREFIX}/sensor/{DEVICE}/tok_s/config"), 10, what="the host")
    assert fan["device"]["via_device"] in host["device"]["identifiers"]
    assert audit.entries() == []  # announcing acts on nothing


def test_an_allowed_command_actuates_is_audited_and_shows_the_acknowledged_state(start, watcher, ha: Commander,
                                                                                 sim: Simulator, audit) -> None:
    start()
    fan = wait_until(lambda: watcher.configs().get(config_topic("number", "fan")), 10, what="the fan entity")
    led = wait_until(lambda: watcher.configs().get(config_topic("switch", "led")), 10, what="the led entity")
    ha.send(fan["command_topic"], "80")
    wait_until(lambda: payload(watcher, fan["state_topic"]) == b"80", 10, what="the fan's acknowledged state")
    assert [(c["actuator"], c["value"]) for c in sim.commands()] == [("fan", 80)]
    ha.send(led["command_topic"], led["payload_on"])
    wait_until(lambda: payload(watcher, led["state_topic"]) == led["state_on"].encode(), 10, what="the led on")
    assert [(c["actuator"], c["value"]) for c in sim.commands()] == [("fan", 80), ("led", 1)]
    actuations = entries(audit, "actuation")
    assert [(a["actuator"], a["value"], a["origin"], a["ok"], a["acknowledged"]) for a in actuations] == [
        ("fan", 80, "homeassistant", True, True), ("led", 1, "homeassistant", True, True)]
    assert audit.verify() == []
    assert errors(watcher) == []


@pytest.mark.parametrize("actuator, platform, value, reason", [
    ("fan", "number", "200", "outside the policy's range"),
    ("relay", "switch", "1", "cannot be confirmed"),  # the policy wants a person to confirm each relay command
])  # fmt: skip
def test_a_command_the_policy_refuses_is_audited_answered_and_not_actuated(start, watcher, ha: Commander,
                                                                           sim: Simulator, audit, actuator: str,
                                                                           platform: str, value: str,
                                                                           reason: str) -> None:
    start()
    config = wait_until(lambda: watcher.configs().get(config_topic(platform, actuator)), 10, what="the entity")
    ha.send(config["command_topic"], value)
    (error,) = wait_until(lambda: errors(watcher), 10, what="the refusal")
    assert (error["code"], error["actuator"], error["value"], error["origin"]) == ("refused", actuator, int(value),
                                                                                  "homeassistant")
    assert reason in error["message"] and "\n" not in error["message"]
    (refusal,) = entries(audit, "refusal")
    assert (refusal["actuator"], refusal["value"], refusal["origin"]) == (actuator, int(value), "homeassistant")
    assert reason in refusal["reason"]
    assert entries(audit, "actuation") == [] and sim.commands() == []
    assert payload(watcher, config["state_topic"]) in (b"None", None)  # untouched: still unknown


def test_a_rate_limit_counts_agent_runs_and_home_assistant_together(start, watcher, ha: Commander, sim: Simulator,
                                                                    audit) -> None:
    policy = {"actuators": {"fan": {"max": 200, "max_per_minute": 2}}}
    bridge, runs = start(policy, turns=(call("set_fan", value=50), "The fan runs at 50."))
    fan = wait_until(lambda: watcher.configs().get(config_topic("number", "fan")), 10, what="the fan entity")
    result = runs.run(EchoScheduler(), RunRequest("Set the fan to 50"))
    assert result["steps"][0]["status"] == "ok"
    # The agent's acknowledged command shows in Home Assistant too.
    wait_until(lambda: payload(watcher, fan["state_topic"]) == b"50", 10, what="the agent's fan state")
    ha.send(fan["command_topic"], "60")
    wait_until(lambda: payload(watcher, fan["state_topic"]) == b"60", 10, what="Home Assistant's fan state")
    ha.send(fan["command_topic"], "70")  # the third in a minute: refused
    (error,) = wait_until(lambda: errors(watcher), 10, what="the refusal")
    assert error["code"] == "refused" and "2 times in the last minute" in error["message"]
    assert [c["value"] for c in sim.commands()] == [50, 60]
    assert payload(watcher, fan["state_topic"]) == b"60"
    origins = [e["data"].get("origin") for e in audit.entries() if e["kind"] in ("actuation", "refusal")]
    assert origins == [None, "homeassistant", "homeassistant"]  # the agent's entry, then Home Assistant's two
    assert audit.verify() == []


@pytest.mark.parametrize("body", [b"fan please", b"", b"1.5", b"\xff\xfe", b"nan", b"1" * 100, b'{"value": 80}'])
def test_a_garbage_command_gets_a_one_line_error_and_actuates_nothing(start, watcher, ha: Commander, sim: Simulator,
                                                                      audit, body: bytes) -> None:
    start()
    fan = wait_until(lambda: watcher.configs().get(config_topic("number", "fan")), 10, what="the fan entity")
    ha.send(fan["command_topic"], body)
    (error,) = wait_until(lambda: errors(watcher), 10, what="the error")
    assert error["code"] == "invalid_command" and error["actuator"] == "fan"
    assert "\n" not in error["message"] and "nothing was actuated" in error["message"]
    assert sim.commands() == [] and audit.entries() == []


def test_a_retained_command_is_refused_not_replayed_at_each_start(start, watcher, sim: Simulator, audit,
                                                                   mosquitto: Mosquitto) -> None:
    publisher = Commander(mosquitto.port)
    try:  # someone published a command retained: the broker hands it to every new subscriber
        publisher.client.publish(command_topic(DEVICE, "fan"), b"80", qos=1, retain=True).wait_for_publish(5)
        start()
        (error,) = wait_until(lambda: errors(watcher), 10, what="the refusal of the retained command")
        assert (error["code"], error["actuator"], error["payload"]) == ("retained_command", "fan", "80")
        assert "retain off" in error["message"] and "\n" not in error["message"]
        assert sim.commands() == [] and entries(audit, "actuation") == []
    finally:
        publisher.client.publish(command_topic(DEVICE, "fan"), b"", qos=1, retain=True).wait_for_publish(5)
        publisher.close()


def test_stopping_cleanly_keeps_the_entities_unavailable_and_stale_ones_are_removed_at_start(
        start, watcher: Watcher, mosquitto: Mosquitto) -> None:
    """Removing an entity makes Home Assistant forget what the user gave it (name, area): a restart
    must only make it unavailable. Entities the device no longer has are removed."""
    stale = config_topic("switch", "gone")
    publisher = Commander(mosquitto.port)
    try:  # an actuator an earlier firmware had, left retained by an earlier run
        publisher.client.publish(stale, json.dumps({"name": "Gone", "command_topic": "x"}), qos=1,
                                 retain=True).wait_for_publish(5)
    finally:
        publisher.close()
    bridge, _ = start()
    wait_until(lambda: ENTITIES <= set(watcher.configs()), 10, what="the MCU's entities")
    wait_until(lambda: payload(watcher, stale) == b"", 10, what="the stale entity removed")
    configs = {t: payload(watcher, t) for t in ENTITIES}
    bridge.stop()
    # A newcomer subscribes to the configs, then to the status: the broker hands over what it retains
    # for the first subscription before the second's, so once the status is in, the configs are too.
    late = Watcher(mosquitto.port, f"{PREFIX}/#", f"edge-os/{DEVICE}/ha/mcu/availability", f"edge-os/{DEVICE}/status")
    try:
        raw = wait_until(lambda: payload(late, f"edge-os/{DEVICE}/status"), 10, what="the retained status")
        assert json.loads(raw)["state"] == "offline"
        assert payload(late, f"edge-os/{DEVICE}/ha/mcu/availability") == b"offline"
        assert {t: payload(late, t) for t in ENTITIES} == configs  # every entity kept as it was announced
        assert payload(late, stale) is None  # the stale one stays removed
    finally:
        late.close()


def test_edge_os_serve_attaches_the_microcontroller_as_a_user_starts_it(tmp_path: Path, mosquitto: Mosquitto,
                                                                        sim: Simulator, tiny_package: Path) -> None:
    """`edge-os serve --mqtt URL --homeassistant --agent-port PTY --agent-policy FILE`: a command from
    Home Assistant reaches the simulator and the audit log; after SIGTERM (a clean stop) the entities
    stay, their link offline."""
    from tests.integration.test_cli_serve import start_serve, stop

    policy = tmp_path / "policy.toml"
    policy.write_text("[actuators.fan]\nmax = 120\n")
    audit = tmp_path / "audit.jsonl"
    watcher = Watcher(mosquitto.port, f"{PREFIX}/#", "edge-os/kitchen/#")
    ha = Commander(mosquitto.port)
    proc, log = start_serve(tmp_path, mosquitto, "--models", str(tiny_package), "--homeassistant",
                            "--agent-port", sim.path, "--agent-policy", str(policy), "--agent-audit", str(audit))
    try:
        fan_topic = f"{PREFIX}/number/kitchen_mcu/fan/config"
        fan = wait_until(lambda: watcher.configs().get(fan_topic), 20, what="the fan entity")
        assert (fan["min"], fan["max"]) == (0, 120)
        ha.send(fan["command_topic"], "90")
        wait_until(lambda: payload(watcher, fan["state_topic"]) == b"90", 20, what="the fan's acknowledged state")
        ha.send(fan["command_topic"], "130")
        wait_until(lambda: any(t == "edge-os/kitchen/ha/mcu/error" for t, _, _ in list(watcher.seen)), 20,
                   what="the refusal")
    finally:
        stop(proc, log)
        ha.close()
    try:
        assert [(c["actuator"], c["value"]) for c in sim.commands()] == [("fan", 90)]
        kinds = [(e["kind"], e["data"]["value"], e["data"]["origin"]) for e in AuditLog(audit).entries()]
        assert kinds == [("actuation", 90, "homeassistant"), ("refusal", 130, "homeassistant")]
        wait_until(lambda: payload(watcher, "edge-os/kitchen/ha/mcu/availability") == b"offline", 10,
                   what="the link offline at the clean stop")
        assert json.loads(payload(watcher, fan_topic))["command_topic"] == fan["command_topic"]  # kept
    finally:
        watcher.close()


def test_an_actuator_the_device_no_longer_announces_loses_its_entity(start, watcher: Watcher, device: Device) -> None:
    start()
    fan = config_topic("number", "fan")
    wait_until(lambda: ENTITIES <= set(watcher.configs()), 10, what="the MCU's entities")
    # What a reconnect's HELLO does when the board came back with firmware that has no fan.
    device.capabilities = dataclasses.replace(device.capabilities,
                                              actuators=tuple(a for a in device.capabilities.actuators
                                                              if a.name != "fan"))
    wait_until(lambda: payload(watcher, fan) == b"", 10, what="the fan's entity removed")
    assert ENTITIES - {fan} <= set(watcher.configs())  # the others stay
