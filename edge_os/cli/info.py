"""edge-os info PACKAGE"""

from __future__ import annotations

import json


def register(subparsers) -> None:
    p = subparsers.add_parser("info", help="describe a package: sizes, quantization, memory needed",
                              description="Print what a package holds and how much memory it needs at a context.")
    p.add_argument("package", nargs="?", metavar="MODEL",
                   help="a stored model's NAME[:TAG] or a package directory "
                        "(default: the bundled SmolLM2-135M, packed on first use)")
    p.add_argument("--ctx", type=int, default=2048, help="context (tokens) to size memory for (default 2048)")
    p.add_argument("--verify", action="store_true", help="also check every file's sha256")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=run)


def run(args) -> int:
    from collections import Counter

    from edge_os.package.manifest import Manifest
    from edge_os.package.reader import verify_files
    from edge_os.store.resolve import resolve_model

    if args.package is None:
        from edge_os.default_model import default_package

        args.package = default_package(separate_process=True)
    else:
        args.package = resolve_model(args.package)
    from edge_os.package.tflite import is_tflite_package

    if is_tflite_package(args.package):
        from edge_os.cli.tflite_info import show

        return show(args)
    m = Manifest.read(args.package)
    if args.verify:
        verify_files(args.package, m)
    formats = Counter(m.quantization["tensors"].values())
    info = {
        "name": m.name, "architecture": m.architecture, "target": m.target.name,
        "cpu": m.target.tvm_target.get("mcpu"), "quantization": m.quantization["scheme"],
        "scale_dtype": m.quantization["scale_dtype"],
        "decode_activations": m.quantization.get("decode_activations", "float32"),  # older packages: float32
        "weight_formats": dict(formats), "context_length": m.context_length,
        "weight_bytes": m.memory.weight_bytes, "kv_bytes_per_token": m.memory.kv_bytes_per_token,
        "kv_dtype": m.kv_dtype,
        "workspace_bytes": m.memory.workspace_bytes, "memory_at_ctx": m.memory.bytes_for(args.ctx),
        "ctx": args.ctx, "files": len(m.files), "tvm_version": m.tvm_version, "verified": bool(args.verify),
        "limits": m.limits,
    }
    if args.json:
        print(json.dumps(info, indent=1))
        return 0
    def mib(b: int) -> str:
        return f"{b / 2**20:.1f} MiB"

    print(f"{m.name}  ({m.architecture}, {m.config['num_hidden_layers']} layers, hidden {m.config['hidden_size']})")
    print(f"  target        {m.target.name} ({info['cpu']}), TVM {m.tvm_version}")
    print(f"  quantization  {info['quantization']} ({info['scale_dtype']} scales): "
          + ", ".join(f"{n} x {f}" for f, n in formats.items()))
    print(f"  decode        activations rounded to {info['decode_activations']}")
    if m.limits:
        print(f"  planned for   prefill chunks of {m.limits['prefill_chunk']} tokens, "
              f"decode batches of up to {m.limits['max_batch']} sequences")
    print(f"  weights       {mib(m.memory.weight_bytes)}")
    print(f"  KV cache      {m.memory.kv_bytes_per_token / 1024:.1f} KiB per token ({m.kv_dtype})")
    print(f"  workspace     {mib(m.memory.workspace_bytes)}")
    print(f"  memory        {mib(info['memory_at_ctx'])} at {args.ctx} tokens (max context {m.context_length})")
    if args.verify:
        print(f"  verified      {len(m.files)} files match their sha256")
    return 0
