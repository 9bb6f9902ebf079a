"""edge-os rm NAME[:TAG]..."""

from __future__ import annotations


def register(subparsers) -> None:
    p = subparsers.add_parser("rm", help="remove models from the local store",
                              description="Forget names and delete the files no other name uses. A model "
                                          "that a running edge-os process (serve, chat...) uses is refused.")
    p.add_argument("names", nargs="+", metavar="NAME", help="NAME or NAME:TAG (tag latest when none)")
    p.set_defaults(func=run)


def run(args) -> int:
    from edge_os.scheduler.sizes import format_size
    from edge_os.store.names import ModelName
    from edge_os.store.store import Store

    store = Store.default()
    names = [ModelName.parse(text) for text in args.names]
    for name in names:
        freed = sum(r.nbytes for r in store.remove(name))
        print(f"removed {name} (freed {format_size(freed)})")
    return 0
