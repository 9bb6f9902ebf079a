"""RoPE for CPUs, replacing the scalar ``fused_rope`` kernel of TVM's paged KV cache.

TVM's kernel splits the fused QKV rows into q, k and v and rotates q and k, computing for every
element ``theta ** (2i / dim)`` and the cosine and sine of its angle with libm: three scalar libm
calls per element, about 2,900 per SmolLM2 token, 61 us per layer and decode step (a tenth of
the step) and a fifth of prefill. The angles depend only on the token's position and the
frequency, so this kernel computes them once per token (``dim / 2`` of each, same float32 formula
as TVM's) and rotates every head with 8-lane vectors; long prompts run a token per task.

Only plain RoPE is replaced (no ``rope_scaling``, rotated over the whole head): the compile step
records the model's ``rope_theta`` and whether it scales RoPE in the module attribute
``edge_os.model`` (``edge_os.compile.build``), which is where the theta comes from.
"""

from __future__ import annotations

import tvm
from tvm import tirx
from tvm.script.ir_builder import IRBuilder
from tvm.script.ir_builder import tirx as T

from edge_os.compile.kernels import register_replacement
from edge_os.compile.kernels.vector import bcast, const, load, to_f32, vload, vstore_index

LANES = 8
PARALLEL_FROM = 4  # tokens; below this a parallel launch costs more than it saves
SYMBOL = "fused_rope"


def build_rope(theta: float, q_heads: int, kv_heads: int, dim: int, dtype: str) -> tirx.PrimFunc:
    """``fused_rope(qkv, position_map, q, k, v, apply_rope)`` with TVM's signature."""
    half = dim // 2
    heads = q_heads + 2 * kv_heads
    with IRBuilder() as ib:
        with T.prim_func():
            T.func_attr({"tirx.is_scheduled": True, "tirx.noalias": True})
            handles = [T.arg(name, T.handle()) for name in ("var_qkv", "var_position_map", "var_q", "var_k", "var_v")]
            apply_rope = T.arg("apply_rope", tirx.Var("apply_rope", "int64"))
            seq_len = T.int32()
            qkv = T.match_buffer(handles[0], (seq_len, heads, dim), dtype)
            position = T.match_buffer(handles[1], (seq_len,), "int32",
                                      elem_offset=tirx.Var("position_map_elem_offset", "int32"), offset_factor=1)
            outputs = [(T.match_buffer(handles[2], (seq_len, q_heads, dim), dtype), 0, q_heads),
                       (T.match_buffer(handles[3], (seq_len, kv_heads, dim), dtype), q_heads, kv_heads),
                       (T.match_buffer(handles[4], (seq_len, kv_heads, dim), dtype), q_heads + kv_heads, kv_heads)]

            def token(s) -> None:
                angles = T.decl_buffer((dim,), "float32")  # cosines, then sines
                with T.serial(0, half) as i:
                    freq = tirx.Cast("float32", load(position, s)) / tirx.pow(
                        const(theta), tirx.Cast("float32", i * 2) / const(float(dim)))
                    T.buffer_store(angles, tirx.cos(freq), [i])
                    T.buffer_store(angles, tirx.sin(freq), [half + i])
                for out, first, count in outputs:
                    rotate = out is not outputs[2][0]
                    with T.serial(0, count) as h:
                        for j in range(0, dim, LANES):
                            x = to_f32(vload(qkv, s, first + h, j, lanes=LANES), LANES)
                            if rotate:
                                # rotate_half: (-x[half:], x[:half]) against (cos, sin) of i = d mod half
                                other = to_f32(vload(qkv, s, first + h, (j + half) % dim, lanes=LANES), LANES)
                                other = other * bcast(const(-1.0 if j < half else 1.0), LANES)
                                i = j % half
                                rotated = (vload(angles, i, lanes=LANES) * x
                                           + vload(angles, half + i, lanes=LANES) * other)
                                x = tirx.Select(bcast(apply_rope > 0, LANES), rotated, x)
                            value = x if dtype == "float32" else tirx.Cast(f"{dtype}x{LANES}", x)
                            T.buffer_store(out, value, vstore_index(s, h, j, lanes=LANES))

            with T.If(seq_len >= PARALLEL_FROM):
                with T.Then():
                    with T.parallel(0, seq_len) as s:
                        token(s)
                with T.Else():
                    with T.serial(0, seq_len) as s:
                        token(s)
    return ib.get()


def replacement(func: tirx.PrimFunc, model: dict) -> tirx.PrimFunc | None:
    """The fast RoPE for TVM's ``fused_rope`` of a model with plain RoPE, or ``None``."""
    symbol = str(func.attrs.get("global_symbol", "")) if func.attrs is not None else ""
    if symbol != SYMBOL or "rope_theta" not in model or model.get("rope_scaled", True):
        return None
    params = {str(p.name): p for p in func.params if hasattr(p, "shape")}
    if not {"qkv", "q", "k"} <= params.keys():
        return None
    qkv, q, k = params["qkv"], params["q"], params["k"]
    dim, q_heads, kv_heads = int(qkv.shape[2]), int(q.shape[1]), int(k.shape[1])
    dtype = str(qkv.dtype)
    if dim % (2 * LANES) or dtype not in ("float32", "float16"):
        return None
    return build_rope(float(model["rope_theta"]), q_heads, kv_heads, dim, dtype).with_attr("global_symbol", symbol)


def applies(target: tvm.target.Target) -> bool:
    return target.kind.name == "llvm"


register_replacement(applies, replacement)
