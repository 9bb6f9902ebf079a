"""Fixtures for integration tests: a real mosquitto broker and MQTT bridges on it, and the C
firmware simulator on a pty (compiled once per session into a temporary directory)."""

from __future__ import annotations

import logging
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from edge_os.mqtt import Backoff, BridgeConfig, BrokerConfig, MqttBridge, MqttFrontDoor
from edge_os.scheduler.service import ServeOptions, Service, build_scheduler
from tests.integration.echo_scheduler import EchoScheduler
from tests.integration.firmware_bridge.sim import Simulator, build, require_tool
from tests.integration.mqtt_harness import Mosquitto, Requester, run_env
from tests.integration.openai_stub import OpenAIStub
from tests.simulated_sysfs import SimulatedDevice
from tests.waiting import wait_until


@pytest.fixture(scope="session")
def sim_binary(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The simulator's executable, built once per session."""
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
def mosquitto(tmp_path: Path) -> Iterator[Mosquitto]:
    """A running broker with persistence in ``tmp_path``; tests may ``kill()``/``start()`` it."""
    broker = Mosquitto(tmp_path / "broker")
    broker.start()
    yield broker
    broker.stop()


@pytest.fixture
def requester(mosquitto: Mosquitto) -> Iterator[Requester]:
    client = Requester(mosquitto.port, "requester")
    yield client
    client.close()


FAST_BACKOFF = Backoff(initial_s=0.05, max_s=0.5)


@pytest.fixture
def start_bridge(mosquitto: Mosquitto, tmp_path: Path) -> Iterator[Callable[..., MqttBridge]]:
    """``start_bridge(scheduler, **config)`` starts a bridge on the broker and waits until it is online."""
    bridges: list[MqttBridge] = []

    def start(scheduler: EchoScheduler, **overrides) -> MqttBridge:
        fields = dict(
            broker=BrokerConfig.from_url(mosquitto.url),
            device_id="dev1",
            state_dir=tmp_path / "bridge-state",
            telemetry_interval_s=60.0,
            backoff=FAST_BACKOFF,
        )
        fields.update(overrides)
        bridge = MqttBridge(scheduler, BridgeConfig(**fields)).start()
        bridges.append(bridge)
        assert bridge.wait_connected(10), "bridge did not connect"
        return bridge

    yield start
    for bridge in bridges:
        bridge.stop()


@pytest.fixture
def openai_stub():
    stub = OpenAIStub()
    yield stub
    stub.close()


@pytest.fixture
def cloud_worker(mosquitto: Mosquitto, openai_stub: OpenAIStub, tmp_path: Path):
    """`edge-os cloud-worker` in its own process, answering through the OpenAI stub."""
    log = open(tmp_path / "cloud-worker.log", "w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "edge_os.cli.main", "cloud-worker", "--mqtt", mosquitto.url,
         "--openai-url", openai_stub.url, "--state-dir", str(tmp_path / "cloud-state")],
        env=run_env(), stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    log_path = tmp_path / "cloud-worker.log"
    wait_until(lambda: "subscribed" in log_path.read_text(), 20, what="the cloud worker subscribed")
    yield proc
    proc.terminate()
    proc.wait(10)
    log.close()


@pytest.fixture
def serve_with_mqtt(mosquitto: Mosquitto, tmp_path: Path):
    """``start(package, memory_budget=None, **bridge_config) -> MqttFrontDoor``: what `edge-os
    serve --mqtt` runs, on a cool simulated device."""
    services: list[Service] = []

    def start(package: Path, memory_budget: str | None = None, **bridge_config) -> MqttFrontDoor:
        device = SimulatedDevice(tmp_path / "device")
        socket_dir = Path(tempfile.mkdtemp(prefix="eos-", dir="/tmp"))  # Unix socket paths are short
        options = ServeOptions(
            models=(package,),
            memory_budget=memory_budget,
            threads=1,
            context=256,
            socket=socket_dir / "scheduler.sock",
            thermal_root=device.thermal_dir,
            power_root=device.power_dir,
            meminfo=device.meminfo_path,
        )
        config = BridgeConfig(
            BrokerConfig.from_url(mosquitto.url),
            device_id="real",
            state_dir=tmp_path / "bridge-state",
            backoff=FAST_BACKOFF,
            **bridge_config,
        )
        door = MqttFrontDoor(config)
        service = Service(build_scheduler(options), options.socket)
        service.attach(door)
        services.append(service.start())
        assert door.bridge is not None and door.bridge.wait_connected(10)
        return door

    yield start
    for service in services:
        service.stop()


@pytest.fixture(autouse=True)
def _debug_logs(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="edge_os")
