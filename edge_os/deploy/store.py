"""The device store: what lives under ``/var/lib/edge-os`` on a board (``--root`` anywhere else).

```
ROOT/device.json            arch, CPU features, memory and disk budgets, health-check limits
ROOT/trust/KEYID.pub        public keys whose signatures this device accepts
ROOT/lock                   flock'ed by the one process changing the store (pid inside)
ROOT/objects/SHA256         every file of every slot, named by content (hard-linked into slots)
ROOT/objects/SHA256.partial a transfer in progress (resumed from its length)
ROOT/models/NAME/a, b       two complete package directories (A/B slots)
ROOT/models/NAME/current    symlink to the active slot, switched by one rename
ROOT/models/NAME/state.json trial in progress, healthy slots, last install result
```

Every change is a synced write to a temporary name followed by a rename, and every temporary
name starts with ``.tmp-``; ``recover`` (run whenever the lock is taken) deletes them and undoes a
trial that was cut short, so after a power cut the device runs the old or the new version.
"""

from __future__ import annotations

import errno
import fcntl
import os
import platform
import re
import shutil
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

from edge_os.deploy import fsutil, keys
from edge_os.deploy.signing import SIGNATURE, verify_package
from edge_os.errors import DeployError, InputError
from edge_os.package.manifest import MANIFEST
from edge_os.package.reader import host_cpu_flags

SLOTS = ("a", "b")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


@dataclass(frozen=True)
class DeviceConfig:
    """What the device is and what it allows (``device.json``)."""

    arch: str
    cpu_features: tuple[str, ...]
    memory_budget: int  # bytes a model may use: the manifest's figure at ``context`` and the health check's RSS
    disk_budget: int | None = None  # bytes the store may hold (None: the file system's free space)
    context: int = 256  # tokens the health check and the memory preflight plan for
    health_timeout: float = 120.0  # seconds the health check may take before it counts as hung
    health_prompt: str = "Hello"
    health_tokens: int = 4

    @classmethod
    def for_host(cls, memory_budget: int, **overrides) -> DeviceConfig:
        machine = platform.machine().replace("arm64", "aarch64").replace("AMD64", "x86_64")
        return cls(machine, tuple(sorted(host_cpu_flags())), memory_budget, **overrides)


def now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def checked_name(name: str) -> str:
    if not isinstance(name, str) or not _NAME.match(name):
        raise InputError(f"model name {name!r} cannot name a slot; use letters, digits, '.', '_' and '-'")
    return name


