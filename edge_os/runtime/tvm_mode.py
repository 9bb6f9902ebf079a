"""Choose TVM's runtime-only library for processes that run packages but never compile."""

from __future__ import annotations

import os
import sys


def use_runtime_only_tvm() -> None:
    """Load only TVM's runtime library (not the compiler) if TVM is not imported yet: imports in
    half the time and saves about 100 MiB of resident memory. Call before loading an engine in a
    process that will not compile anything afterwards."""
    if "tvm" not in sys.modules:
        os.environ.setdefault("TVM_USE_RUNTIME_LIB", "1")
