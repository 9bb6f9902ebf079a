"""Target descriptors: one TOML file per device class.

The descriptors live in the top-level ``targets/`` folder and ship inside the wheel as the data
package ``edge_os.target_descriptors`` (setup.py maps one onto the other), so an installed
edge-os finds them with ``importlib.resources``. A user's own descriptor is given by its path.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from edge_os.errors import TargetError

DESCRIPTORS = "edge_os.target_descriptors"


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
    cross_cc: str | None = None  # the compiler that links the library (cross targets)
    cross_cc_provider: str | None = None  # what installs it, for the error when it is missing
    # The only libraries the model library may need, all the device's own (Android: libc.so, ...);
    # empty: whatever the cross compiler links by default.
    device_libs: tuple[str, ...] = ()
    budgets: Budgets = field(default_factory=Budgets)
    thermal_zones: tuple[str, ...] = ()

    @property
    def is_gpu(self) -> bool:
        return self.tvm_target.get("kind") in ("cuda", "vulkan", "opencl", "metal")

    def tvm(self):
        """The ``tvm.target.Target`` (imports TVM's compiler, so only call it when compiling)."""
        import tvm

        return tvm.target.Target(self.tvm_target)


def _builtin() -> dict[str, resources.abc.Traversable]:
    """Descriptor name -> file, for the descriptors shipped with edge-os."""
    return {f.name.removesuffix(".toml"): f for f in resources.files(DESCRIPTORS).iterdir()
            if f.name.endswith(".toml")}


def available_targets() -> list[str]:
    return sorted(_builtin())


def load_target(name_or_path: str) -> Target:
    """Load a shipped descriptor by name (``rpi5``) or a user's descriptor file by path."""
    builtin = _builtin()
    if name_or_path in builtin:
        text, where = builtin[name_or_path].read_text(), f"target {name_or_path}"
    else:
        path = Path(name_or_path)
        if path.suffix != ".toml" and len(path.parts) == 1:
            raise TargetError(f"unknown target {name_or_path!r}; choose one of {', '.join(builtin)} "
                              "or give the path of a .toml descriptor")
        if not path.is_file():
            raise TargetError(f"target descriptor {path} does not exist; give the path of a .toml file "
                              f"or one of {', '.join(builtin)}")
        text, where = path.read_text(), f"target descriptor {path}"
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise TargetError(f"{where} is not valid TOML: {exc}") from exc
    try:
        return Target(
            name=raw["name"],
            description=raw.get("description", ""),
            arch=raw["arch"],
            triple=raw["triple"],
            tvm_target=raw["tvm_target"],
            default_quant=raw["default_quant"],
            unified_memory=raw.get("unified_memory", False),
            cross_cc=raw.get("cross_cc"),
            cross_cc_provider=raw.get("cross_cc_provider"),
            device_libs=tuple(raw.get("device_libs", ())),
            budgets=Budgets(**raw.get("budgets", {})),
            thermal_zones=tuple(raw.get("thermal", {}).get("zones", ())),
        )
    except KeyError as exc:
        raise TargetError(f"{where} lacks the field {exc.args[0]!r}; see targets/host.toml for the layout") from exc
    except TypeError as exc:
        raise TargetError(f"{where} has an unknown field in [budgets] ({exc}); see targets/host.toml") from exc


def check_toolchain(target: Target) -> None:
    """Raise ``TargetError`` naming the package that provides the target's cross compiler when
    it is not on PATH. Cheap: ``pack`` calls it before any other work."""
    from edge_os.compile.link import command

    if target.cross_cc and not command(target.cross_cc):
        provider = target.cross_cc_provider or "your distribution's cross toolchain"
        program = target.cross_cc.split()[0]
        raise TargetError(f"packing for {target.name} needs the cross compiler {program}, which is not on "
                          f"PATH; install {provider}")
