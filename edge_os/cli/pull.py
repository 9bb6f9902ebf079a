"""edge-os pull SOURCE [--name NAME[:TAG]] [--target T]"""

from __future__ import annotations

from pathlib import Path


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "pull", help="pack a model into the local store under a name",
        description="Pack a .gguf file or a Hugging Face folder (or copy a package, or another name) into "
                    "$EDGE_OS_HOME/store under NAME[:TAG]. Files are stored once by sha256, so two names for "
                    "the same weights cost the disk once. Every -m and --models option accepts the name.",
    )
    p.add_argument("source", help="a .gguf file, a Hugging Face folder, a package directory or a stored name")
    p.add_argument("--name", help="NAME[:TAG] to store it under (default: from the source's file name; tag latest)")
    p.add_argument("--target", default=None, help="target to pack for (default: EDGE_OS_TARGET or host)")
    p.add_argument("--quant", default="auto", help="quantization scheme, as for `edge-os pack` (default: auto)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def run(args) -> int:
    from edge_os.config import settings
    from edge_os.errors import InputError
    from edge_os.package.manifest import MANIFEST, Manifest
    from edge_os.store.names import ModelName, looks_like_name
    from edge_os.store.resolve import resolve_model
    from edge_os.store.store import Store

    store = Store.default()
    store.collect_garbage()
    source = Path(args.source).expanduser()
    if not source.exists() and looks_like_name(args.source):
        source = resolve_model(args.source)  # another name: store the same package under a new one
    name = ModelName.parse(args.name) if args.name else ModelName.parse(_name_from(source))
    if (source / MANIFEST).is_file():
        manifest = Manifest.read(source)
        if args.target and args.target != manifest.target.name:
            raise InputError(f"{source} is a package for {manifest.target.name}, not {args.target}; pull the "
                             "model's .gguf or Hugging Face folder to pack it for another target")
        with store.work_dir() as work:
            ref = store.add(name, source, str(source.resolve()), work)
    else:
        from edge_os.package.pack import PackOptions, pack

        with store.work_dir() as work:
            packed = pack(PackOptions(source, work / "package", quant=args.quant,
                                      target=args.target or settings().target, name=name.short,
                                      progress=not args.no_progress))
            ref = store.add(name, packed, str(source.resolve()), work)
    print(f"{ref.name} {store.package_dir(ref)}")
    return 0


def _name_from(source: Path) -> str:
    """A valid name from a file or folder name: ``SmolLM2-135M.Q4_1.gguf`` -> ``smollm2-135m.q4_1``."""
    import re

    stem = source.resolve().name.removesuffix(".gguf").removesuffix(".GGUF").lower()
    name = re.sub(r"[^a-z0-9._-]+", "-", stem).strip("-._")[:64]
    return name or "model"
