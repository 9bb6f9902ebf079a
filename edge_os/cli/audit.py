"""`edge-os audit show|verify|prune`: read and check the agent's hash-chained audit log."""

from __future__ import annotations

import argparse

from edge_os.cli.common import positive_int


def default_audit_path():
    from edge_os.config import settings

    return settings().home / "agent" / "audit.jsonl"


def add_audit_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--audit", metavar="FILE", default=None,
                        help="the audit log (default: $EDGE_OS_HOME/agent/audit.jsonl)")


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("audit", help="show or verify the agent's audit log",
                              description="The agent appends every tool call, actuation, refusal and "
                                          "confirmation to a hash-chained log; these commands read it.")
    commands = p.add_subparsers(dest="audit_command", metavar="ACTION", required=True)
    show = commands.add_parser("show", help="print the entries, oldest first")
    add_audit_argument(show)
    show.add_argument("--last", type=positive_int, metavar="N", help="only the last N entries")
    show.add_argument("--run", metavar="RUN_ID", help="only the entries of one run")
    show.add_argument("--json", action="store_true", help="print the entries as JSON lines")
    verify = commands.add_parser("verify", help="check the hash chain: exit 1 if an entry was edited, "
                                                "deleted or reordered")
    add_audit_argument(verify)
    runs = commands.add_parser("runs", help="list the runs on record: when, started how and by whom, the goal, "
                                            "how each ended (HTTP and MQTT runs included)")
    add_audit_argument(runs)
    runs.add_argument("--json", action="store_true", help="print the runs as JSON lines")
    prune = commands.add_parser("prune", help="apply retention: drop the oldest entries")
    add_audit_argument(prune)
    prune.add_argument("--max-entries", type=positive_int, metavar="N", help="keep at most N entries")
    prune.add_argument("--retention-days", type=float, metavar="DAYS", help="drop entries older than DAYS")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import json
    import time
    from pathlib import Path

    from edge_os.agent.audit import AuditLog
    from edge_os.errors import AuditError, InputError
    from edge_os.safe_text import terminal_safe

    path = Path(args.audit) if args.audit else default_audit_path()
    if not path.exists():
        raise AuditError(f"there is no audit log at {path}; run `edge-os agent` first or give --audit FILE")
    if args.audit_command == "verify":
        problems = AuditLog(path).verify()
        for problem in problems:
            print(f"line {problem.line}: {problem.message}")
        if problems:
            raise AuditError(f"{path} has been tampered with or damaged: {len(problems)} problem(s), the first at "
                             f"line {problems[0].line}: {problems[0].message}")
        print(f"{path}: {len(AuditLog(path).entries())} entries, chain intact")
        return 0
    if args.audit_command == "prune":
        if args.max_entries is None and args.retention_days is None:
            raise InputError("give --max-entries N and/or --retention-days DAYS")
        dropped = AuditLog(path, max_entries=args.max_entries, retention_days=args.retention_days).prune()
        print(f"dropped {dropped} entries")
        return 0
    log = AuditLog(path)
    if args.audit_command == "runs":
        for summary in log.runs():
            if args.json:
                print(json.dumps(summary, ensure_ascii=False))
                continue
            when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(summary["started"] or 0))
            who = f"{summary['via']}:{summary['requester']}" if summary["requester"] else summary["via"]
            print(terminal_safe(f"{summary['run']:12} {when} {summary['status'] or 'unfinished':10} {who:24} "
                                f"{json.dumps(summary['goal'], ensure_ascii=False)}"))
        _warn_unreadable(log)
        return 0
    entries = log.entries()
    if args.run:
        entries = [e for e in entries if e.get("run") == args.run]
    if args.last:
        entries = entries[-args.last:]
    for entry in entries:
        if args.json:
            print(json.dumps(entry, ensure_ascii=False))
            continue
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(entry.get("ts", 0)))
        data = json.dumps(entry.get("data"), ensure_ascii=False, separators=(",", ":"))
        print(terminal_safe(f"{entry.get('seq'):>6} {when} {entry.get('run') or '-':12} "
                            f"{entry.get('kind'):12} {data}"))
    _warn_unreadable(log)
    return 0


def _warn_unreadable(log) -> None:
    """One line on stderr when lines of the log were skipped: the listing is not the whole log."""
    import sys

    if log.unreadable_lines:
        print(f"edge-os: warning: {log.unreadable_lines} line(s) of {log.path} are not audit entries and were "
              "skipped; `edge-os audit verify` names them", file=sys.stderr)
