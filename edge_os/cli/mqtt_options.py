"""MQTT command-line options shared by `edge-os serve --mqtt` and `edge-os cloud-worker`.

Not a subcommand: ``serve`` calls ``add_bridge_options(parser)`` and, when ``args.mqtt`` is set,
attaches ``MqttFrontDoor(bridge_config_from_args(args))`` (see ``edge_os.mqtt.front_door``).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from edge_os.config import settings

if TYPE_CHECKING:
    from edge_os.mqtt.config import BridgeConfig, BrokerConfig


def add_broker_options(parser: argparse.ArgumentParser, *, required: bool) -> None:
    group = parser.add_argument_group("MQTT broker")
    group.add_argument(
        "--mqtt", metavar="URL", required=required, help="broker: mqtt://HOST[:PORT] or mqtts://HOST[:PORT]"
    )
    group.add_argument("--mqtt-ca", metavar="FILE", type=Path, help="CA certificate that signed the broker's (mqtts)")
    group.add_argument("--mqtt-cert", metavar="FILE", type=Path, help="client certificate (mqtts)")
    group.add_argument("--mqtt-key", metavar="FILE", type=Path, help="client private key (mqtts)")
    group.add_argument(
        "--mqtt-username", metavar="USER", help="user name; the password comes from EDGE_OS_MQTT_PASSWORD"
    )


def broker_from_args(args: argparse.Namespace) -> BrokerConfig:
    from edge_os.mqtt.config import BrokerConfig

    return BrokerConfig.from_url(
        args.mqtt,
        ca_file=args.mqtt_ca,
        cert_file=args.mqtt_cert,
        key_file=args.mqtt_key,
        username=args.mqtt_username,
        password=settings().mqtt_password,
    )


def add_bridge_options(parser: argparse.ArgumentParser) -> None:
    """Options of the device bridge; the bridge runs only when ``--mqtt`` is given."""
    add_broker_options(parser, required=False)
    group = parser.add_argument_group("MQTT bridge")
    group.add_argument("--device-id", metavar="ID", help="this device in the topic tree (default: EDGE_OS_DEVICE_ID)")
    group.add_argument(
        "--mqtt-state-dir", metavar="DIR", type=Path, help="outbox and request log (default: EDGE_OS_HOME/mqtt/ID)"
    )
    group.add_argument("--mqtt-concurrency", metavar="N", type=int, default=8, help="requests in the scheduler at once")
    group.add_argument(
        "--mqtt-models", metavar="NAME", nargs="+", default=[],
        help="model names requests may ask for, here or in the cloud; others get unknown_model (default: any)",
    )  # fmt: skip
    group.add_argument("--telemetry-interval", metavar="S", type=float, default=30.0, help="seconds between telemetry")
    group.add_argument(
        "--cloud-fallback", action=argparse.BooleanOptionalAction, default=False,
        help="hand requests this device refuses to a cloud worker (`edge-os cloud-worker`) and relay its answer; "
        "off by default: a refusal is answered at once with an error",
    )  # fmt: skip
    group.add_argument("--cloud-timeout", metavar="S", type=float, default=120.0,
                       help="wait this long for the cloud (MQTT and --cloud-url)")
    group.add_argument(
        "--homeassistant", metavar="PREFIX", nargs="?", const="homeassistant", default=None,
        help="announce this device's sensors to Home Assistant by MQTT discovery under PREFIX "
             "(default prefix: homeassistant); see docs/homeassistant.md",
    )  # fmt: skip
    group.add_argument("--no-redact", action="store_true",
                       help="send prompts to the cloud unredacted (MQTT and --cloud-url)")
    group.add_argument(
        "--redact-name", metavar="NAME", action="append", default=[], help="a name to redact before the cloud (repeat)"
    )


def bridge_config_from_args(args: argparse.Namespace) -> BridgeConfig:
    from edge_os.mqtt.config import BridgeConfig
    from edge_os.mqtt.redact import RedactionConfig

    return BridgeConfig(
        broker=broker_from_args(args),
        device_id=args.device_id or settings().device_id,
        state_dir=args.mqtt_state_dir,
        concurrency=args.mqtt_concurrency,
        models=tuple(args.mqtt_models),
        telemetry_interval_s=args.telemetry_interval,
        cloud_fallback=args.cloud_fallback,
        cloud_timeout_s=args.cloud_timeout,
        redaction=RedactionConfig(enabled=not args.no_redact, names=tuple(args.redact_name)),
        homeassistant=args.homeassistant,
    )

