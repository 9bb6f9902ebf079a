"""Pipelines on real parts: the C firmware simulator on a pty streams a sensor, a real TFLite model
runs in serve's scheduler, events go to a real mosquitto, and a (tiny, real) LLM gets the question."""

from __future__ import annotations

import json
import tempfile
import threading
from pathlib import Path

import numpy as np
import paho.mqtt.client as paho
import pytest

from edge_os.mqtt import BridgeConfig, BrokerConfig, MqttFrontDoor
from edge_os.package.tflite import load_model, pack_tflite
from edge_os.pipelines.config import parse_pipelines
from edge_os.pipelines.runner import PipelineRunner
from edge_os.scheduler.service import ServeOptions, Service, build_scheduler
from tests.bounded_cli import assert_one_line_error, run_edge_os
from tests.integration.conftest import FAST_BACKOFF
from tests.simulated_sysfs import SimulatedDevice
from tests.tflite_models import sine_model
from tests.waiting import wait_until


@pytest.fixture(scope="module")
def sine(tmp_path_factory):
    return pack_tflite(sine_model(), tmp_path_factory.mktemp("sine") / "sine", name="sine")


def collect(port: int, topic: str) -> tuple[list[dict], paho.Client]:
    got, lock = [], threading.Lock()
    client = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id="events", protocol=paho.MQTTv5)
    client.on_connect = lambda c, *_: c.subscribe(topic, qos=1)

    def on_message(_c, _u, msg):
        with lock:
            got.append(json.loads(msg.payload))

    client.on_message = on_message
    client.connect("127.0.0.1", port)
    client.loop_start()
    return got, client


def serve(tmp_path, mosquitto, packages, toml: str) -> tuple[Service, PipelineRunner]:
    device = SimulatedDevice(tmp_path / "device")
    socket_dir = Path(tempfile.mkdtemp(prefix="eos-", dir="/tmp"))
    options = ServeOptions(models=tuple(packages), threads=1, context=256, socket=socket_dir / "s.sock",
                           thermal_root=device.thermal_dir, power_root=device.power_dir, meminfo=device.meminfo_path)
    door = MqttFrontDoor(BridgeConfig(BrokerConfig.from_url(mosquitto.url), device_id="real",
                                      state_dir=tmp_path / "state", backoff=FAST_BACKOFF))
    runner = PipelineRunner.for_packages(parse_pipelines(toml, "p.toml"), tuple(packages),
                                         lambda: door.bridge.publish_event, has_mqtt=True)
    svc = Service(build_scheduler(options), options.socket)
    svc.attach(door)
    svc.attach(runner)
    svc.start()
    return svc, runner


def test_readings_run_the_model_and_a_condition_sends_an_event_and_asks_the_llm(tmp_path, sim, mosquitto, sine,
                                                                                  tiny_package):
    events, client = collect(mosquitto.port, "edge-os/real/events/#")
    toml = f"""
[[pipeline]]
name = "always"
port = "{sim.path}"
sensor = "temperature"
period_ms = 50
model = "sine"
when = {{ output = 0, index = 0, above = -100.0 }}
ask = "The sine of {{sensor}} is {{score:.3f}}. Say hi."
cooldown_s = 3600

[[pipeline]]
name = "never"
port = "{sim.path}"
sensor = "humidity"
period_ms = 50
model = "sine"
when = {{ output = 0, below = -100.0 }}
"""
    svc, runner = serve(tmp_path, mosquitto, [tiny_package, sine], toml)
    try:
        answer = wait_until(lambda: next((e for e in events if e["type"] == "answer"), None), 120,
                            what="the LLM's answer event")
        event = next(e for e in events if e["type"] == "event")
        assert event["pipeline"] == "always" and event["sensor"] == "temperature" and len(event["values"]) == 1
        _, model = load_model(sine)
        (want,) = model.run(np.array([event["values"]], np.float32)).values()
        assert event["score"] == pytest.approx(float(want[0, 0]))  # what the model says of that reading
        assert isinstance(answer["answer"], str) and answer["score"] == event["score"]
        wait_until(lambda: runner.stats()["never"]["runs"] >= 3, 30, what="the other pipeline running")
        stats = runner.stats()
        assert stats["always"]["fired"] == 1  # the cooldown holds it to one
        assert stats["never"]["fired"] == 0 and not any(e["pipeline"] == "never" for e in events)
        assert stats["always"]["errors"] == stats["never"]["errors"] == 0
    finally:
        svc.stop()
        client.disconnect()
        client.loop_stop()


def test_a_pipeline_naming_a_sensor_the_device_lacks_is_one_line(tmp_path, sim, sine):
    toml = tmp_path / "p.toml"
    toml.write_text(f'[[pipeline]]\nname = "x"\nport = "{sim.path}"\nsensor = "pressure"\nperiod_ms = 100\n'
                    'model = "sine"\nevent = false\n')
    result = run_edge_os("serve", "--models", str(sine), "--pipeline", str(toml), "--socket", str(tmp_path / "s"),
                         "--memory-budget", "64M")
    assert_one_line_error(result, "unknown sensor 'pressure'", "temperature")


@pytest.mark.parametrize("body, fragment", [
    ('model = "nope"', "not a TFLite model served here"),
    ('model = "sine"\nwindow = 3', "window 3 does not fill"),
    ('model = "sine"\nevent = true', "give --mqtt"),
    ('model = "sine"\nevent = false\nwhen = { output = 4, above = 1 }', "does not have"),
])
def test_a_pipeline_naming_what_is_not_served_is_one_line(tmp_path, sine, body, fragment):
    toml = tmp_path / "p.toml"
    toml.write_text(f'[[pipeline]]\nname = "x"\nport = "/dev/null"\nsensor = "t"\nperiod_ms = 100\n{body}\n')
    result = run_edge_os("serve", "--models", str(sine), "--pipeline", str(toml), "--socket", str(tmp_path / "s"))
    assert_one_line_error(result, fragment)
