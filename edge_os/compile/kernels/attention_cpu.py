"""Paged-KV-cache attention for CPUs, replacing TVM's scalar CPU attention kernels by name.

On an llvm target ``TIRPagedKVCache`` builds its attention from scalar loops: one key at a time,
two libm ``exp2f`` calls per key and head, no vectors, no threads (and the paged prefill kernel
walks every page slot of the whole cache for each query). At 512 tokens of context that halved
decode speed. These kernels keep the signatures and results (output and base-2 log-sum-exp, the
``-5e4`` initial maximum included) and change the work:

- each task is one query row and KV head, for all the query heads that share it (grouped-query
  attention): each key and value is loaded and widened once for the group, not once per query
  head (decode at 1,000 tokens of context: 94 -> 75 us per layer on one core); the parallel loop
  runs over all tasks;
- keys come in blocks of 16 (one KV page): scores are 8-lane dot products with the query
  pre-scaled by ``sm_scale * log2(e)``, the block maximum rescales the running output once, and
  the probabilities of the block come from a vectorized ``exp2``;
- causal masking is a key count per query (keys past it are never read), not a branch per key;
- in decode each task prefetches the next block's keys and values while it works on one: between
  two steps the weights stream through the caches and evict the KV pages, and a page table's pages
  are scattered, so the hardware prefetcher, which follows one stream, does not see them coming
  (SmolLM2 on Zen 5: a decode step 2-8% faster, most at 4 sequences of 500 tokens). Into L2, as
  the weights are (``avx2_dot.PREFETCH_BYTES``): on a 2.2 GHz Zen 4 a step at 500 tokens 7-8%
  faster than into L1 (1 and 4 sequences), on Zen 5 0-0.05 ms slower;
- in decode of a few sequences (fewer sequences x KV heads than ``SPLIT_BELOW``) of many keys
  (``SPLIT_FROM``), each KV head's keys go in ``SPLITS`` parts, tasks of their own, merged by
  their log-sum-exps after a barrier in the same parallel launch: one stream of a model with 3 KV
  heads otherwise gives 2 threads 2 tasks and 1;
- q, K/V and the output may each be float32 or float16 (TVM's cache uses one dtype for all three):
  halves are widened to float32 as they are loaded, 8 at a time (``vcvtph2ps`` on x86 with F16C,
  ``fcvtl`` on aarch64), scores, softmax and the output are accumulated in float32, and the output
  is rounded once when it is stored. The log-sum-exp is float32 either way.

RoPE must already be applied (``RopeMode.NORMAL``, what ``edge_os.compile.kv_cache`` builds,
passes ``rotary_mode == 0``); a call with inline RoPE stops with an error instead of a wrong
result.

The sliding-window variants (the cache's ``mha_sliding`` layers, e.g. Gemma 3's local layers) are
replaced too, with the same work: their pages are the last pages of the sequence, their length
information is ``(3, batch)`` (last page length, window offset into the first page, attention-sink
length), and in prefill a query row sees the cached keys within ``window - row - 1`` of the end
(TVM's own CPU kernel for them reads a one-element buffer at every lane and gives NaN).
"""

from __future__ import annotations

import copy
import functools
import math

import tvm
from tvm import tirx
from tvm.script.ir_builder import IRBuilder
from tvm.script.ir_builder import tirx as T

from edge_os.compile.kernels import register_replacement
from edge_os.compile.kernels.vector import bcast, const, exp2, load, prefetch, to_f32, tree_sum, vload, vstore_index

LANES = 8
BLOCK = 16  # keys per block: one page of TVM's paged KV cache
LOG2E = math.log2(math.e)
EMPTY_MAX = -5e4  # TVM's initial running maximum; an empty row keeps it as its lse
FLOATS = ("float32", "float16")


