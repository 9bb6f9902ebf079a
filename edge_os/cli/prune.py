"""edge-os prune"""

from __future__ import annotations


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "prune", help="delete packages no name refers to and stale default packages",
        description="Delete store files no name uses, leftovers of interrupted pulls, and default-model "
                    "packages under $EDGE_OS_HOME/packages that this edge-os would never use again. "
                    "Packages a running edge-os process uses are kept.")
    p.set_defaults(func=run)


def run(args) -> int:
    from edge_os.default_model import stale_packages
    from edge_os.scheduler.sizes import format_size
    from edge_os.store.store import Store

    store = Store.default()
    removed = store.collect_garbage()
    freed = sum(r.nbytes for r in removed)
    count = sum(1 for r in removed if r.path.parent != store.blobs)
    for path in stale_packages():
        lock = store.use_lock_path(path)
        if lock is not None and store.in_use(lock):
            print(f"kept {path}: a running edge-os process uses it")
            continue
        freed += store.delete_outside(path)
        count += 1
        print(f"removed {path}")
    print(f"pruned {count} package(s), freed {format_size(freed)}")
    return 0
