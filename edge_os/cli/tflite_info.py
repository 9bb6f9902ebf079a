"""``edge-os info`` for a TFLite package (called by ``edge_os.cli.info``)."""

from __future__ import annotations

import json


def _quant(q: dict | None) -> str:
    if q is None:
        return "float"
    if len(q["scale"]) == 1:
        return f"scale {q['scale'][0]:.6g}, zero point {q['zero_point'][0]}"
    return f"per channel along axis {q['axis']} ({len(q['scale'])} scales)"


def show(args) -> int:
    from edge_os.deploy.signing import verify_package
    from edge_os.errors import PackageError
    from edge_os.package.tflite import read_manifest
    from edge_os.runtime.tflite import interpreter_class

    m = read_manifest(args.package)
    if args.verify:
        problems = [p for p in verify_package(args.package, [])
                    if not p.startswith(("package is unsigned", "package is signed by key"))]
        if problems:
            raise PackageError(f"package {args.package}: {problems[0]}")
    try:
        runs_with = interpreter_class()[1]
    except PackageError:
        runs_with = None
    info = {
        "name": m.name, "kind": m.kind, "interpreter": runs_with, "measured_with": m.interpreter,
        "inputs": [t.to_json() for t in m.inputs], "outputs": [t.to_json() for t in m.outputs],
        "model_bytes": m.model_bytes, "arena_bytes": m.arena_bytes,
        "memory_bytes": m.memory.bytes_for(0), "files": len(m.files), "verified": bool(args.verify),
    }
    if args.json:
        print(json.dumps(info, indent=1))
        return 0
    print(f"{m.name}  (TFLite, {len(m.inputs)} input(s), {len(m.outputs)} output(s))")
    print(f"  interpreter   {runs_with or 'none installed (pip install edge-os[tflite])'}; "
          f"arena measured with {m.interpreter}")
    for role, specs in (("input", m.inputs), ("output", m.outputs)):
        for t in specs:
            print(f"  {role:<13} {t.name} {list(t.shape)} {t.dtype} ({_quant(t.quantization)})")
    print(f"  model         {m.model_bytes / 1024:.1f} KiB")
    print(f"  arena         {m.arena_bytes / 1024:.1f} KiB (measured when the interpreter allocated)")
    print(f"  memory        {m.memory.bytes_for(0) / 1024:.1f} KiB budgeted by the scheduler")
    if args.verify:
        print(f"  verified      {len(m.files)} files match their sha256")
    return 0
