"""Compile a model definition for a target with TVM Relax into a loadable library."""

# What a package's KV cache may store (``auto``: the target's choice, see ``kv_cache.default_kv_dtype``).
# Here rather than in ``kv_cache`` so that the CLI can list them without importing TVM.
KV_DTYPES = ("auto", "float32", "float16")
