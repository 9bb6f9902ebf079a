"""Fixtures for integration tests: a real mosquitto broker and MQTT bridges on it."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Callable, Iterator

import pytest
from tests.integration.echo_scheduler import EchoScheduler
from tests.integration.mqtt_harness import Mosquitto, Requester

from edge_os.mqtt import Backoff, BridgeConfig, BrokerConfig, MqttBridge


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


@pytest.fixture(autouse=True)
def _debug_logs(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="edge_os")
