"""Numpy reference of every weight format: quantize, pack, dequantize.

This is the oracle the TVM kernels are tested against, and the code that turns float weights
(or a GGUF's quantized blocks) into the arrays stored in a package.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from edge_os.quantize.formats import FORMATS, GROUP_SIZE, WeightFormat


@dataclass
class QuantizedWeight:
    """One 2-D weight ``[n, k]`` in a format, as the arrays a package stores.

    ``arrays`` holds ``qweight`` (uint32 ``[n, k/8]`` for int4, int8 ``[n, k]`` for q8, float32
    ``[n, k]`` for f32), and for quantized formats ``scale`` ``[n, k/G]``, plus ``minimum`` for q4_1.
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


def dequantize(qw: QuantizedWeight) -> np.ndarray:
    """The float32 ``[n, k]`` weight a quantized one stands for."""
    n, k = qw.shape
    a = qw.arrays
    if not qw.fmt.quantized:
        return a["qweight"].astype(np.float32)
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


# --- GGUF blocks carried over exactly ------------------------------------------------------
# A GGUF row of K values is K/32 blocks. Q4_0: f16 d + 16 bytes (value j in the low nibble of
# byte j, value j+16 in its high nibble). Q4_1: f16 d, f16 m, then the same 16 bytes. Q8_0: f16 d
# + 32 int8.


def _nibbles(qs: np.ndarray) -> np.ndarray:
    """GGUF block bytes ``[..., 16]`` -> values ``[..., 32]`` in element order."""
    return np.concatenate([qs & 0xF, qs >> 4], axis=-1)


def from_gguf_blocks(raw: np.ndarray, ggml_type: str, n: int, k: int) -> QuantizedWeight:
    """Carry a GGUF Q4_0 / Q4_1 / Q8_0 tensor (raw bytes ``[n, bytes_per_row]``) over exactly;
    its scales (and minimums) stay float16, as the file stores them."""
    blocks = k // GROUP_SIZE
    raw = np.ascontiguousarray(raw, dtype=np.uint8).reshape(n, blocks, -1)
    d = raw[..., 0:2].copy().view(np.float16)[..., 0]
    if ggml_type == "Q4_0":
        q = _nibbles(raw[..., 2:18]).reshape(n, k)
        return QuantizedWeight(FORMATS["q4"], (n, k), {"qweight": pack_int4(q), "scale": d})
    if ggml_type == "Q4_1":
        m = raw[..., 2:4].copy().view(np.float16)[..., 0]
        q = _nibbles(raw[..., 4:20]).reshape(n, k)
        return QuantizedWeight(FORMATS["q4_1"], (n, k), {"qweight": pack_int4(q), "scale": d, "minimum": m})
    if ggml_type == "Q8_0":
        q = raw[..., 2:34].copy().view(np.int8).reshape(n, k)
        return QuantizedWeight(FORMATS["q8"], (n, k), {"qweight": q, "scale": d})
    raise ValueError(f"{ggml_type} blocks cannot be carried over")
