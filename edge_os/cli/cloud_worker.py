"""`edge-os cloud-worker`: answer the requests devices hand to the cloud (see docs/mqtt.md)."""

from __future__ import annotations

import argparse
from pathlib import Path

from edge_os.cli.mqtt_options import add_broker_options


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "cloud-worker",
        help="serve edge-os/cloud/req with an OpenAI-compatible server or a local package",
        description="Answer requests that devices could not serve, through an OpenAI-compatible "
        "server (production) or a local edge-os model package.",
    )
    add_broker_options(parser, required=True)
    backend = parser.add_mutually_exclusive_group(required=True)
    backend.add_argument("--openai-url", metavar="URL", help="base URL of an OpenAI-compatible server")
    backend.add_argument("-m", "--model", metavar="MODEL",
                         help="a stored model's NAME[:TAG] or an edge-os model package directory")
    parser.add_argument("--openai-model", metavar="NAME", help="model name sent when a request names none")
    parser.add_argument("--worker-id", default="edge-os-cloud-worker", help="MQTT client id (keeps its session)")
    parser.add_argument("--state-dir", type=Path, help="outbox and request log (default: EDGE_OS_HOME/cloud-worker/ID)")
    parser.add_argument("--concurrency", type=int, default=4, help="requests served at once")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from edge_os.cli.mqtt_options import broker_from_args
    from edge_os.config import settings
    from edge_os.mqtt.backends import EngineBackend
    from edge_os.mqtt.cloud_worker import CloudWorker
    from edge_os.mqtt.config import WorkerConfig
    from edge_os.mqtt.openai_backend import OpenAIBackend
    from edge_os.signals import wait_for_signal

    config = WorkerConfig(
        broker=broker_from_args(args), worker_id=args.worker_id, state_dir=args.state_dir, concurrency=args.concurrency
    )
    if args.openai_url:
        backend = OpenAIBackend(args.openai_url, api_key=settings().openai_api_key, model=args.openai_model)
    else:
        from edge_os.runtime.engine import Engine  # TVM loads only when a package is served
        from edge_os.store.resolve import resolve_model

        backend = EngineBackend(Engine.load(resolve_model(args.model)))
    with CloudWorker(backend, config):
        wait_for_signal()
    return 0
