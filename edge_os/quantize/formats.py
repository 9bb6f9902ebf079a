"""Weight formats and the user-facing quantization schemes built from them.

A *format* says how one 2-D weight ``W[N, K]`` is stored; a *scheme* (``--quant``) says which
format each tensor of a model gets.

Formats (group size G = 32 along K):
- ``q4``    symmetric int4: ``W = scale * (q - 8)``, q in 0..15 (GGUF Q4_0's values)
- ``q4_1``  int4 with a per-group minimum: ``W = scale * q + minimum`` (GGUF Q4_1's values)
- ``q8``    symmetric int8: ``W = scale * q``, q in -127..127 (GGUF Q8_0's values)
- ``f32``   unquantized

Storage: int4 values are packed eight to a ``uint32`` (element ``8*j + i`` of a row in bits
``4*i .. 4*i+3`` of word ``j``); scales and minimums are ``float32`` (``float16`` for GPU targets).
"""

from __future__ import annotations

from dataclasses import dataclass

from edge_os.errors import InputError

GROUP_SIZE = 32


@dataclass(frozen=True)
class WeightFormat:
    name: str
    bits: int
    asymmetric: bool = False

    @property
    def quantized(self) -> bool:
        return self.bits < 32


FORMATS: dict[str, WeightFormat] = {
    "q4": WeightFormat("q4", 4),
    "q4_1": WeightFormat("q4_1", 4, asymmetric=True),
    "q8": WeightFormat("q8", 8),
    "f32": WeightFormat("f32", 32),
}


@dataclass(frozen=True)
class Scheme:
    """A ``--quant`` choice: the format for weights and where a GGUF's own blocks are kept."""

    name: str
    weight_format: str  # format given to every 2-D weight that is not carried over
    scale_dtype: str = "float32"
    carry_over: bool = False  # keep a GGUF's Q4_0 / Q4_1 / Q8_0 blocks bit-exactly
    description: str = ""


SCHEMES: dict[str, Scheme] = {
    "auto": Scheme(
        "auto", "q4", scale_dtype="float16", carry_over=True,
        description="keep a GGUF's Q4_0/Q4_1/Q8_0 blocks exactly (f16 scales); other weights become q4 (default)",
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
