"""How Hugging Face tensors become this model's parameters: Q/K/V and gate/up are fused.

Fusing concatenates rows, so quantized weights stay exact when their formats agree.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator

import numpy as np

from edge_os.quantize.reference import QuantizedWeight, as_q8, as_q8_m, quantize

log = logging.getLogger(__name__)

# fused parameter -> the Hugging Face tensors it is made of, in row order
FUSED = {
    "self_attn.qkv_proj": ("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj"),
    "mlp.gate_up_proj": ("mlp.gate_proj", "mlp.up_proj"),
}
_PART_OF = {part: fused for fused, parts in FUSED.items() for part in parts}
_PART_NAME = re.compile(r"(.+)\.(" + "|".join(re.escape(p) for p in _PART_OF) + r")\.(weight|bias)")


def _concat(values: list, fallback_format: str, scale_dtype: str):
    """The parts as one tensor, and whether their values came through exactly."""
    if all(isinstance(v, np.ndarray) for v in values):
        return np.concatenate(values, axis=0), True
    fmts = {v.fmt.name for v in values if isinstance(v, QuantizedWeight)}
    if len(fmts) == 1 and all(isinstance(v, QuantizedWeight) for v in values):
        first = values[0]
        arrays = {key: np.concatenate([v.arrays[key] for v in values], axis=0) for key in first.arrays}
        return QuantizedWeight(first.fmt, (sum(v.shape[0] for v in values), first.shape[1]), arrays), True
    if all(isinstance(v, QuantizedWeight) for v in values):
        # q4 / q5_0 next to q8 (llama.cpp's Q4_K_M gives Q/K Q5_0 and V Q8_0 when K is not a multiple
        # of 256): their values are q8 values with the same scales, so fusing them as q8 is exact.
        # Likewise q5_1 next to q8 (Q5_K_M's fallbacks: Q/K Q5_1, V Q8_0), or any mix of those group-32
        # formats, as q8_m: q8 with per-group minimums.
        for promote in (as_q8, as_q8_m):
            as_int8 = [promote(v) for v in values]
            if all(v is not None for v in as_int8) and len({v.arrays["scale"].dtype for v in as_int8}) == 1:
                return _concat(as_int8, fallback_format, scale_dtype)
    # Mixed formats cannot be fused exactly: bring them to one format (one more rounding).
    log.warning("fusing weights of formats %s: re-quantizing them to %s", sorted(fmts), fallback_format)
    dense = np.concatenate([v.dequantize() if isinstance(v, QuantizedWeight) else v for v in values], axis=0)
    return quantize(dense, fallback_format, scale_dtype), False


class Fuser:
    """Buffers the parts of each fused tensor until all have arrived (one layer at a time)."""

    def __init__(self, fallback_format: str, scale_dtype: str):
        self.fallback_format = fallback_format
        self.scale_dtype = scale_dtype
        self._pending: dict[str, dict[str, object]] = {}
        # fused tensor -> the formats of its parts, for those re-quantized because they differed
        self.requantized: dict[str, list[str]] = {}

    def push(self, name: str, value) -> Iterator[tuple[str, object]]:
        match = _PART_NAME.fullmatch(name)
        if match is None:
            yield name, value
            return
        layer, part, leaf = match.groups()
        fused = _PART_OF[part]
        key = f"{layer}.{fused}.{leaf}"
        parts = self._pending.setdefault(key, {})
        parts[part] = value
        if len(parts) == len(FUSED[fused]):
            del self._pending[key]
            ordered = [parts[p] for p in FUSED[fused]]
            value, exact = _concat(ordered, self.fallback_format, self.scale_dtype)
            if not exact:
                self.requantized[key] = sorted({v.fmt.name if isinstance(v, QuantizedWeight) else "f32"
                                                for v in ordered})
            yield key, value

    def finish(self) -> None:
        if self._pending:
            missing = ", ".join(sorted(self._pending))
            raise ValueError(f"incomplete fused tensors: {missing}")
