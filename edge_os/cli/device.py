"""edge-os device init|status|rollback|fsck|receive ROOT"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path


def register(subparsers) -> None:
    p = subparsers.add_parser("device", help="manage a device store (A/B slots of signed packages)",
                              description="The on-device store of installed packages (docs/flash.md). ROOT is "
                                          "/var/lib/edge-os on a board, any directory for a simulated device.")
    sub = p.add_subparsers(dest="device_command", metavar="ACTION", required=True)
    init = sub.add_parser("init", help="create a store, or replace its trusted keys")
    init.add_argument("root", type=Path)
    init.add_argument("--trust", type=Path, action="append", required=True, metavar="PUB",
                      help="public key whose signatures the device accepts (repeatable; replaces the old set)")
    init.add_argument("--memory-budget", default=None, metavar="SIZE",
                      help="memory a model may use, e.g. 2G (default: EDGE_OS_MEMORY_BUDGET or the target's share)")
    init.add_argument("--disk-budget", default=None, metavar="SIZE",
                      help="bytes the store may hold (default: free space)")
    init.add_argument("--health-timeout", type=float, default=120.0, metavar="S",
                      help="seconds the health check may take (default 120)")
    init.set_defaults(func=run_init)
    status = sub.add_parser("status", help="installed models, slots and the last install result")
    status.add_argument("root", type=Path)
    status.add_argument("--json", action="store_true")
    status.set_defaults(func=run_status)
    rollback = sub.add_parser("rollback", help="switch a model back to its previous healthy version")
    rollback.add_argument("root", type=Path)
    rollback.add_argument("name")
    rollback.set_defaults(func=run_rollback)
    fsck = sub.add_parser("fsck", help="recover from an interrupted install and verify every slot")
    fsck.add_argument("root", type=Path)
    fsck.set_defaults(func=run_fsck)
    receive = sub.add_parser("receive", help="the device end of `edge-os flash` over ssh (stdin/stdout)")
    receive.add_argument("root", type=Path)
    receive.set_defaults(func=run_receive)
    ota = sub.add_parser("ota", help="take over-the-air install jobs from an MQTT broker")
    ota.add_argument("root", type=Path)
    ota.add_argument("--mqtt", required=True, metavar="URL", help="broker, e.g. mqtt://broker:1883")
    ota.add_argument("--device-id", default=None, help="this device's id (default: EDGE_OS_DEVICE_ID or host name)")
    ota.set_defaults(func=run_ota)


def run_init(args) -> int:
    from edge_os.config import settings
    from edge_os.deploy.store import DeviceConfig, Store
    from edge_os.scheduler.sizes import parse_size
    from edge_os.targets import load_target

    budget_text = args.memory_budget or settings().memory_budget
    if budget_text:
        budget = parse_size(budget_text, "--memory-budget")
    else:
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
        budget = int(total * load_target(settings().target).budgets.memory_fraction)
    disk = parse_size(args.disk_budget, "--disk-budget") if args.disk_budget else None
    store = Store.init(args.root, args.trust, DeviceConfig.for_host(budget, disk_budget=disk,
                                                                    health_timeout=args.health_timeout))
    print(f"device store {store.root} trusts {', '.join(k.key_id for k in store.trusted())}")
    return 0


def run_status(args) -> int:
    from edge_os.deploy.store import Store

    store = Store(args.root)
    store.config()
    status = store.status()  # no lock: every state file is replaced whole, and an install may hold it for long
    if args.json:
        print(json.dumps(status, indent=1))
        return 0
    if not status["models"]:
        print(f"{store.root}: no models installed")
    for m in status["models"]:
        last = m["last_install"] or {}
        print(f"{m['name']}: version {m['version']} in slot {m['active_slot']} ({m['package']}); "
              f"other slot {m['other_slot'] or '-'}"
              + (f" version {m['other_version']}" if m["other_slot"] else "")
              + (f"; last install: {last.get('result')} version {last.get('version')} ({last.get('reason')})"
                 if last else ""))
    return 0


def run_rollback(args) -> int:
    from edge_os.deploy.install import rollback
    from edge_os.deploy.store import Store

    store = Store(args.root)
    store.config()
    result = rollback(store, args.name)
    print(f"{result['name']} back to version {result['version']} (slot {result['slot']})")
    return 0


def run_fsck(args) -> int:
    from edge_os.deploy.store import Store

    store = Store(args.root)
    store.config()
    with store.locked():
        done = store.recovered
        problems = store.fsck()
    for line in done:
        print(f"recovered: {line}")
    for problem in problems:
        print(f"edge-os: error: {problem}", file=sys.stderr)
    if not problems:
        print(f"{store.root}: every slot verified")
    return 1 if problems else 0


def run_receive(args) -> int:
    from edge_os.deploy.protocol import serve
    from edge_os.deploy.store import Store

    store = Store(args.root)
    store.config()
    serve(store, sys.stdin.buffer, sys.stdout.buffer)
    return 0


def run_ota(args) -> int:
    import signal
    import threading

    from edge_os.config import settings
    from edge_os.deploy.ota import OtaAgent, job_topic
    from edge_os.deploy.store import Store
    from edge_os.mqtt.config import BrokerConfig

    store = Store(args.root)
    store.config()
    device_id = args.device_id or settings().device_id
    agent = OtaAgent(store, BrokerConfig.from_url(args.mqtt, password=settings().mqtt_password), device_id).start()
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    if agent.conn.wait_connected(30):
        print(f"waiting for jobs on {job_topic(device_id)}", flush=True)
    try:
        done.wait()
    finally:
        agent.stop()
    return 0
