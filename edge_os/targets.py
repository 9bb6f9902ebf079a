"""Target descriptors: one TOML file per device class under ``targets/``."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from edge_os.errors import TargetError

TARGETS_DIR = Path(__file__).resolve().parent.parent / "targets"


@dataclass(frozen=True)
class Budgets:
    memory_fraction: float = 0.8
    thermal_setpoint_c: float = 75.0
    thermal_hysteresis_c: float = 5.0


@dataclass(frozen=True)
class Target:
    name: str
    description: str
    arch: str
    triple: str
    tvm_target: dict
    default_quant: str
    unified_memory: bool = False
    cross_cc: str | None = None
    budgets: Budgets = field(default_factory=Budgets)
    thermal_zones: tuple[str, ...] = ()

    @property
    def is_gpu(self) -> bool:
        return self.tvm_target.get("kind") in ("cuda", "vulkan", "opencl", "metal")

    def tvm(self):
        """The ``tvm.target.Target`` (imports TVM's compiler, so only call it when compiling)."""
        import tvm

        return tvm.target.Target(self.tvm_target)


def available_targets() -> list[str]:
    return sorted(p.stem for p in TARGETS_DIR.glob("*.toml"))


def load_target(name_or_path: str) -> Target:
    """Load ``targets/NAME.toml`` or a descriptor at a path."""
    path = Path(name_or_path)
    if not path.suffix:
        path = TARGETS_DIR / f"{name_or_path}.toml"
    if not path.is_file():
        raise TargetError(
            f"unknown target {name_or_path!r}; choose one of {', '.join(available_targets())} or give a .toml path"
        )
    try:
        raw = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise TargetError(f"target descriptor {path} is not valid TOML: {exc}") from exc
    return Target(
        name=raw["name"],
        description=raw.get("description", ""),
        arch=raw["arch"],
        triple=raw["triple"],
        tvm_target=raw["tvm_target"],
        default_quant=raw["default_quant"],
        unified_memory=raw.get("unified_memory", False),
        cross_cc=raw.get("cross_cc"),
        budgets=Budgets(**raw.get("budgets", {})),
        thermal_zones=tuple(raw.get("thermal", {}).get("zones", ())),
    )
