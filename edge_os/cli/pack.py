"""edge-os pack SOURCE --out DIR"""

from __future__ import annotations

import argparse
import signal
import sys
from pathlib import Path


def register(subparsers) -> None:
    from edge_os.compile import ACTIVATIONS, KV_DTYPES
    from edge_os.quantize.formats import SCHEMES
    from edge_os.targets import available_targets

    p = subparsers.add_parser(
        "pack", help="quantize and compile a model into a package",
        description="Import a GGUF file or a Hugging Face folder, quantize it, compile it with TVM for a "
                    "target and write a self-describing package directory.",
        epilog="quantization schemes:\n" + "\n".join(f"  {s.name:<8} {s.description}" for s in SCHEMES.values()),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("source", type=Path, help="a .gguf file, a Hugging Face model folder or a .tflite model")
    p.add_argument("--out", type=Path, required=True, help="package directory to create")
    p.add_argument("--quant", default="auto", choices=list(SCHEMES), help="quantization scheme (default: auto)")
    p.add_argument("--target", default=None, help=f"target: {', '.join(available_targets())} (default: host)")
    p.add_argument("--activations", default=ACTIVATIONS[0], choices=ACTIVATIONS,
                   help="how decode kernels may round activations, per group of 32 (default: int16, "
                        "~2x float32's decode speed and near-exact; int8 is llama.cpp's and moves logits more)")
    p.add_argument("--name", default=None, help="model name recorded in the manifest")
    p.add_argument("--kv-dtype", default="auto", choices=KV_DTYPES,
                   help="what the KV cache stores: auto (float16 on x86-64 with F16C and on aarch64, "
                        "else float32), float32 or float16 (default: auto)")
    p.add_argument("--force", action="store_true", help="replace an existing package at --out")
    p.add_argument("--sign", type=Path, default=None, metavar="KEY", help="sign the package with this private key")
    p.add_argument("--version", type=int, default=None, help="release number of this model (with --sign)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def run(args) -> int:
    from edge_os.config import settings
    from edge_os.errors import InputError
    from edge_os.package.pack import PackOptions, pack

    if args.version is not None and not args.sign:
        raise InputError("--version is recorded by signing; pass --sign KEY too")
    if args.source.suffix == ".tflite":
        from edge_os.package.tflite import pack_tflite

        out = pack_tflite(args.source, args.out, name=args.name, force=args.force)
        return _finish(args, out)
    interrupted = []

    def on_sigint(signum, frame):
        interrupted.append(signum)
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGINT, on_sigint)
    try:
        out = pack(PackOptions(args.source, args.out, quant=args.quant, target=args.target or settings().target,
                               name=args.name, force=args.force, progress=not args.no_progress,
                               activations=args.activations, kv_dtype=args.kv_dtype,
                               cancelled=lambda: bool(interrupted)))
    except Exception:
        if interrupted:  # Ctrl-C, dressed by a library as another error on its way out
            raise KeyboardInterrupt from None
        raise
    finally:
        signal.signal(signal.SIGINT, previous)
    _report_not_kept(out)
    return _finish(args, out)


def _finish(args, out: Path) -> int:
    if args.sign:
        from edge_os.deploy.signing import sign_package

        sign_package(out, args.sign, version=args.version)
    print(out)
    return 0


def _report_not_kept(package) -> None:
    """One line per source tensor type whose blocks could not be kept exactly (the manifest lists
    every tensor under ``quantization.not_kept``)."""
    import json
    from collections import Counter

    not_kept = json.loads((package / "manifest.json").read_text())["quantization"].get("not_kept", {})
    for change, count in sorted(Counter(not_kept.values()).items()):
        print(f"edge-os pack: {count} tensor(s) not kept exactly: {change}; see quantization.not_kept in "
              "the manifest", file=sys.stderr)
