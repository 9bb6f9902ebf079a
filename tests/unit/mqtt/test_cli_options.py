"""The MQTT options `serve` and `cloud-worker` share map onto the typed configs."""

import argparse

import pytest

from edge_os.cli.main import build_parser
from edge_os.cli.mqtt_options import add_bridge_options, bridge_config_from_args
from edge_os.errors import MqttError


def parse(*argv):
    parser = argparse.ArgumentParser()
    add_bridge_options(parser)
    return parser.parse_args(argv)


def test_bridge_options_map_onto_bridge_config(monkeypatch, tmp_path):
    monkeypatch.setenv("EDGE_OS_MQTT_PASSWORD", "from-env")
    args = parse(
        "--mqtt", "mqtt://127.0.0.1:1999", "--device-id", "cam-7", "--mqtt-username", "dev",
        "--mqtt-state-dir", str(tmp_path), "--mqtt-concurrency", "3", "--telemetry-interval", "5",
        "--cloud-timeout", "9", "--cloud-fallback", "--redact-name", "Alice", "--redact-name", "Bob",
        "--mqtt-models", "smollm2-135m",
    )  # fmt: skip
    config = bridge_config_from_args(args)
    assert (config.broker.port, config.broker.username, config.broker.password) == (1999, "dev", "from-env")
    assert (config.device_id, config.state_dir, config.concurrency) == ("cam-7", tmp_path, 3)
    assert (config.telemetry_interval_s, config.cloud_timeout_s, config.models) == (5.0, 9.0, ("smollm2-135m",))
    assert config.cloud_fallback and config.redaction.enabled and config.redaction.names == ("Alice", "Bob")


def test_defaults_take_the_device_id_from_the_environment(monkeypatch):
    monkeypatch.setenv("EDGE_OS_DEVICE_ID", "greenhouse-2")
    monkeypatch.delenv("EDGE_OS_MQTT_PASSWORD", raising=False)
    config = bridge_config_from_args(parse("--mqtt", "mqtt://h", "--no-cloud-fallback", "--no-redact"))
    assert config.device_id == "greenhouse-2"
    assert not config.cloud_fallback and not config.redaction.enabled
    assert config.broker.password is None


def test_a_password_from_the_environment_needs_a_user(monkeypatch):
    monkeypatch.setenv("EDGE_OS_MQTT_PASSWORD", "secret")
    with pytest.raises(MqttError, match="user name"):
        bridge_config_from_args(parse("--mqtt", "mqtt://h"))


def test_cloud_worker_needs_a_broker_and_exactly_one_backend(capsys):
    parser = build_parser()
    for argv in (["cloud-worker", "--openai-url", "http://x"], ["cloud-worker", "--mqtt", "mqtt://h"],
                 ["cloud-worker", "--mqtt", "mqtt://h", "--openai-url", "http://x", "-m", "pkg"]):  # fmt: skip
        with pytest.raises(SystemExit):
            parser.parse_args(argv)
    args = parser.parse_args(["cloud-worker", "--mqtt", "mqtt://h", "--openai-url", "http://x"])
    assert args.func.__module__ == "edge_os.cli.cloud_worker"
