"""``edge-os serve``: run the on-device scheduler (front doors attach to it)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from edge_os.cli.common import positive_int
from edge_os.cli.mqtt_options import add_bridge_options
from edge_os.errors import InputError

if TYPE_CHECKING:
    from edge_os.scheduler.service import ServeOptions


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "serve",
        help="run the on-device scheduler under memory and thermal budgets",
        description="Serve model packages under the device's memory, thermal and power budgets. "
        "`edge-os ps` asks it what it is doing.",
    )
    p.add_argument("--models", nargs="+", default=[], metavar="MODEL",
                   help="stored models' NAME[:TAG]s or package directories "
                        "(default: the bundled SmolLM2-135M, packed on first use)")
    p.add_argument("--root", type=Path, metavar="ROOT",
                   help="serve a device store's installed packages and follow each install or rollback without a "
                        "restart; with --mqtt, also take over-the-air install jobs (docs/flash.md)")
    p.add_argument("--memory-budget", metavar="SIZE",
                   help="memory edge-os may use, e.g. 2G or 512M (default: the target's share of MemTotal)")
    p.add_argument("--target", help="target descriptor for budgets and thermal zones (default: EDGE_OS_TARGET)")
    p.add_argument("--thermal-root", type=Path, default=Path("/sys/class/thermal"), metavar="DIR",
                   help="where thermal_zone*/ and cooling_device*/ live (a simulated tree in tests)")
    p.add_argument("--power-root", type=Path, default=Path("/sys/class/power_supply"), metavar="DIR",
                   help="where the power supplies live")
    p.add_argument("--meminfo", type=Path, default=Path("/proc/meminfo"), metavar="FILE",
                   help="where MemTotal and MemAvailable are read")
    p.add_argument("--keep-alive", metavar="SECONDS", help="how long an idle model stays loaded (inf: forever)")
    p.add_argument("--pin", nargs="+", default=[], metavar="NAME", help="load these models now and never unload them")
    p.add_argument("--preload", nargs="+", default=[], metavar="NAME", help="load these models now")
    p.add_argument("--threads", type=positive_int,
                   help="engine threads, exactly (default: EDGE_OS_THREADS, else the cores other programs leave idle, "
                        "followed while serving)")
    p.add_argument("--context", type=positive_int, metavar="TOKENS", help="context window each model is served with")
    p.add_argument("--socket", type=Path, help="Unix socket for `edge-os ps` (default: EDGE_OS_SOCKET)")
    p.add_argument("--pipeline", type=Path, metavar="FILE",
                   help="run the pipelines of this TOML file: sensor stream -> TFLite model -> MQTT event or LLM "
                        "(docs/tflite.md)")
    p.add_argument("--periodic", nargs="+", default=[], metavar="NAME:MS[:FRAMES.npy]",
                   help="run this TFLite model every MS milliseconds (deadline: the period) ahead of LLM "
                        "decode steps, on the frames of FRAMES.npy in turn (default: zeros); pins it")
    add_bridge_options(p)
    http = p.add_argument_group("HTTP API")
    http.add_argument("--http", metavar="ADDR",
                      help="serve the OpenAI-compatible API on HOST:PORT (a bare PORT or :PORT means 127.0.0.1)")
    http.add_argument("--api-key-file", type=Path, metavar="FILE",
                      help="API keys, one a line, accepted as bearer tokens (also EDGE_OS_API_KEYS)")
    http.add_argument("--cloud-url", metavar="URL",
                      help="an OpenAI-compatible server that answers the HTTP requests this device refuses (too hot, "
                           "over memory, model absent...), redacted as for MQTT; its key from EDGE_OS_OPENAI_API_KEY")
    http.add_argument("--cloud-model", metavar="NAME",
                      help="the model --cloud-url is asked for (default: the local name)")
    agent = p.add_argument_group("agent (docs/agent.md)")
    agent.add_argument("--agent-port", metavar="PORT",
                       help="serve agent runs with the device on PORT as tools: POST /v1/agent/runs with --http, "
                            "edge-os/DEVICE/agent with --mqtt")
    agent.add_argument("--agent-policy", type=Path, metavar="FILE", help="the agent's policy (default: deny all)")
    agent.add_argument("--agent-audit", type=Path, metavar="FILE",
                       help="the agent's audit log (default: $EDGE_OS_HOME/agent/audit.jsonl)")
    p.set_defaults(func=run)


def options_from_args(args: argparse.Namespace, models: tuple[Path, ...]) -> ServeOptions:
    from edge_os.scheduler.service import ServeOptions

    return ServeOptions(
        models=models,
        target=args.target,
        memory_budget=args.memory_budget,
        keep_alive=args.keep_alive,
        pin=tuple(args.pin),
        preload=tuple(args.preload),
        threads=args.threads,
        context=args.context,
        socket=args.socket,
        thermal_root=args.thermal_root,
        power_root=args.power_root,
        meminfo=args.meminfo,
        periodic=tuple(args.periodic),
        root=args.root,
    )


def http_address_and_keys(args: argparse.Namespace) -> tuple[str, int, tuple[str, ...]]:
    """``--http`` and the API keys, checked (the port too) before any model is packed or loaded."""
    from edge_os.api.config import parse_address, read_api_keys
    from edge_os.api.front_door import bind
    from edge_os.config import settings

    host, port = parse_address(args.http)
    keys = read_api_keys(args.api_key_file, settings().api_keys)
    if port != 0:
        bind(host, port).close()  # a port in use fails now, not after minutes of packing
    return host, port, keys


def cloud_from_args(args: argparse.Namespace):
    """The HTTP API's cloud fallback (``None`` without ``--cloud-url``), under the shared policy."""
    if not args.cloud_url:
        return None
    from edge_os.api.cloud import CloudConfig
    from edge_os.config import settings
    from edge_os.mqtt.redact import RedactionConfig
    from edge_os.scheduler.fallback import FallbackPolicy

    policy = FallbackPolicy(RedactionConfig(enabled=not args.no_redact, names=tuple(args.redact_name)),
                            args.cloud_timeout)
    return CloudConfig(args.cloud_url, args.cloud_model, settings().openai_api_key, policy)


