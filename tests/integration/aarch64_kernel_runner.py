"""Runs under emulation (``edge-os emulate``'s python): calls each kernel of an aarch64 library
on the inputs of an .npz and writes the outputs to another. Usage: LIBRARY INPUTS OUTPUTS.

INPUTS holds, per call ``KERNEL__TAG``, its activations ``.x``, weight arrays ``.w0``, ``.w1``, ...
(``.count`` of them) and output width ``.n``; OUTPUTS gets each call's result under its name."""

import sys

import numpy as np
import tvm_ffi

from edge_os.runtime.tvm_runtime import ensure_loaded, to_numpy, to_tensor

library, inputs, outputs = sys.argv[1:]
ensure_loaded()  # TVM's runtime library: the kernels' thread pool lives there
module = tvm_ffi.load_module(library)
data = np.load(inputs)
calls = sorted({key.split(".")[0] for key in data.files})
results = {}
for name in calls:
    x = data[f"{name}.x"]
    weights = [data[f"{name}.w{i}"] for i in range(int(data[f"{name}.count"]))]
    y = to_tensor(np.full((x.shape[0], int(data[f"{name}.n"])), np.nan, np.float32))
    module[name.split("__")[0]](to_tensor(x), *[to_tensor(w) for w in weights], y)
    results[name] = to_numpy(y).copy()
np.savez(outputs, **results)
