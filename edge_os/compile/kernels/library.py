"""Every kernel family: importing this module registers them all with the kernel registry.

Order matters: for a kernel, the first family whose predicate accepts the target and whose
builder accepts the shape wins, so more specific instruction sets come first.
"""

from edge_os.compile.kernels import arm_neon, attention_cpu, rope_cpu, x86_avx2  # noqa: F401  (registration on import)
