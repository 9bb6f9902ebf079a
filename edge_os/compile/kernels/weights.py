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
from edge_os.quantize.formats import FORMATS, GROUP_SIZE, WeightFormat


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
        """Whether a group's sum of activations enters its result (minimum or zero point)."""
        return self.fmt.bits == 4

    def row_bytes(self) -> int:
        """Bytes of the quantized values of one row (without scales)."""
        return self.k * self.fmt.bits // 8

    def declare(self) -> list[tirx.Buffer]:
        """Declare the weight arguments of the PrimFunc being built, in the reference order."""
        n, k, g = self.n, self.k, self.groups
        if not self.fmt.quantized:
            return [T.arg("weight", T.buffer((n, k), "float32"))]
        if self.fmt.bits == 4:
            bufs = [T.arg("qweight", T.buffer((n, k // 8), "uint32"))]
        else:
            bufs = [T.arg("qweight", T.buffer((n, k), "int8"))]
        bufs.append(T.arg("scale", T.buffer((n, g), self.scale_dtype)))
        if self.fmt.asymmetric:
            bufs.append(T.arg("minimum", T.buffer((n, g), self.scale_dtype)))
        return bufs

    def raw(self, bufs: list[tirx.Buffer], row, col, lanes: int, col_in_word: int = 0) -> tirx.PrimExpr:
        """float32 vector of the stored values of columns ``col .. col+lanes-1`` before scaling.

        ``col`` is a multiple of ``lanes``, and ``lanes`` divides 8 with ``col % 8`` known when
        building (``col_in_word``), so int4 values come from one word with constant shifts.
        """
        if not self.fmt.quantized:
            return vload(bufs[0], row, col, lanes=lanes)
        if self.fmt.bits == 4:
            return nibbles(load(bufs[0], row, col // 8), col_in_word, lanes)
        return to_f32(vload(bufs[0], row, col, lanes=lanes), lanes)

    def scale_group(self, bufs: list[tirx.Buffer], row, group, part, group_sum, lanes: int) -> tirx.PrimExpr:
        """A group's contribution from ``part`` (lane sums of raw*x) and ``group_sum`` (of x)."""
        if not self.fmt.quantized:
            return part
        scale = bcast(to_f32(load(bufs[1], row, group)), lanes)
        if self.fmt.asymmetric:  # W = scale*q + minimum
            return part * scale + group_sum * bcast(to_f32(load(bufs[2], row, group)), lanes)
        if self.fmt.bits == 4:  # W = scale*(q - 8)
            return (part - group_sum * bcast(const(8.0), lanes)) * scale
        return part * scale

    def value(self, bufs: list[tirx.Buffer], row, col) -> tirx.PrimExpr:
        """The dequantized float32 scalar ``W[row, col]``."""
        if not self.fmt.quantized:
            return load(bufs[0], row, col)
        group = col // GROUP_SIZE
        scale = to_f32(load(bufs[1], row, group))
        if self.fmt.bits == 4:
            shift = tirx.Cast("uint32", tirx.indexmod(col, 8) * 4)
            q = tirx.Cast("float32", tirx.bitwise_and(tirx.shift_right(load(bufs[0], row, col // 8), shift),
                                                      const(0xF, "uint32")))
            if self.fmt.asymmetric:
                return q * scale + to_f32(load(bufs[2], row, group))
            return (q - const(8.0)) * scale
        return to_f32(load(bufs[0], row, col)) * scale