class _Shape:
    """Head counts, sizes and dtypes read from the kernel being replaced."""

    def __init__(self, q, kv, out):
        """``q``, ``kv`` (the pages, or the ragged K) and ``out``: that kernel's parameters."""
        paged = len(kv.shape) == 5  # (pages, 2, kv_heads, page, dim) or (tokens, kv_heads, dim)
        self.heads = int(q.shape[1])
        self.dim = int(q.shape[2])
        self.kv_heads = int(kv.shape[2]) if paged else int(kv.shape[1])
        self.page = int(kv.shape[3]) if paged else BLOCK
        self.q_dtype, self.kv_dtype, self.out_dtype = str(q.dtype), str(kv.dtype), str(out.dtype)

    @property
    def supported(self) -> bool:
        return (self.dim % LANES == 0 and self.page == BLOCK and self.heads % self.kv_heads == 0
                and {self.q_dtype, self.kv_dtype, self.out_dtype} <= set(FLOATS))

    def out_vector(self, value: tirx.PrimExpr) -> tirx.PrimExpr:
        """A float32 vector of the output, in the output's dtype."""
        return value if self.out_dtype == "float32" else tirx.Cast(f"{self.out_dtype}x{LANES}", value)


def _per_line(dtype: str) -> int:
    """Elements of ``dtype`` in a 64-byte cache line."""
    return 64 // (tvm.DataType(dtype).bits // 8)


def _int_buffer(handle, shape, name: str):
    """An int32 index buffer that may be a view with an element offset (as TVM passes them)."""
    return T.match_buffer(handle, shape, "int32", elem_offset=tirx.Var(f"{name}_elem_offset", "int32"),
                          offset_factor=1)


def _scalar_args(causal: bool):
    """Declare TVM's scalar attention arguments in its order: ``causal`` (prefill kernels only),
    ``rotary_mode``, ``rope_scale``, ``rope_theta``, ``sm_scale``. Returns (causal or None,
    rotary_mode, sm_scale); these kernels need no RoPE parameters (``_rope_applied``)."""
    flag = T.arg("causal", tirx.Var("causal", "int32")) if causal else None
    rotary_mode = T.arg("rotary_mode", tirx.Var("rotary_mode", "int32"))
    for name in ("rope_scale", "rope_theta"):
        T.arg(name, tirx.Var(name, "float32"))
    return flag, rotary_mode, T.arg("sm_scale", tirx.Var("sm_scale", "float32"))


def _rope_applied(rotary_mode):
    """Guard of a kernel body: these kernels do not apply RoPE themselves."""
    return T.Assert(rotary_mode == 0, "edge-os CPU attention needs RoPE applied before the KV cache")


