"""Numpy reference of every weight format: quantize, pack, dequantize.

This is the oracle the TVM kernels are tested against, and the code that turns float weights
(or a GGUF's quantized blocks) into the arrays stored in a package.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from edge_os.quantize.formats import FORMATS, GROUP_SIZE, SUPER_BLOCK, WeightFormat


@dataclass
class QuantizedWeight:
    """One 2-D weight ``[n, k]`` in a format, as the arrays a package stores.

    ``arrays`` holds what ``formats.stored_arrays`` lists: ``qweight`` (uint32 ``[n, k/8]`` of low
    nibbles, int8 ``[n, k]`` for q8, float32 ``[n, k]`` for f32), and for quantized formats their
    scales (``scale`` ``[n, k/G]``, plus ``minimum`` for q4_1; ``qhigh``, ``sc``, ``mn``, ``d``,
    ``dmin`` for the carried GGUF formats).
    """

    fmt: WeightFormat
    shape: tuple[int, int]
    arrays: dict[str, np.ndarray]

    def dequantize(self) -> np.ndarray:
        return dequantize(self)

    def take_rows(self, rows: np.ndarray) -> QuantizedWeight:
        """The same weight restricted to (or reordered by) ``rows``: exact, blocks are per row."""
        arrays = {name: a[rows] for name, a in self.arrays.items()}
        return QuantizedWeight(self.fmt, (len(rows), self.shape[1]), arrays)

    def with_scale_dtype(self, dtype: str) -> QuantizedWeight:
        """The same weight with scales and minimums stored as ``dtype`` (float32 or float16)."""
        arrays = {name: a.astype(dtype, copy=False) if name in ("scale", "minimum") else a
                  for name, a in self.arrays.items()}
        return QuantizedWeight(self.fmt, self.shape, arrays)


def pack_int4(q: np.ndarray) -> np.ndarray:
    """Pack values 0..15 ``[n, k]`` into uint32 ``[n, k/8]`` (element 8j+i -> bits 4i of word j)."""
    n, k = q.shape
    q = q.astype(np.uint32).reshape(n, k // 8, 8)
    shifts = (np.arange(8, dtype=np.uint32) * 4)[None, None, :]
    return np.bitwise_or.reduce(q << shifts, axis=2).astype(np.uint32)


def unpack_int4(packed: np.ndarray) -> np.ndarray:
    """Inverse of ``pack_int4``: uint32 ``[n, k/8]`` -> uint8 ``[n, k]``."""
    n, words = packed.shape
    shifts = (np.arange(8, dtype=np.uint32) * 4)[None, None, :]
    return ((packed[:, :, None] >> shifts) & 0xF).astype(np.uint8).reshape(n, words * 8)


def _groups(w: np.ndarray) -> np.ndarray:
    n, k = w.shape
    if k % GROUP_SIZE:
        raise ValueError(f"cannot quantize a weight with {k} columns: not a multiple of {GROUP_SIZE}")
    return w.reshape(n, k // GROUP_SIZE, GROUP_SIZE)


def quantize(w: np.ndarray, fmt_name: str, scale_dtype: str = "float32") -> QuantizedWeight:
    """Round a float weight ``[n, k]`` into ``fmt_name`` (round to nearest, per group of 32)."""
    fmt = FORMATS[fmt_name]
    w = np.asarray(w, dtype=np.float32)
    n, k = w.shape
    if not fmt.quantized:
        return QuantizedWeight(fmt, (n, k), {"qweight": np.ascontiguousarray(w)})
    g = _groups(w)
    if fmt.name == "q4":
        # As GGUF Q4_0: the signed extreme maps to -8, so the whole range -8..7 is used.
        idx = np.argmax(np.abs(g), axis=2)[..., None]
        extreme = np.take_along_axis(g, idx, axis=2)[..., 0]
        scale = (extreme / -8.0).astype(scale_dtype).astype(np.float32)
        inv = np.divide(1.0, scale, out=np.zeros_like(scale), where=scale != 0)
        q = np.clip(np.round(g * inv[..., None] + 8.0), 0, 15).astype(np.uint8)
        arrays = {"qweight": pack_int4(q.reshape(n, k)), "scale": scale.astype(scale_dtype)}
    elif fmt.name == "q4_1":
        lo, hi = g.min(axis=2), g.max(axis=2)
        scale = ((hi - lo) / 15.0).astype(scale_dtype).astype(np.float32)
        minimum = lo.astype(scale_dtype).astype(np.float32)
        inv = np.divide(1.0, scale, out=np.zeros_like(scale), where=scale != 0)
        q = np.clip(np.round((g - minimum[..., None]) * inv[..., None]), 0, 15).astype(np.uint8)
        arrays = {
            "qweight": pack_int4(q.reshape(n, k)),
            "scale": scale.astype(scale_dtype),
            "minimum": minimum.astype(scale_dtype),
        }
    elif fmt.name == "q8":
        scale = (np.abs(g).max(axis=2) / 127.0).astype(scale_dtype).astype(np.float32)
        inv = np.divide(1.0, scale, out=np.zeros_like(scale), where=scale != 0)
        q = np.clip(np.round(g * inv[..., None]), -127, 127).astype(np.int8)
        arrays = {"qweight": q.reshape(n, k), "scale": scale.astype(scale_dtype)}
    else:  # pragma: no cover - FORMATS is closed
        raise ValueError(fmt.name)
    return QuantizedWeight(fmt, (n, k), arrays)


def unpack_bits(words: np.ndarray, bits: int) -> np.ndarray:
    """uint32 ``[n, w]`` holding ``32/bits`` values each (value ``i`` in bits ``bits*i``) -> uint8."""
    per = 32 // bits
    shifts = (np.arange(per, dtype=np.uint32) * bits)[None, None, :]
    n, w = words.shape
    return ((words[:, :, None] >> shifts) & ((1 << bits) - 1)).astype(np.uint8).reshape(n, w * per)


def pack_bits(values: np.ndarray, bits: int) -> np.ndarray:
    """Inverse of ``unpack_bits``: uint8 ``[n, k]`` of ``bits``-bit values -> uint32 ``[n, k*bits/32]``."""
    per = 32 // bits
    n, k = values.shape
    v = values.astype(np.uint32).reshape(n, k // per, per)
    shifts = (np.arange(per, dtype=np.uint32) * bits)[None, None, :]
    return np.bitwise_or.reduce(v << shifts, axis=2).astype(np.uint32)


def q5_fifth_bits(qhigh: np.ndarray) -> np.ndarray:
    """q5_0's fifth bits ``[n, k/32]`` words -> ``[n, k]`` in element order. Each word holds its
    group's even elements in bits 0-15 and the odd ones in bits 16-31 (the order in which the
    kernels' low and high nibbles come), a permutation of GGUF's ``qh`` (bit i: element i)."""
    n, groups = qhigh.shape
    return unpack_bits(qhigh, 1).reshape(n, groups, 2, 16).transpose(0, 1, 3, 2).reshape(n, groups * 32)


def q5_pack_fifth_bits(bits: np.ndarray) -> np.ndarray:
    """Inverse of ``q5_fifth_bits``."""
    n, k = bits.shape
    return pack_bits(bits.reshape(n, k // 32, 16, 2).transpose(0, 1, 3, 2).reshape(n, k), 1)


def _dequantize_carried(qw: QuantizedWeight) -> np.ndarray:
    """q5_0 / q5_1 / q4_k / q5_k / q6_k / q8_m, with float32 operations in the order llama.cpp's
    dequantization uses."""
    n, k = qw.shape
    a = qw.arrays
    if qw.fmt.name == "q8_m":  # as Q5_1 (Q8_0 rows: plus a minimum of 0, the same value)
        return (a["qweight"].reshape(n, -1, GROUP_SIZE).astype(np.float32) * a["scale"].astype(np.float32)[..., None]
                + a["minimum"].astype(np.float32)[..., None]).reshape(n, k)
    q = unpack_int4(a["qweight"]).astype(np.int32)
    if qw.fmt.bits == 5:
        q = q | (q5_fifth_bits(a["qhigh"]).astype(np.int32) << 4)
    if qw.fmt.name == "q5_0":
        return ((q - 16).reshape(n, -1, GROUP_SIZE).astype(np.float32)
                * a["scale"].astype(np.float32)[..., None]).reshape(n, k)
    if qw.fmt.name == "q5_1":
        return (q.reshape(n, -1, GROUP_SIZE).astype(np.float32) * a["scale"].astype(np.float32)[..., None]
                + a["minimum"].astype(np.float32)[..., None]).reshape(n, k)
    per_super = SUPER_BLOCK // GROUP_SIZE
    d = np.repeat(a["d"].astype(np.float32), per_super, axis=1)  # per group of 32
    if qw.fmt.name in ("q4_k", "q5_k"):
        scale = d * a["sc"].astype(np.float32)
        minimum = np.repeat(a["dmin"].astype(np.float32), per_super, axis=1) * a["mn"].astype(np.float32)
        return (scale[..., None] * q.reshape(n, -1, GROUP_SIZE).astype(np.float32) - minimum[..., None]).reshape(n, k)
    if qw.fmt.name == "q6_k":
        q = (q | (unpack_bits(a["qhigh"], 2).astype(np.int32) << 4)) - 32
        scale = np.repeat(d, 2, axis=1) * a["sc"].astype(np.float32)  # per group of 16
        return (scale[..., None] * q.reshape(n, -1, 16).astype(np.float32)).reshape(n, k)
    raise ValueError(qw.fmt.name)  # pragma: no cover - FORMATS is closed


def dequantize(qw: QuantizedWeight) -> np.ndarray:
    """The float32 ``[n, k]`` weight a quantized one stands for."""
    n, k = qw.shape
    a = qw.arrays
    if not qw.fmt.quantized:
        return a["qweight"].astype(np.float32)
    if qw.fmt.carried_only:
        return _dequantize_carried(qw)
    scale = a["scale"].astype(np.float32)[..., None]
    if qw.fmt.bits == 4:
        q = unpack_int4(a["qweight"]).reshape(n, k // GROUP_SIZE, GROUP_SIZE).astype(np.float32)
        if qw.fmt.asymmetric:
            w = q * scale + a["minimum"].astype(np.float32)[..., None]
        else:
            w = (q - 8.0) * scale
    else:
        w = a["qweight"].reshape(n, k // GROUP_SIZE, GROUP_SIZE).astype(np.float32) * scale
    return w.reshape(n, k)


def as_q8(qw: QuantizedWeight) -> QuantizedWeight | None:
    """The same values in the q8 format, when they fit it exactly (q4 and q5_0: integers in -16..15
    times the same per-group scale); None otherwise."""
    if qw.fmt.name == "q8":
        return qw
    n, k = qw.shape
    if qw.fmt.name == "q4":
        q = unpack_int4(qw.arrays["qweight"]).astype(np.int8) - 8
    elif qw.fmt.name == "q5_0":
        q = (unpack_int4(qw.arrays["qweight"]) | (q5_fifth_bits(qw.arrays["qhigh"]) << 4)).astype(np.int8) - 16
    else:
        return None
    return QuantizedWeight(FORMATS["q8"], (n, k), {"qweight": q.reshape(n, k), "scale": qw.arrays["scale"]})


def as_q8_m(qw: QuantizedWeight) -> QuantizedWeight | None:
    """The same values in the q8_m format (int8 times a per-group scale plus a minimum), when they
    fit it exactly: q4_1 and q5_1 (``scale * q + minimum``, q in 0..15 / 0..31), and q8 and what
    ``as_q8`` turns into it (minimum 0); None otherwise."""
    n, k = qw.shape
    if qw.fmt.name == "q8_m":
        return qw
    qw = as_q8(qw) or qw
    if qw.fmt.name == "q8":
        q, minimum = qw.arrays["qweight"], np.zeros_like(qw.arrays["scale"])
    elif qw.fmt.name in ("q4_1", "q5_1"):
        q = unpack_int4(qw.arrays["qweight"])
        if qw.fmt.name == "q5_1":
            q = q | (q5_fifth_bits(qw.arrays["qhigh"]) << 4)
        q, minimum = q.astype(np.int8), qw.arrays["minimum"]
    else:
        return None
    arrays = {"qweight": q.reshape(n, k), "scale": qw.arrays["scale"], "minimum": minimum}
    return QuantizedWeight(FORMATS["q8_m"], (n, k), arrays)


# --- GGUF blocks carried over exactly ------------------------------------------------------
# A GGUF row of K values is K/32 blocks. Q4_0: f16 d + 16 bytes (value j in the low nibble of
# byte j, value j+16 in its high nibble). Q4_1: f16 d, f16 m, then the same 16 bytes. Q8_0: f16 d
# + 32 int8. Q5_0: f16 d, uint32 qh (bit j: the fifth bit of value j), then Q4_0's 16 bytes.
# Q5_1: f16 d, f16 m, uint32 qh, then the 16 bytes. K-quants (ggml's block_q4_K / block_q5_K /
# block_q6_K) hold K/256 super-blocks, unpacked below.
CARRIED_GGUF_TYPES = {"Q4_0": "q4", "Q4_1": "q4_1", "Q8_0": "q8", "Q5_0": "q5_0", "Q5_1": "q5_1",
                      "Q4_K": "q4_k", "Q5_K": "q5_k", "Q6_K": "q6_k"}


def _f16(raw: np.ndarray) -> np.ndarray:
    """Little-endian float16 from the last axis of 2 bytes."""
    return raw.copy().view(np.float16)[..., 0]


def _k_scales(s: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The 8 sub-block scales and minimums ``[..., 8]`` of Q4_K's and Q5_K's 12 scale bytes.

    As ggml's get_scale_min_k4: sub-blocks 0-3 in the low 6 bits of bytes 0-3 (scales) and 4-7
    (minimums); 4-7 in the nibbles of bytes 8-11 plus the top 2 bits of bytes 0-3 / 4-7."""
    sc = np.concatenate([s[..., 0:4] & 63, (s[..., 8:12] & 0xF) | ((s[..., 0:4] >> 6) << 4)], axis=-1)
    mn = np.concatenate([s[..., 4:8] & 63, (s[..., 8:12] >> 4) | ((s[..., 4:8] >> 6) << 4)], axis=-1)
    return sc, mn


