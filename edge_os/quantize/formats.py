"""Weight formats and the user-facing quantization schemes built from them.

A *format* says how one 2-D weight ``W[N, K]`` is stored; a *scheme* (``--quant``) says which
format each tensor of a model gets.

Formats (group size G = 32 along K):
- ``q4``    symmetric int4: ``W = scale * (q - 8)``, q in 0..15 (GGUF Q4_0's values)
- ``q4_1``  int4 with a per-group minimum: ``W = scale * q + minimum`` (GGUF Q4_1's values)
- ``q8``    symmetric int8: ``W = scale * q``, q in -127..127 (GGUF Q8_0's values)
- ``f32``   unquantized

Formats that only hold a GGUF's blocks, carried over bit-exactly (``pack`` never rounds into them):
- ``q5_0``  5-bit symmetric: ``W = scale * (q - 16)`` (GGUF Q5_0)
- ``q5_1``  5-bit with a per-group minimum: ``W = scale * q + minimum``, q in 0..31 (GGUF Q5_1)
- ``q4_k``  GGUF Q4_K: super-blocks of 256 with f16 ``d``/``dmin`` and 6-bit per-32 ``sc``/``mn``:
            ``W = (d * sc) * q - dmin * mn``, q in 0..15
- ``q5_k``  GGUF Q5_K: Q4_K's scales with 5-bit values, ``W = (d * sc) * q - dmin * mn``, q in 0..31
- ``q8_m``  int8 with a per-group minimum: ``W = scale * q + minimum`` (not GGUF's Q8_1). Made only
            by fusing carried parts of different group-32 formats exactly, e.g. Q5_1 with Q8_0
            (minimum 0), as llama.cpp's Q5_K_M writes Q/K and V when a row is not a multiple of 256
- ``q6_k``  GGUF Q6_K: super-blocks of 256 with f16 ``d`` and int8 per-16 ``sc``:
            ``W = (d * sc) * (q - 32)``, q in 0..63

Storage: the low 4 bits of every int4/5/6 value are packed eight to a ``uint32`` (element ``8*j + i``
of a row in bits ``4*i .. 4*i+3`` of word ``j``); the fifth bit (q5_0, q5_1, q5_k) one per element in a
``uint32`` per group of 32 (bits 0-15: elements 0, 2, .. 30; bits 16-31: the odd ones; GGUF's ``qh``
in another order), the top two bits (q6_k) 16 elements to
a ``uint32`` (element ``16*j + i`` in bits ``2*i`` of word ``j``). Scales and minimums are
``float32`` (``float16`` for GPU targets and carried GGUF blocks); K-quant super-block scales stay
``float16`` and sub-block scales integers, as the file stores them.
"""

from __future__ import annotations

from dataclasses import dataclass

from edge_os.errors import InputError

GROUP_SIZE = 32
SUPER_BLOCK = 256  # values per K-quant super-block


@dataclass(frozen=True)
class WeightFormat:
    name: str
    bits: int
    asymmetric: bool = False
    carried_only: bool = False  # holds a GGUF's blocks; float weights are never rounded into it

    @property
    def quantized(self) -> bool:
        return self.bits < 32

    @property
    def super_blocks(self) -> bool:
        """Whether K must be a multiple of ``SUPER_BLOCK`` (K-quants)."""
        return self.name.endswith("_k")


FORMATS: dict[str, WeightFormat] = {
    "q4": WeightFormat("q4", 4),
    "q4_1": WeightFormat("q4_1", 4, asymmetric=True),
    "q8": WeightFormat("q8", 8),
    "f32": WeightFormat("f32", 32),
    "q5_0": WeightFormat("q5_0", 5, carried_only=True),
    "q5_1": WeightFormat("q5_1", 5, asymmetric=True, carried_only=True),
    "q4_k": WeightFormat("q4_k", 4, asymmetric=True, carried_only=True),
    "q5_k": WeightFormat("q5_k", 5, asymmetric=True, carried_only=True),
    "q6_k": WeightFormat("q6_k", 6, carried_only=True),
    "q8_m": WeightFormat("q8_m", 8, asymmetric=True, carried_only=True),
}


def stored_arrays(fmt: WeightFormat, n: int, k: int, scale_dtype: str) -> list[tuple[str, tuple[int, int], str]]:
    """``(name, shape, dtype)`` of each array a ``[n, k]`` weight of ``fmt`` is stored as, in the
    order kernels take them."""
    g, sb = k // GROUP_SIZE, k // SUPER_BLOCK
    if not fmt.quantized:
        return [("weight", (n, k), "float32")]
    if fmt.bits == 8:
        minimum = [("minimum", (n, g), scale_dtype)] if fmt.asymmetric else []
        return [("qweight", (n, k), "int8"), ("scale", (n, g), scale_dtype), *minimum]
    low = ("qweight", (n, k // 8), "uint32")
    fifth = ("qhigh", (n, g), "uint32")
    if fmt.name in ("q4_k", "q5_k"):
        return [low, *([fifth] if fmt.bits == 5 else []), ("sc", (n, g), "uint8"), ("mn", (n, g), "uint8"),
                ("d", (n, sb), "float16"), ("dmin", (n, sb), "float16")]
    if fmt.name == "q6_k":
        return [low, ("qhigh", (n, k // 16), "uint32"), ("sc", (n, k // 16), "int8"), ("d", (n, sb), "float16")]
    arrays = [low, *([fifth] if fmt.bits == 5 else []), ("scale", (n, g), scale_dtype)]
    if fmt.asymmetric:
        arrays.append(("minimum", (n, g), scale_dtype))
    return arrays


@dataclass(frozen=True)
class Scheme:
    """A ``--quant`` choice: the format for weights and where a GGUF's own blocks are kept."""

    name: str
    weight_format: str  # format given to every 2-D weight that is not carried over
    scale_dtype: str = "float32"
    carry_over: bool = False  # keep a GGUF's Q4_0/Q4_1/Q5_0/Q5_1/Q8_0/Q4_K/Q5_K/Q6_K blocks bit-exactly
    description: str = ""


SCHEMES: dict[str, Scheme] = {
    "auto": Scheme(
        "auto", "q4", scale_dtype="float16", carry_over=True,
        description="keep a GGUF's Q4_0/Q4_1/Q5_0/Q5_1/Q8_0/Q4_K/Q5_K/Q6_K blocks exactly; other weights become q4 "
                    "(default)",
    ),
    "q4f32": Scheme("q4f32", "q4", description="symmetric int4, group 32, f32 scales (CPU)"),
    "q4f16": Scheme("q4f16", "q4", scale_dtype="float16", description="symmetric int4, f16 scales (GPU)"),
    "q4f32_1": Scheme("q4f32_1", "q4_1", description="int4 with a per-group minimum (the Q4_1 layout)"),
    "q8f32": Scheme("q8f32", "q8", description="symmetric int8, group 32, f32 scales"),
    "f32": Scheme("f32", "f32", description="no quantization (reference)"),
}


def get_scheme(name: str) -> Scheme:
    if name not in SCHEMES:
        raise InputError(f"unknown quantization {name!r}; choose one of {', '.join(SCHEMES)}")
    return SCHEMES[name]