def _attend_rows(shape: _Shape, rows: int, q_vec, visible, key, value, store_out, store_lse,
                 fetch_block=None) -> None:
    """Online softmax of ``rows`` query rows over the same ``visible`` keys, 16 at a time: each key
    and value vector is loaded (and widened) once for all of them, as for the query heads that
    share a KV head.

    ``q_vec(g, j)`` is lanes ``8j..8j+7`` of query row ``g``, scaled, as float32;
    ``key(block, t, j)`` / ``value(block, t, j)`` load lanes of key / value ``t`` of a block as
    float32; ``store_out(g, j, vector)`` and ``store_lse(g, value)`` write row ``g``'s results;
    ``fetch_block(block)``, if given, prefetches a block's keys and values: it is called for the
    first block before the loop and for the next one at the start of each block.
    """
    vectors = shape.dim // LANES
    out = T.decl_buffer((rows * shape.dim,), "float32")
    scores = T.decl_buffer((rows * BLOCK,), "float32")
    # per row: running maximum, running sum, block maximum, rescale
    state = T.decl_buffer((rows * 4,), "float32")
    for g in range(rows):
        T.buffer_store(state, const(EMPTY_MAX), [4 * g])
        T.buffer_store(state, const(1.0), [4 * g + 1])
        for j in range(vectors):
            T.buffer_store(out, bcast(const(0.0), LANES), vstore_index(g * shape.dim + j * LANES, lanes=LANES))
    blocks = T.Bind(tirx.indexdiv(visible + BLOCK - 1, BLOCK))
    if fetch_block is not None:
        with T.If(blocks > 0), T.Then():
            fetch_block(0)
    with T.serial(0, blocks) as block:
        count = tirx.min(visible - block * BLOCK, BLOCK)
        if fetch_block is not None:
            with T.If(block + 1 < blocks), T.Then():
                fetch_block(block + 1)
        for g in range(rows):
            T.buffer_store(state, const(EMPTY_MAX), [4 * g + 2])
        with T.serial(0, count) as t:
            keys = [key(block, t, j) for j in range(vectors)]
            for g in range(rows):
                # q_vec is loop-invariant: LLVM keeps what it can of the scaled queries in registers
                dot = tree_sum([q_vec(g, j) * keys[j] for j in range(vectors)])
                score = tree_sum([tirx.Shuffle([dot], [lane]) for lane in range(LANES)])
                T.buffer_store(scores, score, [g * BLOCK + t])
                T.buffer_store(state, tirx.max(load(state, 4 * g + 2), score), [4 * g + 2])
        for g in range(rows):
            # Expressions read buffers when evaluated, so every value that a later store changes
            # is stored first: the block maximum becomes the new maximum, then the rescale factor.
            T.buffer_store(state, tirx.max(load(state, 4 * g), load(state, 4 * g + 2)), [4 * g + 2])
            T.buffer_store(state, tirx.exp2(load(state, 4 * g) - load(state, 4 * g + 2)), [4 * g + 3])
            new_max, rescale = load(state, 4 * g + 2), load(state, 4 * g + 3)
            for half in range(BLOCK // LANES):  # scores become probabilities, 0 past the last key
                inside = tirx.Ramp(half * LANES, 1, LANES) < bcast(count, LANES)
                at = g * BLOCK + half * LANES
                p = tirx.Select(inside, exp2(vload(scores, at, lanes=LANES) - bcast(new_max, LANES), LANES),
                                bcast(const(0.0), LANES))
                T.buffer_store(scores, p, vstore_index(at, lanes=LANES))
            probs = tree_sum([vload(scores, g * BLOCK + half * LANES, lanes=LANES) for half in range(BLOCK // LANES)])
            total = tree_sum([tirx.Shuffle([probs], [lane]) for lane in range(LANES)])
            T.buffer_store(state, load(state, 4 * g + 1) * rescale + total, [4 * g + 1])
            T.buffer_store(state, new_max, [4 * g])
            for j in range(vectors):
                at = g * shape.dim + j * LANES
                T.buffer_store(out, vload(out, at, lanes=LANES) * bcast(rescale, LANES), vstore_index(at, lanes=LANES))
        with T.serial(0, count) as t:
            values = [value(block, t, j) for j in range(vectors)]
            for g in range(rows):
                p = bcast(load(scores, g * BLOCK + t), LANES)
                for j in range(vectors):
                    at = g * shape.dim + j * LANES
                    T.buffer_store(out, vload(out, at, lanes=LANES) + p * values[j], vstore_index(at, lanes=LANES))
    for g in range(rows):
        inv = const(1.0) / load(state, 4 * g + 1)
        for j in range(vectors):
            at = g * shape.dim + j * LANES
            store_out(g, j, shape.out_vector(vload(out, at, lanes=LANES) * bcast(inv, LANES)))
        store_lse(g, load(state, 4 * g) + tirx.log2(load(state, 4 * g + 1)))


def _attend_group(shape: _Shape, q, out, lse, row, kv_head, scale, visible, key, value, fetch_block=None,
                  out_row=None) -> None:
    """The query heads of ``row`` that share ``kv_head`` (``q``/``out`` are ``[row, head, dim]``,
    ``lse`` is ``[row, head]``), against ``visible`` keys and values of that KV head; the results
    go to row ``out_row`` of ``out`` and ``lse`` (None: row ``row``)."""
    group = shape.heads // shape.kv_heads
    at = row if out_row is None else out_row

    def head(g):
        return kv_head * group + g

    _attend_rows(
        shape, group, lambda g, j: to_f32(vload(q, row, head(g), j * LANES, lanes=LANES), LANES) * scale,
        visible, key, value,
        lambda g, j, v: T.buffer_store(out, v, vstore_index(at, head(g), j * LANES, lanes=LANES)),
        lambda g, v: T.buffer_store(lse, v, [at, head(g)]), fetch_block)


def _visible(causal, row, kv_len, qo_len):
    """Keys a query row sees: all ``kv_len``, or under a causal mask those up to its position."""
    limit = tirx.max(tirx.min(kv_len - qo_len + row + 1, kv_len), 0)
    return tirx.Select(causal > 0, limit, kv_len)


def _window_start(length_info, b):
    """Where the visible keys of sequence ``b`` start in its first page under a sliding window
    (the window's offset). Attention sinks, which TVM's cache places before the window, are not
    handled: edge-os never enables them (``kv_state_enable_sliding_window_for_seq``)."""
    return T.Bind(load(length_info, 1, b))


def _kv_len(n_pages, length_info, b, sliding: bool):
    """Keys the pages hold for sequence ``b`` (under a sliding window: those in the window)."""
    if not sliding:
        return tirx.Select(n_pages > 0, (n_pages - 1) * BLOCK + load(length_info, b), 0)
    in_window = load(length_info, 0, b) - load(length_info, 1, b) + load(length_info, 2, b)
    return tirx.Select(n_pages > 0, (n_pages - 1) * BLOCK + in_window, 0)


def build_decode(shape: _Shape, sliding: bool = False) -> tirx.PrimFunc:
    """``batch_decode_paged_kv_cpu`` (and its ``_sliding_window`` variant): one new query row per
    sequence against its pages."""
    h, hkv, d = shape.heads, shape.kv_heads, shape.dim
    with IRBuilder() as ib:
        with T.prim_func():
            T.func_attr({"tirx.is_scheduled": True, "tirx.noalias": True})
            handles = [T.arg(name, T.handle()) for name in (
                "Q_handle", "pages_handle", "page_table_indptr_handle", "page_table_values_handle",
                "var_length_info", "k_rope_pos_offset_handle", "q_rope_position_handle", "output_handle",
                "lse_handle")]
            _, rotary_mode, sm_scale = _scalar_args(causal=False)
            batch, pages_n, nnz = T.int32(), T.int32(), T.int32()
            q = T.match_buffer(handles[0], (batch, h, d), shape.q_dtype)
            pages = T.match_buffer(handles[1], (pages_n, 2, hkv, BLOCK, d), shape.kv_dtype)
            indptr = _int_buffer(handles[2], (batch + 1,), "page_indptr")
            values = _int_buffer(handles[3], (nnz,), "page_values")
            info = _int_buffer(handles[4], (3, batch) if sliding else (batch,), "length_info")
            _int_buffer(handles[5], (batch,), "k_rope_pos_offset")
            _int_buffer(handles[6], (batch,), "q_rope_position")
            out = T.match_buffer(handles[7], (batch, h, d), shape.out_dtype)
            lse = T.match_buffer(handles[8], (batch, h), "float32")
            scale = bcast(sm_scale * const(LOG2E), LANES)

            def attend(b, kv_head, first_block=0, blocks=None, out=out, lse=lse, out_row=None, out_shape=shape):
                """``kv_head`` of sequence ``b``, against ``blocks`` of its key blocks from
                ``first_block`` on (all of them: ``blocks`` None), into row ``out_row`` of
                ``out`` and ``lse`` (None: row ``b``), stored as ``out_shape`` says."""
                first, n_pages = load(indptr, b), load(indptr, b + 1) - load(indptr, b)
                kv_len = T.Bind(_kv_len(n_pages, info, b, sliding))
                offset = _window_start(info, b) if sliding else 0

                def slot(block, t):
                    """(page, slot in it) of key ``t`` of a block; under a sliding window a block
                    may end past the last page (the slots after the last key), so the page's
                    index stays within the sequence's for the prefetches of the whole block"""
                    block = block + first_block
                    if not sliding:
                        return load(values, first + block), t
                    at = offset + block * BLOCK + t
                    return load(values, first + tirx.min(at // BLOCK, n_pages - 1)), at % BLOCK

                def key(block, t, j, half=0):
                    page, at = slot(block, t)
                    return to_f32(vload(pages, page, half, kv_head, at, j * LANES, lanes=LANES), LANES)

                def fetch_block(block):
                    for t in range(BLOCK):
                        page, at = slot(block, t)
                        for half in range(2):
                            for first_of_line in range(0, d, _per_line(shape.kv_dtype)):
                                T.evaluate(prefetch(pages, page, half, kv_head, at, first_of_line))

                visible = kv_len if blocks is None else tirx.max(
                    tirx.min(kv_len - first_block * BLOCK, blocks * BLOCK), 0)
                _attend_group(out_shape, q, out, lse, b, kv_head, scale, visible,
                              key, lambda block, t, j: key(block, t, j, half=1), fetch_block, out_row)

            with _rope_applied(rotary_mode):
                if sliding:  # a window bounds its keys: no split
                    with T.parallel(0, batch * hkv) as task:
                        attend(task // hkv, task % hkv)
                else:
                    _split_or_whole(shape, batch, indptr, info, out, lse, attend)
    return ib.get()


# Decode of a few long sequences: each KV head's keys in parts, merged after. With fewer tasks
# (sequences x KV heads) than SPLIT_BELOW, a step of one SmolLM2 stream (3 KV heads) runs 3
# tasks, and 2 threads take 2 and 1; with a sequence of SPLIT_FROM keys or more, each task's keys
# go in SPLITS parts (whole blocks), so the work divides evenly, and one merge per query head
# joins the parts' outputs by their log-sum-exps (as flash-decoding does on GPUs).
SPLIT_BELOW = 4
SPLIT_FROM = 384
SPLITS = 4


def _split_or_whole(shape: _Shape, batch, indptr, info, out, lse, attend) -> None:
    """``attend`` (``build_decode``'s) over every (sequence, KV head) task, whole, or in
    ``SPLITS`` parts of its key blocks merged into ``out`` and ``lse`` (see ``SPLIT_BELOW``)."""
    h, hkv = shape.heads, shape.kv_heads
    longest = T.decl_buffer((1,), "int32")
    T.buffer_store(longest, 0, [0])
    with T.serial(0, tirx.min(batch, SPLIT_BELOW)) as b:
        n_pages = load(indptr, b + 1) - load(indptr, b)
        T.buffer_store(longest, tirx.max(load(longest, 0), _kv_len(n_pages, info, b, False)), [0])
    with T.If(tirx.And(batch * hkv < SPLIT_BELOW, load(longest, 0) >= SPLIT_FROM)):
        with T.Then():
            part_out = T.decl_buffer((SPLITS * batch, h, shape.dim), "float32")  # row: part * batch + b
            part_lse = T.decl_buffer((SPLITS * batch, h), "float32")
            blocks = T.Bind((load(longest, 0) + BLOCK * SPLITS - 1) // (BLOCK * SPLITS))  # per part
            in_float = copy.copy(shape)
            in_float.out_dtype = "float32"
            with T.attr(0, "pragma_parallel_launch_point", 1):
                with T.attr(0, "pragma_parallel_barrier_when_finish", 1):
                    with T.parallel(0, SPLITS * batch * hkv) as task:
                        part, b = task // (batch * hkv), (task // hkv) % batch
                        attend(b, task % hkv, part * blocks, blocks, part_out, part_lse, part * batch + b, in_float)
                with T.parallel(0, batch * h) as row:
                    _merge(shape, part_out, part_lse, batch, row // h, row % h, out, lse)
        with T.Else():
            with T.parallel(0, batch * hkv) as task:
                attend(task // hkv, task % hkv)


def _merge(shape: _Shape, part_out, part_lse, batch, b, head, out, lse) -> None:
    """Query head ``head`` of sequence ``b`` from its ``SPLITS`` parts: each part's output
    weighted by 2^(its log-sum-exp - the largest). A part without keys has TVM's empty
    log-sum-exp (-5e4) and an output of zeros, so it weighs nothing beside a part with keys; with
    none, the row stays empty (zeros, -5e4)."""
    lses = [T.Bind(load(part_lse, p * batch + b, head)) for p in range(SPLITS)]
    top = T.Bind(functools.reduce(tirx.max, lses))
    weights = [T.Bind(tirx.exp2(value - top)) for value in lses]
    total = T.Bind(tree_sum(weights))
    for j in range(shape.dim // LANES):
        merged = tree_sum([vload(part_out, p * batch + b, head, j * LANES, lanes=LANES) * bcast(weight, LANES)
                           for p, weight in enumerate(weights)])
        T.buffer_store(out, shape.out_vector(merged * bcast(const(1.0) / total, LANES)),
                       vstore_index(b, head, j * LANES, lanes=LANES))
    T.buffer_store(lse, tirx.Select(top > const(EMPTY_MAX), top + tirx.log2(total), const(EMPTY_MAX)), [b, head])


def build_prefill_ragged(shape: _Shape) -> tirx.PrimFunc:
    """``batch_prefill_ragged_kv``: the new tokens of each sequence attend to each other."""
    h, hkv, d = shape.heads, shape.kv_heads, shape.dim
    with IRBuilder() as ib:
        with T.prim_func():
            T.func_attr({"tirx.is_scheduled": True, "tirx.noalias": True})
            handles = [T.arg(name, T.handle()) for name in (
                "var_q", "var_q_indptr", "var_k", "var_v", "var_kv_indptr", "var_q_rope_position",
                "var_k_rope_pos_offset", "var_output", "var_lse")]
            causal, rotary_mode, sm_scale = _scalar_args(causal=True)
            batch, qo_total, kv_total = T.int32(), T.int32(), T.int32()
            q = T.match_buffer(handles[0], (qo_total, h, d), shape.q_dtype)
            q_indptr = _int_buffer(handles[1], (batch + 1,), "q_indptr")
            k = T.match_buffer(handles[2], (kv_total, hkv, d), shape.kv_dtype)
            v = T.match_buffer(handles[3], (kv_total, hkv, d), shape.kv_dtype)
            kv_indptr = _int_buffer(handles[4], (batch + 1,), "kv_indptr")
            _int_buffer(handles[5], (qo_total,), "q_rope_position")
            _int_buffer(handles[6], (batch,), "k_rope_pos_offset")
            out = T.match_buffer(handles[7], (qo_total, h, d), shape.out_dtype)
            lse = T.match_buffer(handles[8], (qo_total, h), "float32")
            scale = bcast(sm_scale * const(LOG2E), LANES)
            with _rope_applied(rotary_mode), T.serial(0, batch) as b:
                q_first, qo_len = load(q_indptr, b), load(q_indptr, b + 1) - load(q_indptr, b)
                kv_first, kv_len = load(kv_indptr, b), load(kv_indptr, b + 1) - load(kv_indptr, b)
                with T.parallel(0, qo_len * hkv) as task:
                    row, kv_head = q_first + task // hkv, task % hkv

                    def key(block, t, j, tensor=k):
                        return to_f32(vload(tensor, kv_first + block * BLOCK + t, kv_head, j * LANES,
                                            lanes=LANES), LANES)

                    visible = _visible(causal, task // hkv, kv_len, qo_len)
                    _attend_group(shape, q, out, lse, row, kv_head, scale, visible,
                                  key, lambda block, t, j: key(block, t, j, tensor=v))
    return ib.get()


def build_prefill_paged(shape: _Shape, window: int = 0) -> tirx.PrimFunc:
    """``batch_prefill_paged_kv_cpu``: new tokens attend to what the cache held before them; with
    a ``window`` its ``_sliding_window`` variant, whose causal rows see only the cached keys
    within ``window - row - 1`` of the end."""
    sliding = window > 0
    h, hkv, d = shape.heads, shape.kv_heads, shape.dim
    with IRBuilder() as ib:
        with T.prim_func():
            T.func_attr({"tirx.is_scheduled": True, "tirx.noalias": True})
            handles = [T.arg(name, T.handle()) for name in (
                "var_q", "var_q_indptr", "var_pages", "var_page_indptr", "var_page_values",
                "var_length_info", "var_k_rope_pos_offset", "var_q_rope_position", "var_output", "var_lse")]
            causal, rotary_mode, sm_scale = _scalar_args(causal=True)
            batch, total, pages_n, nnz = T.int32(), T.int32(), T.int32(), T.int32()
            q = T.match_buffer(handles[0], (total, h, d), shape.q_dtype)
            q_indptr = _int_buffer(handles[1], (batch + 1,), "q_indptr")
            pages = T.match_buffer(handles[2], (pages_n, 2, hkv, BLOCK, d), shape.kv_dtype)
            page_indptr = _int_buffer(handles[3], (batch + 1,), "page_indptr")
            values = _int_buffer(handles[4], (nnz,), "page_values")
            info = _int_buffer(handles[5], (3, batch) if sliding else (batch,), "length_info")
            _int_buffer(handles[6], (batch,), "k_rope_pos_offset")
            _int_buffer(handles[7], (total,), "q_rope_position")
            out = T.match_buffer(handles[8], (total, h, d), shape.out_dtype)
            lse = T.match_buffer(handles[9], (total, h), "float32")
            scale = bcast(sm_scale * const(LOG2E), LANES)
            with _rope_applied(rotary_mode), T.serial(0, batch) as b:
                q_first, qo_len = load(q_indptr, b), load(q_indptr, b + 1) - load(q_indptr, b)
                first, n_pages = load(page_indptr, b), load(page_indptr, b + 1) - load(page_indptr, b)
                kv_len = T.Bind(_kv_len(n_pages, info, b, sliding))
                with T.parallel(0, qo_len * hkv) as task:
                    row, kv_head = q_first + task // hkv, task % hkv
                    if sliding:
                        seen = tirx.max(window - task // hkv - 1, 0)
                        start = T.Bind(tirx.Select(causal > 0, tirx.max(kv_len - seen, 0), 0))
                        visible = T.Bind(kv_len - start)
                        base = T.Bind(start + _window_start(info, b))
                    else:
                        visible = _visible(causal, task // hkv, kv_len, qo_len)

                    def key(block, t, j, half=0):
                        if not sliding:
                            page = load(values, first + block)
                            return to_f32(vload(pages, page, half, kv_head, t, j * LANES, lanes=LANES), LANES)
                        at = base + block * BLOCK + t
                        page = load(values, first + at // BLOCK)
                        return to_f32(vload(pages, page, half, kv_head, at % BLOCK, j * LANES, lanes=LANES), LANES)

                    _attend_group(shape, q, out, lse, row, kv_head, scale, visible,
                                  key, lambda block, t, j: key(block, t, j, half=1))
    return ib.get()


# TVM's global symbol -> (builder, names of its query, K/V and output parameters)
REPLACED = {
    "batch_decode_paged_kv_cpu": (build_decode, ("Q", "pages", "output")),
    "batch_prefill_ragged_kv": (build_prefill_ragged, ("q", "k", "output")),
    "batch_prefill_paged_kv_cpu": (build_prefill_paged, ("q", "pages", "output")),
    "batch_decode_paged_kv_cpu_sliding_window": (lambda shape: build_decode(shape, sliding=True),
                                                 ("Q", "pages", "output")),
    "batch_prefill_paged_kv_cpu_sliding_window": (None, ("q", "pages", "output")),  # needs the window
}


def replacement(func: tirx.PrimFunc, model: dict) -> tirx.PrimFunc | None:
    """The fast kernel for one of TVM's CPU attention kernels, or ``None`` for any other."""
    symbol = str(func.attrs.get("global_symbol", "")) if func.attrs is not None else ""
    if symbol not in REPLACED:
        return None
    builder, names = REPLACED[symbol]
    if builder is None:  # the sliding-window prefill: the window is the model's (module attribute)
        if not model.get("sliding_window"):
            return None
        builder = lambda shape: build_prefill_paged(shape, window=int(model["sliding_window"]))  # noqa: E731
    params = {str(p.name): p for p in func.params}
    shape = _Shape(*(params[name] for name in names))
    return builder(shape).with_attr("global_symbol", symbol) if shape.supported else None


def applies(target: tvm.target.Target) -> bool:
    return target.kind.name == "llvm"


register_replacement(applies, replacement)