def agent_from_args(args: argparse.Namespace):
    """The agent of ``--agent-port``: the policy read and the device opened before any model loads
    (the device stays open for the life of the process)."""
    from edge_os.agent import AuditLog, Policy, from_device
    from edge_os.api.agent_runs import AgentRuns
    from edge_os.cli.actuate import one_shot_link
    from edge_os.cli.audit import default_audit_path
    from edge_os.cli.serial_errors import device_errors
    from firmware_bridge import Device

    policy = Policy.load(args.agent_policy) if args.agent_policy else Policy()
    audit = AuditLog(args.agent_audit or default_audit_path(), max_entries=policy.audit_max_entries,
                     retention_days=policy.audit_retention_days)
    audit.prune()
    with device_errors():
        device = Device.open(args.agent_port, one_shot_link())
    cloud = cloud_from_args(args)  # the agent's refused turns fall back like HTTP completions
    if cloud is not None:
        from edge_os.api.cloud import CloudRoute

        cloud = CloudRoute(cloud)
    return AgentRuns(from_device(device), policy, audit, cloud=cloud, device=device)


def run(args: argparse.Namespace) -> int:
    from edge_os.cli.mqtt_options import bridge_config_from_args
    from edge_os.scheduler.service import serve
    from edge_os.store.resolve import resolve_model

    if args.api_key_file and not args.http:
        raise InputError("--api-key-file needs --http ADDR")
    if (args.cloud_url or args.cloud_model) and not args.http:
        raise InputError("--cloud-url and --cloud-model are for --http; MQTT requests fall back with --cloud-fallback")
    if args.cloud_url and not args.cloud_url.startswith(("http://", "https://")):
        raise InputError(f"--cloud-url {args.cloud_url!r} must be an http:// or https:// URL")
    if (args.agent_policy or args.agent_audit) and not args.agent_port:
        raise InputError("--agent-policy and --agent-audit need --agent-port PORT")
    if args.agent_port and not (args.http or args.mqtt):
        raise InputError("--agent-port needs --http ADDR or --mqtt URL (agent runs are served at POST /v1/agent/runs "
                         "or on edge-os/DEVICE/agent)")
    agent = agent_from_args(args) if args.agent_port else None
    http = http_address_and_keys(args) if args.http else None
    if args.root is not None:
        from edge_os.deploy.serving import serving_packages

        if args.models:
            raise InputError("--root serves the device store's packages; drop --models (or drop --root)")
        models = tuple(serving_packages(args.root, can_wait=bool(args.mqtt)).values())
    else:
        models = tuple(resolve_model(m) for m in args.models)
    if http and not models and args.root is None:  # the HTTP API describes the packages it serves
        from edge_os import default_model

        models = (default_model.default_package(separate_process=True),)
    doors = []
    if args.mqtt:
        from edge_os.mqtt.front_door import MqttFrontDoor

        bridge = bridge_config_from_args(args)
        doors.append(MqttFrontDoor(bridge, agent=agent))
        if args.root is not None:
            from edge_os.deploy.serving import OtaFrontDoor

            doors.append(OtaFrontDoor(args.root, bridge.broker, bridge.device_id))
    if http:
        from edge_os.api.config import HttpConfig
        from edge_os.api.front_door import HttpFrontDoor

        host, port, keys = http
        doors.append(HttpFrontDoor(HttpConfig(host=host, port=port, packages=models, api_keys=keys,
                                              cloud=cloud_from_args(args)), agent=agent))
    if args.pipeline:
        doors.append(pipeline_door(args, models, doors[0] if args.mqtt else None))
    serve(options_from_args(args, models), front_doors=doors)
    return 0


def pipeline_door(args: argparse.Namespace, models: tuple[Path, ...], mqtt_door):
    """The pipelines of ``--pipeline``, checked against ``models`` before anything loads; their events
    go out through the MQTT bridge (started before them)."""
    from edge_os.pipelines.config import load_pipelines
    from edge_os.pipelines.runner import PipelineRunner

    pipelines = load_pipelines(args.pipeline)
    if not models:
        from edge_os import default_model

        models = (default_model.default_package(separate_process=True),)

    def publish():
        return mqtt_door.bridge.publish_event if mqtt_door is not None and mqtt_door.bridge else None

    return PipelineRunner.for_packages(pipelines, models, publish, has_mqtt=mqtt_door is not None)
