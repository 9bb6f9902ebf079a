"""`edge-os agent [--port PORT] [--policy FILE] [--json] "GOAL"`: one agent run on the command line."""

from __future__ import annotations

import argparse

from edge_os.cli.audit import add_audit_argument
from edge_os.cli.common import add_model_argument, positive_int


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "agent", help="let a model read sensors and drive actuators toward a goal, under a policy",
        description="The model works on GOAL with the sensors (read) and actuators (set) of the device on "
                    "PORT as tools. Setting an actuator is refused unless the policy file allows it; every "
                    "call, actuation and refusal goes to the audit log (`edge-os audit show`). See docs/agent.md.")
    p.add_argument("goal", metavar="GOAL", help="what to do, in words")
    p.add_argument("--port", metavar="PORT", help="the device's serial port or URL (without one: no device tools)")
    p.add_argument("--policy", metavar="FILE", help="TOML policy of what actuators may do (default: nothing)")
    p.add_argument("--dry-run", action="store_true", help="check every call against the policy but send nothing")
    p.add_argument("--max-steps", type=positive_int, default=6, metavar="N", help="model turns at most (default 6)")
    p.add_argument("--no-call-first", action="store_true",
                   help="let the first turn answer without a tool call (by default it must call one: small "
                        "models otherwise answer without looking; see docs/agent.md)")
    p.add_argument("--no-grammar", action="store_true", help="decode freely instead of under the tool grammar")
    p.add_argument("--json", action="store_true", help="print the whole result as JSON")
    add_audit_argument(p)
    add_model_argument(p)
    p.set_defaults(func=run)


def ask_on_terminal(question: str, timeout: float) -> bool:
    """Ask on the terminal; anything but y/yes, or no answer within ``timeout``, is no."""
    import select
    import sys

    if not sys.stdin.isatty():
        return False
    print(f"{question} [y/N] (no answer in {timeout:g} s means no) ", end="", file=sys.stderr, flush=True)
    ready, _, _ = select.select([sys.stdin], [], [], timeout)
    if not ready:
        print(file=sys.stderr)
        return False
    return sys.stdin.readline().strip().lower() in ("y", "yes")


def run(args: argparse.Namespace) -> int:
    import dataclasses
    import json
    from contextlib import ExitStack
    from pathlib import Path

    from edge_os.agent import Agent, AuditLog, Policy, from_device
    from edge_os.cli.audit import default_audit_path
    from edge_os.cli.common import load_engine
    from edge_os.cli.serial_errors import device_errors
    from edge_os.errors import DeviceError, SchedulerError

    policy = Policy.load(args.policy) if args.policy else Policy()
    if args.dry_run:
        policy = dataclasses.replace(policy, dry_run=True)
    audit = AuditLog(Path(args.audit) if args.audit else default_audit_path(),
                     max_entries=policy.audit_max_entries, retention_days=policy.audit_retention_days)
    audit.prune()
    with ExitStack() as stack:
        tools = []
        if args.port:
            from edge_os.cli.actuate import one_shot_link
            from firmware_bridge import Device

            with device_errors():
                device = stack.enter_context(Device.open(args.port, one_shot_link()))
            tools = from_device(device)
        engine = load_engine(args)
        agent = Agent(engine, tools, policy, audit, confirm=ask_on_terminal, max_steps=args.max_steps,
                      grammar=not args.no_grammar, call_first=bool(tools) and not args.no_call_first)
        with device_errors():
            result = agent.run(args.goal)
    if args.json:
        print(json.dumps(result.to_dict(), ensure_ascii=False))
    else:
        _print_text(result)
    if result.status == "model_error":
        raise SchedulerError(f"the model could not go on: {result.steps[-1].result['error']}")
    if result.status == "device_lost":
        raise DeviceError(f"the device on {args.port} stopped answering during the run; "
                          "check its cable and power (what was done is in `edge-os audit show`)")
    return 0


def _print_text(result) -> None:
    import json

    from edge_os.safe_text import terminal_safe

    for step in result.steps:
        if step.status == "answer":
            continue
        arguments = json.dumps(step.arguments, ensure_ascii=False)
        outcome = json.dumps(step.result, ensure_ascii=False)
        print(terminal_safe(f"{step.index + 1}. {step.tool} {arguments} -> {step.status}: {outcome}"))
    acted = [s for s in result.actuations if s.status == "ok"]
    print(f"actuations: {len(acted)}" + (" (dry run)" if any(s.status == "dry_run" for s in result.steps) else ""))
    if result.answer is not None:
        print(terminal_safe(f"answer: {result.answer}"))
    if result.status != "answered":
        print(f"the run ended without an answer: {result.status.replace('_', ' ')}")
