"""Memory figures stored in every manifest, enough to decide whether a package fits a device."""

from __future__ import annotations

from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class MemoryFigures:
    weight_bytes: int  # all parameters as stored (quantized)
    kv_bytes_per_token: int  # K and V of every layer for one token
    workspace_bytes: int  # activations and scratch at the largest prefill chunk

    def bytes_for(self, context_tokens: int) -> int:
        """Memory to serve one sequence of ``context_tokens`` tokens (weights counted once)."""
        return self.weight_bytes + self.workspace_bytes + self.kv_bytes_per_token * context_tokens

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict) -> MemoryFigures:
        return cls(**{k: int(data[k]) for k in ("weight_bytes", "kv_bytes_per_token", "workspace_bytes")})
