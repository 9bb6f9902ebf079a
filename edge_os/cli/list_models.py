"""edge-os list [--json]"""

from __future__ import annotations


def register(subparsers) -> None:
    p = subparsers.add_parser("list", help="list the models in the local store",
                              description="List the names in $EDGE_OS_HOME/store and what each holds.")
    p.add_argument("--json", action="store_true", help="print a JSON array")
    p.set_defaults(func=run)


def run(args) -> int:
    import json
    import time

    from edge_os.scheduler.sizes import format_size
    from edge_os.store.listing import list_models
    from edge_os.store.store import Store

    store = Store.default()
    store.collect_garbage()
    rows = list_models(store)
    if args.json:
        print(json.dumps([r.to_json() for r in rows], indent=1))
        return 0
    if not rows:
        print("no models yet; add one with `edge-os pull SOURCE --name NAME`")
        return 0
    table = [("NAME", "ARCH", "PARAMS", "QUANT", "SIZE", "TARGET", "LAST USED")]
    for r in rows:
        used = time.strftime("%Y-%m-%d %H:%M", time.localtime(r.last_used)) if r.last_used else "never"
        table.append((r.name, r.architecture, _count(r.parameters), r.quantization, format_size(r.size_bytes),
                      r.target, used))
    widths = [max(len(row[i]) for row in table) for i in range(len(table[0]))]
    for row in table:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())
    return 0


def _count(n: int) -> str:
    for unit, size in (("B", 1e9), ("M", 1e6), ("K", 1e3)):
        if n >= size:
            return f"{n / size:.1f}{unit}"
    return str(n)