class Store:
    """A device store at ``root``. Methods that change it must run inside ``with store.locked():``."""

    def __init__(self, root: Path):
        self.root = Path(root)
        self.objects = self.root / "objects"
        self.models = self.root / "models"
        self._lock_fd: int | None = None
        self.recovered: list[str] = []  # what taking the lock last undid (see ``recover``)

    # --- set-up ----------------------------------------------------------------------------------
    @classmethod
    def init(cls, root: Path, trusted: list[Path], config: DeviceConfig) -> Store:
        """Create (or re-key) a store; the trusted keys replace the previous set (key rotation)."""
        if not trusted:
            raise InputError("a device needs at least one trusted key; pass --trust PUB")
        public = [keys.load_public(p) for p in trusted]
        store = cls(root)
        for d in (store.root, store.objects, store.models, store.root / "trust"):
            d.mkdir(parents=True, exist_ok=True)
        with store.locked():
            for old in (store.root / "trust").glob("*.pub"):
                if old.stem not in {k.key_id for k in public}:
                    old.unlink()
            for key in public:
                fsutil.write_atomic(store.root / "trust" / f"{key.key_id}.pub", key.pem())
            fsutil.write_json(store.root / "device.json", asdict(config))
        return store

    def config(self) -> DeviceConfig:
        path = self.root / "device.json"
        if not path.is_file():
            raise DeployError(f"{self.root} is not a device store; set it up with "
                              "`edge-os device init ROOT --trust PUB`")
        data = fsutil.read_json(path)
        data["cpu_features"] = tuple(data["cpu_features"])
        return DeviceConfig(**data)

    def trusted(self) -> list[keys.PublicKey]:
        return [keys.parse_public(p.read_bytes(), str(p)) for p in sorted((self.root / "trust").glob("*.pub"))]

    # --- the lock --------------------------------------------------------------------------------
    @contextmanager
    def locked(self, wait_s: float = 30.0):
        """Hold the store's lock (an flock: the kernel drops it when its holder dies, so a dead
        installer's lock never blocks), recovering from any interrupted change first."""
        if self._lock_fd is not None:
            yield self
            return
        fd = os.open(self.root / "lock", os.O_RDWR | os.O_CREAT, 0o644)
        deadline = time.monotonic() + wait_s
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except OSError as exc:
                if exc.errno not in (errno.EAGAIN, errno.EACCES) or time.monotonic() > deadline:
                    holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "?"
                    os.close(fd)
                    raise DeployError(f"device store {self.root} is busy: pid {holder} is changing it; "
                                      "wait for it to finish and try again") from None
                time.sleep(0.05)
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._lock_fd = fd
        try:
            self.recovered = self.recover()
            yield self
        finally:
            self._lock_fd = None
            os.close(fd)  # releases the flock

    def _require_lock(self) -> None:
        if self._lock_fd is None:
            raise RuntimeError("store changes need `with store.locked():`")

    # --- model state -----------------------------------------------------------------------------
    def model_dir(self, name: str) -> Path:
        return self.models / checked_name(name)

    def state(self, name: str) -> dict:
        return fsutil.read_json(self.model_dir(name) / "state.json", {"trial": None, "good": [], "last_install": None})

    def save_state(self, name: str, state: dict) -> None:
        fsutil.write_json(self.model_dir(name) / "state.json", state)

    def active_slot(self, name: str) -> str | None:
        link = self.model_dir(name) / "current"
        target = os.readlink(link) if link.is_symlink() else None
        return target if target in SLOTS and (link.parent / target / MANIFEST).is_file() else None

    def switch(self, name: str, slot: str | None) -> None:
        link = self.model_dir(name) / "current"
        if slot is None:
            if link.is_symlink():
                link.unlink()
                fsutil.fsync_dir(link.parent)
        else:
            fsutil.symlink_atomic(link, slot)

    def names(self) -> list[str]:
        return sorted(p.name for p in self.models.iterdir() if p.is_dir() and _NAME.match(p.name)) \
            if self.models.is_dir() else []

    def current_package(self, name: str) -> Path | None:
        slot = self.active_slot(name)
        return self.model_dir(name) / slot if slot else None

    # --- crash recovery --------------------------------------------------------------------------
    def recover(self) -> list[str]:
        """Undo whatever an interrupted change left: temporary files, half-staged slots, a trial that
        never finished its health check. Returns what was done, one line each."""
        self._require_lock()
        done = []
        for path in self._temporaries():
            shutil.rmtree(path, ignore_errors=True) if path.is_dir() and not path.is_symlink() else path.unlink()
            done.append(f"removed {path.relative_to(self.root)}")
        for name in self.names():
            state = self.state(name)
            trial = state.get("trial")
            if not trial:
                continue
            slot, previous = trial["slot"], trial.get("previous")
            if self.active_slot(name) == slot:
                self.switch(name, previous if previous and self.active_slot_ok(name, previous) else None)
            fsutil.remove_tree(self.model_dir(name) / slot)
            state["good"] = [s for s in state.get("good", []) if s != slot]
            state["trial"] = None
            state["last_install"] = {"result": "interrupted", "version": trial.get("version"), "at": now(),
                                     "reason": f"cut off during {trial.get('phase', 'install')}; "
                                               f"{'kept' if previous else 'no'} previous version"}
            self.save_state(name, state)
            done.append(f"{name}: interrupted install of version {trial.get('version')} undone")
        return done

    def active_slot_ok(self, name: str, slot: str) -> bool:
        return (self.model_dir(name) / slot / MANIFEST).is_file()

    def _temporaries(self) -> list[Path]:
        found = [p for p in self.root.glob(f"{fsutil.TMP_PREFIX}*")]
        found += [p for p in self.objects.glob(f"{fsutil.TMP_PREFIX}*")] if self.objects.is_dir() else []
        for name in self.names():
            found += list(self.model_dir(name).glob(f"{fsutil.TMP_PREFIX}*"))
        return found

    # --- objects ---------------------------------------------------------------------------------
    def object_path(self, sha: str) -> Path:
        if not re.fullmatch(r"[0-9a-f]{64}", sha or ""):
            raise DeployError(f"{sha!r} is not a sha256 digest")
        return self.objects / sha

    def partial_size(self, sha: str) -> int:
        partial = self.object_path(sha).with_suffix(".partial")
        return partial.stat().st_size if partial.is_file() else 0

    def has_object(self, sha: str) -> bool:
        return self.object_path(sha).is_file()

    def used_bytes(self) -> int:
        return sum(p.stat().st_size for p in self.objects.iterdir() if p.is_file()) if self.objects.is_dir() else 0

    def referenced_objects(self) -> set[str]:
        from edge_os.deploy.signing import listed_files, parse_manifest

        shas = set()
        for name in self.names():
            for slot in SLOTS:
                manifest = self.model_dir(name) / slot / MANIFEST
                if manifest.is_file():
                    shas |= {info["sha256"] for info in listed_files(parse_manifest(manifest.read_bytes())).values()}
        return shas

    def collect_garbage(self) -> int:
        """Delete objects no slot uses and abandoned partial transfers; returns bytes freed."""
        self._require_lock()
        keep, freed = self.referenced_objects(), 0
        for path in self.objects.iterdir():
            if path.name.split(".")[0] not in keep or path.suffix == ".partial":
                freed += path.stat().st_size
                path.unlink()
        return freed

    # --- inspection ------------------------------------------------------------------------------
    def status_version(self, name: str, slot: str | None) -> int | None:
        """The release number in ``slot``'s manifest (None: no such slot)."""
        from edge_os.deploy.signing import parse_manifest

        path = self.model_dir(name) / slot / MANIFEST if slot else None
        return parse_manifest(path.read_bytes()).get("version", 1) if path and path.is_file() else None

    def status(self) -> dict:
        """Each model: version, active slot and its path, the other slot, the last install result."""
        models = []
        for name in self.names():
            active = self.active_slot(name)
            state = self.state(name)
            other = next((s for s in SLOTS if s != active and (self.model_dir(name) / s).is_dir()), None)
            models.append({
                "name": name, "version": self.status_version(name, active), "active_slot": active,
                "package": str(self.model_dir(name) / active) if active else None,
                "other_slot": other, "other_version": self.status_version(name, other),
                "other_is_good": other in state.get("good", []),
                "trial": state.get("trial"), "last_install": state.get("last_install"),
            })
        return {"root": str(self.root), "models": models, "used_bytes": self.used_bytes()}

    def fsck(self) -> list[str]:
        """Problems with the store (after recovery), one line each: every slot verified against the
        trusted keys, every object's name against its content."""
        from edge_os.package.writer import sha256_file

        problems, trusted = [], self.trusted()
        for name in self.names():
            for slot in SLOTS:
                slot_dir = self.model_dir(name) / slot
                if slot_dir.is_dir():
                    problems += [f"{name}/{slot}: {p}" for p in verify_package(slot_dir, trusted)]
            if (self.model_dir(name) / "current").is_symlink() and not self.active_slot(name):
                problems.append(f"{name}: current points at no complete slot")
        for path in self.objects.iterdir():
            if path.suffix != ".partial" and sha256_file(path) != path.name:
                problems.append(f"objects/{path.name}: content does not match its name")
        return problems


def package_files(package_dir: Path) -> tuple[bytes, bytes | None]:
    """A package's manifest bytes and signature bytes (None when unsigned)."""
    sig = Path(package_dir) / SIGNATURE
    return (Path(package_dir) / MANIFEST).read_bytes(), sig.read_bytes() if sig.is_file() else None