def _k_nibbles(qs: np.ndarray, n: int, k: int) -> np.ndarray:
    """Q4_K's / Q5_K's 128 bytes of nibbles per super-block -> values ``[n, k]``: per 64 values,
    bytes 0-31's low nibbles are values 0-31 and their high nibbles values 32-63."""
    qs = qs.reshape(n, -1, 4, 32)
    return np.stack([qs & 0xF, qs >> 4], axis=3).reshape(n, k)


def _q4_k(raw: np.ndarray, n: int, k: int) -> QuantizedWeight:
    """block_q4_K (144 bytes): f16 d, f16 dmin, 12 bytes of 6-bit scales and minimums, 128 bytes
    of nibbles."""
    blocks = raw.reshape(n, k // SUPER_BLOCK, 144)
    sc, mn = _k_scales(blocks[..., 4:16].astype(np.uint8))
    arrays = {"qweight": pack_int4(_k_nibbles(blocks[..., 16:144], n, k)), "sc": sc.reshape(n, -1),
              "mn": mn.reshape(n, -1), "d": _f16(blocks[..., 0:2]), "dmin": _f16(blocks[..., 2:4])}
    return QuantizedWeight(FORMATS["q4_k"], (n, k), arrays)


def _q5_k(raw: np.ndarray, n: int, k: int) -> QuantizedWeight:
    """block_q5_K (176 bytes): Q4_K's d, dmin and 12 scale bytes, then 32 bytes ``qh`` of fifth
    bits, then Q4_K's 128 bytes of nibbles. Value ``l`` of 32-value sub-block ``j`` (0-7) has its
    fifth bit in bit ``j`` of ``qh[l]``."""
    blocks = raw.reshape(n, k // SUPER_BLOCK, 176)
    sc, mn = _k_scales(blocks[..., 4:16].astype(np.uint8))
    qh = blocks[..., 16:48]  # [n, super, l]
    fifth = np.stack([(qh >> j) & 1 for j in range(8)], axis=2).reshape(n, k)  # [n, super, j, l]
    arrays = {"qweight": pack_int4(_k_nibbles(blocks[..., 48:176], n, k)), "qhigh": q5_pack_fifth_bits(fifth),
              "sc": sc.reshape(n, -1), "mn": mn.reshape(n, -1), "d": _f16(blocks[..., 0:2]),
              "dmin": _f16(blocks[..., 2:4])}
    return QuantizedWeight(FORMATS["q5_k"], (n, k), arrays)


def _q6_k(raw: np.ndarray, n: int, k: int) -> QuantizedWeight:
    """block_q6_K (210 bytes): 128 bytes of low nibbles, 64 of 2-bit highs, 16 int8 scales, f16 d.
    Per 128 values: low nibbles of ql[0:32], ql[32:64] are values 0-31, 32-63, their high nibbles
    values 64-95, 96-127; bits 0-1, 2-3, 4-5, 6-7 of qh[0:32] the highs of those four quarters."""
    blocks = raw.reshape(n, k // SUPER_BLOCK, 210)
    ql = blocks[..., 0:128].reshape(n, -1, 2, 2, 32)  # [half][ql byte range][l]
    qh = blocks[..., 128:192].reshape(n, -1, 2, 32)
    q_low = np.stack([ql & 0xF, ql >> 4], axis=3).reshape(n, k)  # [half][nibble][range][l]: quarter 2*nibble+range
    q_high = np.stack([(qh >> shift) & 3 for shift in (0, 2, 4, 6)], axis=3).reshape(n, k)
    sc = blocks[..., 192:208].copy().view(np.int8).reshape(n, -1)
    arrays = {"qweight": pack_int4(q_low), "qhigh": pack_bits(q_high, 2), "sc": sc,
              "d": _f16(blocks[..., 208:210])}
    return QuantizedWeight(FORMATS["q6_k"], (n, k), arrays)


def _nibbles(qs: np.ndarray) -> np.ndarray:
    """GGUF block bytes ``[..., 16]`` -> values ``[..., 32]`` in element order."""
    return np.concatenate([qs & 0xF, qs >> 4], axis=-1)


def from_gguf_blocks(raw: np.ndarray, ggml_type: str, n: int, k: int) -> QuantizedWeight:
    """Carry a GGUF tensor of a type in ``CARRIED_GGUF_TYPES`` (raw bytes ``[n, bytes_per_row]``)
    over exactly; its scales (and minimums) stay float16, as the file stores them."""
    blocks = k // GROUP_SIZE
    raw = np.ascontiguousarray(raw, dtype=np.uint8)
    if ggml_type == "Q4_K":
        return _q4_k(raw, n, k)
    if ggml_type == "Q5_K":
        return _q5_k(raw, n, k)
    if ggml_type == "Q6_K":
        return _q6_k(raw, n, k)
    raw = raw.reshape(n, blocks, -1)
    d = raw[..., 0:2].copy().view(np.float16)[..., 0]
    if ggml_type == "Q4_0":
        q = _nibbles(raw[..., 2:18]).reshape(n, k)
        return QuantizedWeight(FORMATS["q4"], (n, k), {"qweight": pack_int4(q), "scale": d})
    if ggml_type == "Q4_1":
        m = raw[..., 2:4].copy().view(np.float16)[..., 0]
        q = _nibbles(raw[..., 4:20]).reshape(n, k)
        return QuantizedWeight(FORMATS["q4_1"], (n, k), {"qweight": pack_int4(q), "scale": d, "minimum": m})
    if ggml_type == "Q5_0":
        qh = raw[..., 2:6].copy().view("<u4")[..., 0].astype(np.uint32)
        q = _nibbles(raw[..., 6:22]).reshape(n, k)
        fifth = q5_pack_fifth_bits(unpack_bits(qh, 1))
        return QuantizedWeight(FORMATS["q5_0"], (n, k), {"qweight": pack_int4(q), "qhigh": fifth, "scale": d})
    if ggml_type == "Q5_1":
        m = raw[..., 2:4].copy().view(np.float16)[..., 0]
        qh = raw[..., 4:8].copy().view("<u4")[..., 0].astype(np.uint32)
        q = _nibbles(raw[..., 8:24]).reshape(n, k)
        fifth = q5_pack_fifth_bits(unpack_bits(qh, 1))
        arrays = {"qweight": pack_int4(q), "qhigh": fifth, "scale": d, "minimum": m}
        return QuantizedWeight(FORMATS["q5_1"], (n, k), arrays)
    if ggml_type == "Q8_0":
        q = raw[..., 2:34].copy().view(np.int8).reshape(n, k)
        return QuantizedWeight(FORMATS["q8"], (n, k), {"qweight": q, "scale": d})
    raise ValueError(f"{ggml_type} blocks cannot be carried over")
