"""Compile a model definition for a target with TVM Relax into a loadable library."""

# How decode kernels may round activations (``edge_os.compile.kernels``), the default first.
ACTIVATIONS = ("int16", "float32", "int8")
# What a package's KV cache may store (``auto``: the target's choice, see ``kv_cache.default_kv_dtype``).
# Both here rather than next to their users so that the CLI can list them without importing TVM.
KV_DTYPES = ("auto", "float32", "float16")
