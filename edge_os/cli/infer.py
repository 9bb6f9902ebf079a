"""edge-os infer -m PACKAGE --input FILE.npy|-"""

from __future__ import annotations

import json
from pathlib import Path

from edge_os.cli.common import positive_int


def register(subparsers) -> None:
    p = subparsers.add_parser("infer", help="run a TFLite package once on an input array",
                              description="Run a TFLite package on the array in a .npy file (or on stdin) "
                                          "and print every output.")
    p.add_argument("-m", "--model", required=True, metavar="MODEL",
                   help="a TFLite package directory or a stored model's NAME[:TAG]")
    p.add_argument("--input", required=True, metavar="FILE",
                   help="a .npy file with the input array (a .npz with one array per input name), or - for "
                        ".npy bytes on stdin")
    p.add_argument("--threads", type=positive_int, default=1, help="interpreter threads (default 1)")
    p.add_argument("--json", action="store_true",
                   help="print {model, interpreter, outputs: {name: {shape, dtype, data}}, latency_ms}")
    p.set_defaults(func=run)


def read_input(spec: str):
    """The array(s) of ``--input``: one array from .npy, a dict by name from .npz."""
    import io
    import sys
    import zipfile

    import numpy as np

    from edge_os.errors import InputError

    where = "stdin" if spec == "-" else spec
    try:
        raw = sys.stdin.buffer.read() if spec == "-" else Path(spec).read_bytes()
    except FileNotFoundError:
        raise InputError(f"--input {spec} does not exist; give a .npy file or - for stdin") from None
    except IsADirectoryError:
        raise InputError(f"--input {spec} is a directory; give a .npy file") from None
    try:
        loaded = np.load(io.BytesIO(raw), allow_pickle=False)
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise InputError(f"{where} is not a .npy array ({reason}); write one with numpy.save") from None
    if isinstance(loaded, np.lib.npyio.NpzFile):
        with loaded:
            return {name: loaded[name] for name in loaded.files}
    return loaded


def run(args) -> int:
    import time

    from edge_os.package.tflite import is_tflite_package, load_model
    from edge_os.store.resolve import resolve_model

    package = resolve_model(args.model)
    if not is_tflite_package(package):
        from edge_os.errors import InputError

        raise InputError(f"{args.model} is not a TFLite package; `edge-os infer` runs packages made from .tflite "
                         "files (use `edge-os generate` for language models)")
    inputs = read_input(args.input)
    manifest, model = load_model(package, threads=args.threads)
    began = time.perf_counter()
    outputs = model.run(inputs)
    latency_ms = (time.perf_counter() - began) * 1000
    if args.json:
        print(json.dumps({
            "model": manifest.name, "interpreter": model.interpreter_name, "latency_ms": round(latency_ms, 3),
            "outputs": {name: {"shape": list(a.shape), "dtype": a.dtype.name, "data": a.tolist()}
                        for name, a in outputs.items()},
        }))
        return 0
    import numpy as np

    for name, array in outputs.items():
        print(f"{name} {list(array.shape)} {array.dtype.name}")
        print(np.array2string(array, threshold=64))
    print(f"({latency_ms:.2f} ms, {model.interpreter_name})")
    return 0
