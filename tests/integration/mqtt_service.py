"""A device service process for tests: the MQTT bridge serving an ``EchoScheduler``.

Parses the same options `edge-os serve --mqtt` takes (``edge_os.cli.mqtt_options``) plus a few
that shape the stand-in scheduler. Run as ``python -m tests.integration.mqtt_service`` with
``mqtt_harness.run_env()``.
"""

from __future__ import annotations

import argparse
import logging
from dataclasses import replace
from pathlib import Path

from edge_os.cli.mqtt_options import add_bridge_options, bridge_config_from_args
from edge_os.mqtt import Backoff, MqttBridge
from edge_os.runtime.request import Refused
from edge_os.signals import wait_for_signal
from tests.integration.echo_scheduler import EchoScheduler


def main() -> None:
    parser = argparse.ArgumentParser()
    add_bridge_options(parser)
    parser.add_argument("--token-delay", type=float, default=0.0)
    parser.add_argument("--runs-log", type=Path, required=True)
    parser.add_argument("--refuse", metavar="CODE", help="refuse every request with this code (fallback allowed)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s service %(levelname)s %(name)s: %(message)s")
    refusal = Refused(args.refuse, f"stand-in refusal: {args.refuse}", fallback=True) if args.refuse else None
    scheduler = EchoScheduler(token_delay_s=args.token_delay, log_path=args.runs_log, refuse=lambda r: refusal)
    config = replace(bridge_config_from_args(args), backoff=Backoff(initial_s=0.05, max_s=0.5))
    with MqttBridge(scheduler, config):
        wait_for_signal()


if __name__ == "__main__":
    main()
