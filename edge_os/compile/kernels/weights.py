"""How a kernel reads a stored weight ``W[n, k]`` of each format, a vector at a time.

One place for the storage layout (``edge_os.quantize.formats``) as kernels see it: the argument
buffers in order, the raw values of ``lanes`` consecutive columns, and how a group's partial dot
product is scaled (and shifted by the group minimum, or the -8 zero point of ``q4``).
"""

from __future__ import annotations

from dataclasses import dataclass

from tvm import tirx
from tvm.script.ir_builder import tirx as T

from edge_os.compile.kernels.vector import bcast, const, load, nibbles, to_f32, vload
from edge_os.quantize.formats import FORMATS, GROUP_SIZE, SUPER_BLOCK, WeightFormat, stored_arrays
from edge_os.quantize.tir import dequantized_value


@dataclass(frozen=True)
class WeightLayout:
    fmt: WeightFormat
    n: int
    k: int
    scale_dtype: str = "float32"

    @classmethod
    def from_info(cls, info: dict) -> WeightLayout:
        return cls(FORMATS[info["format"]], info["n"], info["k"], info.get("scale_dtype", "float32"))

    @property
    def groups(self) -> int:
        return self.k // GROUP_SIZE

    @property
    def needs_group_sum(self) -> bool:
        """Whether a group's sum of activations enters its result (minimum or zero point): int4
        formats, whose raw values are the unsigned nibbles, and the asymmetric 5-bit ones. q5_0's
        and q6_k's raw values are signed."""
        return self.fmt.bits == 4 or self.fmt.asymmetric

    @property
    def zero_point(self) -> float:
        """What the integer paths subtract from a symmetric format's unsigned values."""
        return {"q4": 8.0, "q5_0": 16.0}.get(self.fmt.name, 0.0)

    def row_bytes(self) -> int:
        """Bytes of the quantized values of one row (without scales)."""
        return self.k * self.fmt.bits // 8

    def names(self) -> list[str]:
        return [name for name, _, _ in stored_arrays(self.fmt, self.n, self.k, self.scale_dtype)]

    def declare(self) -> list[tirx.Buffer]:
        """Declare the weight arguments of the PrimFunc being built, in the reference order."""
        return [T.arg(name, T.buffer(shape, dtype))
                for name, shape, dtype in stored_arrays(self.fmt, self.n, self.k, self.scale_dtype)]

    def buffer(self, bufs: list[tirx.Buffer], name: str) -> tirx.Buffer:
        return bufs[self.names().index(name)]

    def raw(self, bufs: list[tirx.Buffer], row, col, lanes: int, col_in_word: int = 0) -> tirx.PrimExpr:
        """float32 vector of the stored values of columns ``col .. col+lanes-1`` before the
        group's scale: nibbles for int4, ``q - 16`` for q5_0, ``q`` for q5_1 and q5_k,
        ``sc * (q - 32)`` for q6_k.

        ``col`` is a multiple of ``lanes``, and ``lanes`` divides 8 with ``col % 8`` known when
        building (``col_in_word``), so int4 values come from one word with constant shifts.
        """
        if not self.fmt.quantized:
            return vload(bufs[0], row, col, lanes=lanes)
        if self.fmt.bits == 8:
            return to_f32(vload(bufs[0], row, col, lanes=lanes), lanes)
        low = nibbles(load(bufs[0], row, col // 8), col_in_word, lanes)
        if self.fmt.bits == 4:
            return low
        high_bits = 1 if self.fmt.bits == 5 else 2
        per_word = 32 // high_bits
        word = load(self.buffer(bufs, "qhigh"), row, col // per_word)
        first = tirx.Cast("uint32", tirx.indexmod(col, per_word) * high_bits)
        if high_bits == 1:  # evens in bits 0-15, odds in 16-31: element e at (e % 2) * 16 + e // 2
            half = lanes // 2
            pattern = tirx.Shuffle([tirx.Ramp(const(0, "uint32"), const(1, "uint32"), half),
                                    tirx.Ramp(const(16, "uint32"), const(1, "uint32"), half)],
                                   [lane // 2 + (lane % 2) * half for lane in range(lanes)])
            shifts = bcast(first // const(2, "uint32"), lanes) + pattern
        else:
            shifts = tirx.Ramp(first, tirx.const(high_bits, "uint32"), lanes)
        mask = bcast(const((1 << high_bits) - 1, "uint32"), lanes)
        high = tirx.bitwise_and(tirx.shift_right(bcast(word, lanes), shifts), mask)
        high = tirx.Cast(f"float32x{lanes}", tirx.reinterpret(f"int32x{lanes}", high))
        value = low + high * bcast(const(16.0), lanes)
        if self.fmt.bits == 5:
            return value - bcast(const(16.0), lanes) if self.fmt.name == "q5_0" else value
        sub_scale = to_f32(load(self.buffer(bufs, "sc"), row, col // 16))
        return (value - bcast(const(32.0), lanes)) * bcast(sub_scale, lanes)

    def group_scale(self, bufs: list[tirx.Buffer], row, group) -> tirx.PrimExpr:
        """The float32 scale of a group of 32 (for q6_k: the super-block's ``d``)."""
        if self.fmt.name in ("q4_k", "q5_k"):
            return to_f32(load(self.buffer(bufs, "d"), row, group // (SUPER_BLOCK // GROUP_SIZE))) * to_f32(
                load(self.buffer(bufs, "sc"), row, group))
        if self.fmt.name == "q6_k":
            return to_f32(load(self.buffer(bufs, "d"), row, group // (SUPER_BLOCK // GROUP_SIZE)))
        return to_f32(load(self.buffer(bufs, "scale"), row, group))

    def group_minimum(self, bufs: list[tirx.Buffer], row, group) -> tirx.PrimExpr:
        """What an asymmetric format adds to each value of a group."""
        if self.fmt.name in ("q4_k", "q5_k"):
            return const(0.0) - to_f32(load(self.buffer(bufs, "dmin"), row, group // (SUPER_BLOCK // GROUP_SIZE))) * (
                to_f32(load(self.buffer(bufs, "mn"), row, group)))
        return to_f32(load(self.buffer(bufs, "minimum"), row, group))

    def group_scales(self, bufs: list[tirx.Buffer], row, group, count: int) -> tirx.PrimExpr:
        """float32 vector of the scales of groups ``group .. group + count - 1``, which lie in one
        K-quant super-block (``group`` a multiple of ``count``, ``count`` dividing 8): one vector
        load and conversion. K-quants: their sub-block scales times the super-block's ``d`` (the
        same products as ``group_scale``'s); q6_k: ``d``."""
        if self.fmt.name in ("q4_k", "q5_k"):
            return self._k_groups(bufs, row, group, count, "d", "sc")
        if self.fmt.name == "q6_k":
            return bcast(self.group_scale(bufs, row, group), count)
        return tirx.Cast(f"float32x{count}", vload(self.buffer(bufs, "scale"), row, group, lanes=count))

    def group_minimums(self, bufs: list[tirx.Buffer], row, group, count: int) -> tirx.PrimExpr:
        """``group_scales`` for ``group_minimum``."""
        if self.fmt.name in ("q4_k", "q5_k"):
            return bcast(const(0.0), count) - self._k_groups(bufs, row, group, count, "dmin", "mn")
        return tirx.Cast(f"float32x{count}", vload(self.buffer(bufs, "minimum"), row, group, lanes=count))

    def _k_groups(self, bufs, row, group, count: int, super_name: str, sub_name: str) -> tirx.PrimExpr:
        whole = to_f32(load(self.buffer(bufs, super_name), row, group // (SUPER_BLOCK // GROUP_SIZE)))
        return bcast(whole, count) * tirx.Cast(f"float32x{count}", vload(self.buffer(bufs, sub_name), row, group,
                                                                         lanes=count))

    def scale_group(self, bufs: list[tirx.Buffer], row, group, part, group_sum, lanes: int) -> tirx.PrimExpr:
        """A group's contribution from ``part`` (lane sums of raw*x) and ``group_sum`` (of x)."""
        if not self.fmt.quantized:
            return part
        scale = bcast(self.group_scale(bufs, row, group), lanes)
        if self.fmt.asymmetric:  # W = scale*q + minimum
            return part * scale + group_sum * bcast(self.group_minimum(bufs, row, group), lanes)
        if self.fmt.bits == 4:  # W = scale*(q - 8)
            return (part - group_sum * bcast(const(8.0), lanes)) * scale
        return part * scale

    def value(self, bufs: list[tirx.Buffer], row, col) -> tirx.PrimExpr:
        """The dequantized float32 scalar ``W[row, col]``."""
        by_name = dict(zip(self.names(), bufs, strict=True))
        return dequantized_value(self.fmt, lambda name, r, c: load(by_name[name], r, c), row, col)

