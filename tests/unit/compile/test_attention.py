"""The CPU attention kernels against a numpy softmax, and TVM's kernels against the same numpy.

Small heads (4 query heads over 2 KV heads, dim 16) and sequences that cover an empty sequence,
a partial last page and a full page. With a float16 cache TVM hands the kernels float16 q, K/V and
output: numpy gets the same float16 inputs (widened exactly), so the only difference left is the
rounding of the output to float16, at most half a unit in the last place: 2**-11 relative.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import tvm
from tvm.relax.frontend.nn.llm._decode_kernels import _attention_decode_cpu
from tvm.relax.frontend.nn.llm._prefill_kernels import _attention_prefill_cpu, _attention_prefill_ragged_cpu

from edge_os.compile.kernels.attention_cpu import replacement

HOST = tvm.target.Target({"kind": "llvm", "mcpu": tvm.get_global_func("target.llvm_get_system_cpu")()})
H, HKV, D, PAGE = 4, 2, 16, 16
SM_SCALE = 1 / math.sqrt(D)
F16_RTOL = 2.0**-11  # float16 rounding of the output (11 significant bits)


def _tolerance(dtype):
    """Output tolerance: float32 accumulation (2e-5), plus the output's rounding for float16."""
    return {"atol": 2e-5, "rtol": F16_RTOL if dtype == "float16" else 0}


def _compile(func):
    symbol = str(func.attrs["global_symbol"])
    return tvm.compile(tvm.IRModule({symbol: func}), target=HOST)[symbol]


def _attention(q, k, v, visible):
    """q (h, d), k/v (n, hkv, d): output (h, d) and base-2 log-sum-exp (h,) over the first
    ``visible`` keys, with TVM's conventions (an empty row: zeros and -5e4)."""
    out, lse = np.zeros((H, D)), np.full(H, -5e4)
    for head in range(H):
        if visible == 0:
            continue
        kv = head // (H // HKV)
        s = (k[:visible, kv] @ q[head]) * SM_SCALE * math.log2(math.e)
        p = np.exp2(s - s.max())
        out[head] = p @ v[:visible, kv] / p.sum()
        lse[head] = s.max() + math.log2(p.sum())
    return out, lse


