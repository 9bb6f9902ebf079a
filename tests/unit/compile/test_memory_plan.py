"""The compiled functions plan their intermediate memory once, at the compile limits.

Without bounds the VM allocates storage sized by each call's prompt length or batch, and its pooled
allocator keeps a set per size seen: a service's memory grows with every new prompt length.
"""

from __future__ import annotations

import re

import tvm

from edge_os.compile.build import CompileLimits, export_model
from edge_os.compile.pipeline import build_pipeline
from edge_os.models.llama.config import LlamaConfig
from edge_os.models.llama.model import LlamaForCausalLM
from tests.tiny_model import tiny_config

HOST = tvm.target.Target({"kind": "llvm", "mcpu": tvm.get_global_func("target.llvm_get_system_cpu")()})


def _storage_shapes(limits: CompileLimits) -> dict[str, list[str]]:
    config = LlamaConfig.from_json(tiny_config())
    mod, _ = export_model(LlamaForCausalLM, config, {}, "float32", HOST, limits)
    lowered = build_pipeline(HOST)(mod)
    shapes = {}
    for name in ("prefill", "prefill_ragged", "decode"):  # embed has no intermediates
        text = lowered[name].script()
        # The size argument of every storage allocation: a literal, or a shape computed per call.
        shapes[name] = [size for size in re.findall(r"R\.vm\.alloc_storage\((\S+?),", text)]
        assert shapes[name], f"{name} allocates no storage?"
        shapes[name] = [_resolve(text, size) for size in shapes[name]]
    return shapes


def _resolve(text: str, size: str) -> str:
    """``R.shape([n])`` as is; a variable bound to ``make_shape(..., heap slot)`` as 'dynamic'."""
    if size.startswith("R.shape"):
        return size
    binding = re.search(rf"{re.escape(size)}: R\.Shape\(ndim=1\) = R\.call_packed\(\"vm\.builtin\.make_shape\", "
                        r"shape_heap, 1, (\d+), (\d+)", text)
    assert binding, f"cannot find how {size} is computed"
    kind, value = binding.groups()
    return f"static {value}" if kind == "0" else "dynamic"  # make_shape: 0 = literal, 1 = heap slot


def test_storage_is_planned_at_the_limits_not_per_call():
    for name, sizes in _storage_shapes(CompileLimits(prefill_chunk=64, max_batch=4)).items():
        # At most the returned logits are sized per call (decode's, by the batch): they leave the
        # function, so they cannot come from the plan. Without the bounds every intermediate is.
        assert sizes.count("dynamic") <= 1 and len(sizes) > 1, (name, sizes)
