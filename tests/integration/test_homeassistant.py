"""Home Assistant MQTT discovery on a real broker, checked against HA's documented schema.

The key sets below are those Home Assistant documents for MQTT discovery of the ``sensor`` platform
(https://www.home-assistant.io/integrations/sensor.mqtt/, the shared ``device``, ``availability``
and ``origin`` blocks of https://www.home-assistant.io/integrations/mqtt/), with the units its
sensor device classes accept.
"""

from __future__ import annotations

import json
import tempfile
import threading
from pathlib import Path

import jinja2
import paho.mqtt.client as paho
import pytest

from edge_os.mqtt import BridgeConfig, BrokerConfig, MqttFrontDoor
from edge_os.package.tflite import pack_tflite, read_manifest
from edge_os.scheduler.service import ServeOptions, Service, build_scheduler
from tests.integration.conftest import FAST_BACKOFF
from tests.integration.mqtt_harness import Mosquitto, Requester
from tests.simulated_sysfs import SimulatedDevice
from tests.tflite_models import keyword_spotting_model
from tests.waiting import wait_until

SENSOR_KEYS = {
    "availability", "availability_mode", "availability_template", "availability_topic", "default_entity_id",
    "device", "device_class", "enabled_by_default", "encoding", "entity_category", "entity_picture",
    "expire_after", "force_update", "icon", "json_attributes_template", "json_attributes_topic",
    "last_reset_value_template", "name", "options", "origin", "payload_available", "payload_not_available",
    "platform", "qos", "state_class", "state_topic", "suggested_display_precision", "unique_id",
    "unit_of_measurement", "value_template",
}
DEVICE_KEYS = {"configuration_url", "connections", "hw_version", "identifiers", "manufacturer", "model", "model_id",
               "name", "serial_number", "suggested_area", "sw_version", "via_device"}
AVAILABILITY_KEYS = {"payload_available", "payload_not_available", "topic", "value_template"}
ORIGIN_KEYS = {"name", "sw_version", "support_url"}
STATE_CLASSES = {"measurement", "measurement_angle", "total", "total_increasing"}
ENTITY_CATEGORIES = {"config", "diagnostic"}
UNITS = {"temperature": {"°C", "°F", "K"},
         "data_size": {"bit", "kbit", "Mbit", "Gbit", "B", "kB", "MB", "GB", "TB", "PB", "EB", "ZB", "YB", "KiB", "MiB",
                       "GiB", "TiB", "PiB", "EiB", "ZiB", "YiB"}}
PREFIX = "homeassistant"
DEVICE = "real"


class Watcher:
    """A subscriber that keeps the last payload and retain flag of every topic."""

    def __init__(self, port: int, *topics: str) -> None:
        self.last: dict[str, tuple[bytes, bool]] = {}
        self.seen: list[tuple[str, bytes, bool]] = []
        self._lock = threading.Lock()
        self.client = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id=f"watch-{id(self)}",
                                  protocol=paho.MQTTv5)
        self.client.on_message = self._on_message
        self.client.on_connect = lambda c, *_: [c.subscribe(t, qos=1) for t in topics]
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()

    def _on_message(self, _c, _u, msg) -> None:
        with self._lock:
            self.last[msg.topic] = (msg.payload, bool(msg.retain))
            self.seen.append((msg.topic, msg.payload, bool(msg.retain)))

    def configs(self) -> dict[str, dict]:
        with self._lock:
            return {t: json.loads(p) for t, (p, _) in self.last.items() if t.endswith("/config") and p}

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@pytest.fixture(scope="module")
def kws(tmp_path_factory):
    return pack_tflite(keyword_spotting_model(), tmp_path_factory.mktemp("kws") / "kws", name="kws")


@pytest.fixture
def service(mosquitto: Mosquitto, tmp_path: Path, kws: Path):
    device = SimulatedDevice(tmp_path / "device")
    socket_dir = Path(tempfile.mkdtemp(prefix="eos-", dir="/tmp"))
    options = ServeOptions(models=(kws,), threads=1, keep_alive="1", socket=socket_dir / "scheduler.sock",
                           thermal_root=device.thermal_dir, power_root=device.power_dir, meminfo=device.meminfo_path)
    config = BridgeConfig(BrokerConfig.from_url(mosquitto.url), device_id=DEVICE, state_dir=tmp_path / "state",
                          backoff=FAST_BACKOFF, homeassistant=PREFIX, homeassistant_interval_s=0.2)
    door = MqttFrontDoor(config)
    svc = Service(build_scheduler(options), options.socket)
    svc.attach(door)
    svc.start()
    assert door.bridge.wait_connected(10)
    yield svc
    svc.stop()


