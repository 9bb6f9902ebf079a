"""``tvm_ffi``, imported without torch.

``tvm_ffi`` tries ``import torch`` when it is first imported (for its torch tensor interop, which
edge-os does not use). Where torch is installed (xgrammar needs it) that cost every process that
runs a package ~2.5 s and ~190 MiB of resident memory on a 2 GHz core, before any model loaded.
Importing ``tvm_ffi`` from here hides torch during that import only: a later ``import torch``
(xgrammar, for structured output) works as usual. A process that imported torch or ``tvm``
(which imports ``tvm_ffi`` itself) first is left as it is.
"""

from __future__ import annotations

import sys

if "tvm_ffi" not in sys.modules and "torch" not in sys.modules:
    sys.modules["torch"] = None  # type: ignore[assignment]  # makes `import torch` raise ImportError
    try:
        import tvm_ffi
    finally:
        del sys.modules["torch"]
else:
    import tvm_ffi

__all__ = ["tvm_ffi"]