def _paged(rng, lengths, dtype="float32"):
    """Pages of ``dtype`` holding sequences of ``lengths`` tokens in shuffled page order; the keys
    and values per sequence as float32. The slots past a sequence's last token hold NaN, as a
    reused page may hold anything: a kernel must never let them into a result."""
    counts = [-(-n // PAGE) for n in lengths]
    order = rng.permutation(sum(counts) + 2).astype(np.int32)
    pages = rng.standard_normal((len(order), 2, HKV, PAGE, D)).astype(dtype)
    indptr = np.concatenate([[0], np.cumsum(counts)]).astype(np.int32)
    last = np.array([n - (c - 1) * PAGE if c else 0 for n, c in zip(lengths, counts, strict=True)], np.int32)
    for i, c in enumerate(counts):
        if c:
            pages[order[indptr[i + 1] - 1], :, :, last[i]:] = np.nan
    keys = [pages[order[indptr[i]:indptr[i + 1]], 0].transpose(0, 2, 1, 3).reshape(-1, HKV, D)[:n]
            for i, n in enumerate(lengths)]
    values = [pages[order[indptr[i]:indptr[i + 1]], 1].transpose(0, 2, 1, 3).reshape(-1, HKV, D)[:n]
              for i, n in enumerate(lengths)]
    keys, values = ([x.astype(np.float32) for x in xs] for xs in (keys, values))
    return pages, indptr, order[:indptr[-1]].copy(), last, keys, values


def _run(kernel, *arrays, scalars):
    tensors = [tvm.runtime.tensor(a) for a in arrays]
    kernel(*tensors, *scalars)
    return tensors


def _check_decode(kernel, rng, lengths, dtype):
    """One decode query per sequence of ``lengths`` keys: output and log-sum-exp as numpy's."""
    batch = len(lengths)
    pages, indptr, values, last, keys, vals = _paged(rng, lengths, dtype)
    q = rng.standard_normal((batch, H, D)).astype(dtype)
    zeros = np.zeros(batch, np.int32)
    t = _run(kernel, q, pages, indptr, values, last, zeros, zeros, np.zeros((batch, H, D), dtype),
             np.zeros((batch, H), np.float32), scalars=[0, 1.0, 1e4, SM_SCALE])
    for b, n in enumerate(lengths):
        out, lse = _attention(q[b].astype(np.float32), keys[b], vals[b], n)
        np.testing.assert_allclose(t[7].numpy()[b], out, **_tolerance(dtype))
        np.testing.assert_allclose(t[8].numpy()[b], lse, rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize("tvm_kernel,dtype", [(False, "float32"), (True, "float32"), (False, "float16")])
def test_decode_matches_numpy(tvm_kernel, dtype):
    ref = _attention_decode_cpu(HKV, H, D, dtype, False, {})
    kernel = _compile(ref if tvm_kernel else replacement(ref, {}))
    # 28: a last block of 12 keys, whose second 8 are partly masked out
    _check_decode(kernel, np.random.default_rng(0), [37, 0, 16, 28], dtype)


@pytest.mark.parametrize("lengths,split_below", [([383], 4), ([384], 4), ([385], 4), ([1000], 4),
                                                ([400, 0, 40], 8)])
@pytest.mark.parametrize("dtype", ["float32", "float16"])
def test_decode_of_few_long_sequences_splits_their_keys_and_merges_them(lengths, split_below, dtype, monkeypatch):
    """With fewer (sequence, KV head) tasks than SPLIT_BELOW and a sequence of SPLIT_FROM keys or
    more, each task's keys go in SPLITS parts merged by their log-sum-exps: the same output and
    log-sum-exp as one pass. 400 / 0 / 40 (under a larger SPLIT_BELOW): the shorter sequences' later
    parts hold no keys, and the empty one stays empty (zeros, -5e4)."""
    from edge_os.compile.kernels import attention_cpu

    monkeypatch.setattr(attention_cpu, "SPLIT_BELOW", split_below)
    assert len(lengths) * HKV < split_below and attention_cpu.SPLIT_FROM == 384  # which lengths split
    kernel = _compile(replacement(_attention_decode_cpu(HKV, H, D, dtype, False, {}), {}))
    _check_decode(kernel, np.random.default_rng(4), lengths, dtype)


@pytest.mark.parametrize("causal", [0, 1])
@pytest.mark.parametrize("tvm_kernel,dtype", [(False, "float32"), (True, "float32"), (False, "float16")])
def test_ragged_prefill_matches_numpy(causal, tvm_kernel, dtype):
    rng = np.random.default_rng(1)
    lengths = [5, 21]
    indptr = np.array([0, 5, 26], np.int32)
    q = rng.standard_normal((26, H, D)).astype(dtype)
    k, v = (rng.standard_normal((26, HKV, D)).astype(dtype) for _ in range(2))
    ref = _attention_prefill_ragged_cpu(HKV, H, D, D, dtype, {})
    kernel = _compile(ref if tvm_kernel else replacement(ref, {}))
    t = _run(kernel, q, indptr, k, v, indptr, np.zeros(26, np.int32), np.zeros(2, np.int32),
             np.zeros((26, H, D), dtype), np.zeros((26, H), np.float32), scalars=[causal, 0, 1.0, 1e4, SM_SCALE])
    q, k, v = (x.astype(np.float32) for x in (q, k, v))
    for b, n in enumerate(lengths):
        for row in range(n):
            i = indptr[b] + row
            out, lse = _attention(q[i], k[indptr[b]:], v[indptr[b]:], row + 1 if causal else n)
            np.testing.assert_allclose(t[7].numpy()[i], out, **_tolerance(dtype))
            np.testing.assert_allclose(t[8].numpy()[i], lse, rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize("causal", [0, 1])
@pytest.mark.parametrize("dtype", ["float32", "float16"])
def test_paged_prefill_matches_numpy(causal, dtype):
    # TVM's own kernel is not compared: it reads a one-element scale buffer at every head_dim index.
    rng = np.random.default_rng(2)
    lengths = [20, 0]
    pages, page_indptr, values, last, keys, vals = _paged(rng, lengths, dtype)
    q_indptr = np.array([0, 3, 7], np.int32)
    q = rng.standard_normal((7, H, D)).astype(dtype)
    kernel = _compile(replacement(_attention_prefill_cpu(HKV, H, D, dtype, False, {}), {}))
    t = _run(kernel, q, q_indptr, pages, page_indptr, values, last, np.zeros(2, np.int32), np.zeros(7, np.int32),
             np.zeros((7, H, D), dtype), np.zeros((7, H), np.float32), scalars=[causal, 0, 1.0, 1e4, SM_SCALE])
    q = q.astype(np.float32)
    for b, n in enumerate(lengths):
        qo_len = q_indptr[b + 1] - q_indptr[b]
        for row in range(qo_len):
            i = q_indptr[b] + row
            visible = max(min(n - qo_len + row + 1, n), 0) if causal else n
            out, lse = _attention(q[i], keys[b], vals[b], visible)
            np.testing.assert_allclose(t[8].numpy()[i], out, **_tolerance(dtype))
            np.testing.assert_allclose(t[9].numpy()[i], lse, rtol=1e-5, atol=1e-4)


def test_inline_rope_is_refused():
    kernel = _compile(replacement(_attention_decode_cpu(HKV, H, D, "float32", False, {}), {}))
    rng = np.random.default_rng(3)
    pages, indptr, values, last, _, _ = _paged(rng, [3])
    with pytest.raises(Exception, match="RoPE applied before"):
        _run(kernel, np.zeros((1, H, D), np.float32), pages, indptr, values, last, np.zeros(1, np.int32),
             np.zeros(1, np.int32), np.zeros((1, H, D), np.float32), np.zeros((1, H), np.float32),
             scalars=[1, 1.0, 1e4, SM_SCALE])