def check_sensor(topic: str, config: dict, state: dict) -> None:
    """One discovery config, field by field."""
    assert set(config) <= SENSOR_KEYS, set(config) - SENSOR_KEYS
    parts = topic.split("/")
    assert len(parts) == 5 and parts[0] == PREFIX and parts[1] == "sensor" and parts[4] == "config"
    assert all(part.replace("_", "").replace("-", "").isalnum() for part in parts[2:4])  # node_id, object_id
    assert isinstance(config["state_topic"], str) and config["state_topic"] == f"edge-os/{DEVICE}/ha/state"
    assert isinstance(config["unique_id"], str) and isinstance(config["name"], str)
    assert config["default_entity_id"].startswith("sensor.") and config["default_entity_id"].islower()
    device = config["device"]
    assert set(device) <= DEVICE_KEYS and device["identifiers"] and isinstance(device["identifiers"], list)
    assert all(isinstance(device[k], str) for k in ("name", "manufacturer", "model", "sw_version", "hw_version"))
    (availability,) = config["availability"]
    assert set(availability) <= AVAILABILITY_KEYS and availability["topic"] == f"edge-os/{DEVICE}/status"
    assert set(config["origin"]) <= ORIGIN_KEYS and config["origin"]["name"] == "edge-os"
    assert config.get("state_class", "measurement") in STATE_CLASSES
    assert config.get("entity_category", "diagnostic") in ENTITY_CATEGORIES
    if "device_class" in config:
        assert config["unit_of_measurement"] in UNITS[config["device_class"]]
    env = jinja2.Environment()
    value = env.from_string(config["value_template"]).render(value_json=state)
    if config.get("state_class") == "measurement" and value != "None":
        float(value)  # a measurement's state is a number
    if "json_attributes_template" in config:
        assert isinstance(json.loads(env.from_string(config["json_attributes_template"]).render(value_json=state)),
                          dict)


def test_discovery_configs_follow_home_assistants_schema_and_models_come_and_go(service, mosquitto, kws):
    watcher = Watcher(mosquitto.port, f"{PREFIX}/#", f"edge-os/{DEVICE}/#")
    requester = Requester(mosquitto.port, "asker")
    try:
        device_sensors = {"temperature", "governor", "memory_used", "tok_s", "loaded_models"}
        node_topics = {f"{PREFIX}/sensor/{DEVICE}/{s}/config" for s in device_sensors}
        configs = wait_until(lambda: node_topics <= set(c := watcher.configs()) and c, 10,
                             what="the device's discovery configs")
        state_topic = f"edge-os/{DEVICE}/ha/state"
        state = json.loads(wait_until(lambda: watcher.last.get(state_topic), 10, what="the state")[0])
        for topic, config in configs.items():
            check_sensor(topic, config, state)
        assert len({c["unique_id"] for c in configs.values()}) == len(configs)
        assert state["temperature_c"] is not None and state["governor"] == "NORMAL"

        # Availability: the retained status, rendered by the availability template, is "online".
        (availability,) = configs[f"{PREFIX}/sensor/{DEVICE}/tok_s/config"]["availability"]
        status = json.loads(wait_until(lambda: watcher.last.get(availability["topic"]), 10)[0])
        rendered = jinja2.Environment().from_string(availability["value_template"]).render(value_json=status)
        assert rendered == availability["payload_available"]

        # A model that loads gets an entity; when it unloads (keep-alive 1 s) the entity is removed.
        model_topic = f"{PREFIX}/sensor/{DEVICE}/model_kws/config"
        spec = read_manifest(kws).inputs[0]
        requester.ask({"model": "kws", "inputs": [[[0] * spec.shape[2]] * spec.shape[1]]}, b"load",
                      topic=f"edge-os/{DEVICE}/req")
        model_config = wait_until(lambda: watcher.configs().get(model_topic), 10, what="the model's entity")
        state = wait_until(lambda: "kws" in (d := json.loads(watcher.last[state_topic][0]))["models"] and d, 10,
                           what="the state with the model")  # published right after the configs
        check_sensor(model_topic, model_config, state)
        assert float(jinja2.Environment().from_string(model_config["value_template"]).render(value_json=state)) > 0
        wait_until(lambda: watcher.last.get(model_topic, (None,))[0] == b"", 15,
                   what="the empty retained config that removes the model's entity")
        # What a Home Assistant connecting now finds retained: the device sensors, no model entity.
        late = Watcher(mosquitto.port, f"{PREFIX}/#", state_topic)
        try:
            wait_until(lambda: node_topics | {state_topic} <= set(late.last), 10, what="what a newcomer finds")
            assert all(late.last[t][1] for t in node_topics | {state_topic})  # delivered as retained messages
            assert model_topic not in late.last
        finally:
            late.close()
    finally:
        requester.close()
        watcher.close()


def test_stopping_the_device_makes_its_entities_unavailable(service, mosquitto):
    watcher = Watcher(mosquitto.port, f"edge-os/{DEVICE}/status", f"{PREFIX}/#")
    try:
        topic = f"{PREFIX}/sensor/{DEVICE}/tok_s/config"
        config = wait_until(lambda: watcher.configs().get(topic), 10, what="a config")
        (availability,) = config["availability"]
        service.stop()
        status = wait_until(lambda: (p := watcher.last.get(availability["topic"])) and json.loads(p[0])["state"]
                            == "offline" and json.loads(p[0]), 10, what="offline")
        rendered = jinja2.Environment().from_string(availability["value_template"]).render(value_json=status)
        assert rendered == availability["payload_not_available"]
    finally:
        watcher.close()


def test_an_entity_left_retained_by_an_earlier_run_is_removed(service, mosquitto):
    stale = f"{PREFIX}/sensor/{DEVICE}/model_gone/config"
    watcher = Watcher(mosquitto.port, f"{PREFIX}/#")
    try:
        wait_until(lambda: f"{PREFIX}/sensor/{DEVICE}/tok_s/config" in watcher.configs(), 10, what="configs")
        publisher = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id="earlier-run", protocol=paho.MQTTv5)
        publisher.connect("127.0.0.1", mosquitto.port)
        publisher.loop_start()
        publisher.publish(stale, json.dumps({"name": "Model gone", "state_topic": "x"}), qos=1, retain=True)
        wait_until(lambda: watcher.last.get(stale, (None,))[0] == b"", 10, what="the stale entity removed")
        publisher.disconnect()
        publisher.loop_stop()
    finally:
        watcher.close()
