"""The device side of an install: preflight, receive files by content, stage, verify, switch,
health check, commit or roll back. Every transport ends up calling these on a locked ``Store``."""

from __future__ import annotations

import hashlib
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from edge_os.deploy import fsutil, health
from edge_os.deploy.signing import SIGNATURE, check_signature, listed_files, parse_manifest, verify_package
from edge_os.deploy.store import SLOTS, Store, checked_name, now
from edge_os.errors import DeployError, PackageError, TargetError
from edge_os.package.manifest import MANIFEST
from edge_os.package.memory import MemoryFigures

Events = Callable[[str, dict], None]  # (phase, details) as an install advances


@dataclass
class Plan:
    """What an install needs: the package's identity and the files the device lacks."""

    name: str
    version: int
    key_id: str
    files: dict[str, dict]
    missing: dict[str, dict] = field(default_factory=dict)  # sha256 -> {"size", "have" (bytes of a partial)}
    unchanged: bool = False  # the device already runs exactly this manifest

    def to_json(self) -> dict:
        return {"name": self.name, "version": self.version, "key_id": self.key_id, "missing": self.missing,
                "unchanged": self.unchanged}


def _mib(n: int) -> str:
    return f"{n / (1 << 20):.1f} MiB"


class Installer:
    """Install operations on a store whose lock the caller holds."""

    def __init__(self, store: Store):
        self.store = store
        self.config = store.config()
        self._receiving: dict[str, int] = {}  # sha256 -> signed size, for the plan being transferred

    # --- preflight -------------------------------------------------------------------------------
    def preflight(self, manifest_bytes: bytes, sig_bytes: bytes | None, allow_downgrade: bool = False) -> Plan:
        """Refuse what this device must not run, before anything is written; else what to send."""
        key_id = check_signature(manifest_bytes, sig_bytes, self.store.trusted())
        data = parse_manifest(manifest_bytes)
        name, version = checked_name(data["name"]), data.get("version", 1)
        files = listed_files(data)
        target = data.get("target") or {}
        if target.get("arch") != self.config.arch:
            raise TargetError(f"{name} was compiled for {target.get('name')} ({target.get('arch')}), this device "
                              f"is {self.config.arch}; pack it with --target for this device")
        lacking = [f for f in target.get("cpu_features", []) if f not in self.config.cpu_features]
        if lacking:
            raise TargetError(f"{name} needs CPU instructions this device lacks ({', '.join(lacking)}); "
                              "pack it for this device's CPU")
        active = self.store.current_package(name)
        if active is not None:
            running = parse_manifest((active / MANIFEST).read_bytes()).get("version", 1)
            if version < running and not allow_downgrade:
                raise PackageError(f"{name} version {version} is older than the installed version {running}; "
                                   "flash a newer release, or pass --allow-downgrade to go back on purpose")
            if (active / MANIFEST).read_bytes() == manifest_bytes and (active / SIGNATURE).read_bytes() == sig_bytes:
                return Plan(name, version, key_id, files, unchanged=True)
        need = MemoryFigures.from_json(data["memory"]).bytes_for(self.config.context)
        if need > self.config.memory_budget:
            raise PackageError(f"{name} needs {_mib(need)} at a {self.config.context}-token context, over this "
                               f"device's memory budget of {_mib(self.config.memory_budget)}; flash a smaller model")
        missing = {}
        for info in files.values():
            if not self.store.has_object(info["sha256"]):
                missing[info["sha256"]] = {"size": info["size"], "have": self.store.partial_size(info["sha256"])}
        needed = sum(m["size"] - m["have"] for m in missing.values())
        free = shutil.disk_usage(self.store.root).free
        if self.config.disk_budget is not None:
            free = min(free, self.config.disk_budget - self.store.used_bytes())
        if needed > free:
            raise DeployError(f"{name} needs {_mib(needed)} more on the device, which has {_mib(max(free, 0))} free; "
                              "remove other models or flash a smaller one")
        self._receiving = {sha: m["size"] for sha, m in missing.items()}
        return Plan(name, version, key_id, files, missing)

    # --- transfer --------------------------------------------------------------------------------
    def receive(self, sha: str, offset: int, data: bytes) -> int:
        """Append ``data`` at ``offset`` of the object being transferred; returns its length now.
        The object is checked and moved into place when it reaches its signed size."""
        if sha not in self._receiving:
            raise DeployError(f"object {sha[:12]} is not part of the planned install; run the preflight first")
        size = self._receiving[sha]
        final = self.store.object_path(sha)
        partial = final.with_suffix(".partial")
        have = partial.stat().st_size if partial.exists() else 0
        if offset != have:
            raise DeployError(f"object {sha[:12]}: sent from byte {offset}, the device has {have}; resume from {have}")
        if have + len(data) > size:
            raise DeployError(f"object {sha[:12]} is longer than its signed size {size}; the sender is broken")
        with open(partial, "ab") as f:
            f.write(data)
            if have + len(data) == size:
                f.flush()
                os.fsync(f.fileno())
        have += len(data)
        if have == size:
            digest = hashlib.sha256()
            with open(partial, "rb") as f:
                for block in iter(lambda: f.read(1 << 20), b""):
                    digest.update(block)
            if digest.hexdigest() != sha:
                partial.unlink()
                raise DeployError(f"object {sha[:12]} arrived corrupted (sha256 differs); flash again")
            os.replace(partial, final)
            fsutil.fsync_dir(final.parent)
            del self._receiving[sha]
        return have

    # --- install ---------------------------------------------------------------------------------
    def install(self, manifest_bytes: bytes, sig_bytes: bytes | None, allow_downgrade: bool = False,
                events: Events = lambda phase, details: None) -> dict:
        """Stage the package in the inactive slot, switch to it and keep it only if it is healthy."""
        plan = self.preflight(manifest_bytes, sig_bytes, allow_downgrade)
        if plan.unchanged:
            return {"result": "unchanged", "name": plan.name, "version": plan.version}
        if plan.missing:
            raise DeployError(f"{len(plan.missing)} files of {plan.name} have not reached the device; flash again")
        store, name = self.store, plan.name
        model_dir = store.model_dir(name)
        if not model_dir.is_dir():
            model_dir.mkdir(parents=True)
            fsutil.fsync_dir(model_dir.parent)
        previous = store.active_slot(name)
        previous_version = store.status_version(name, previous)
        slot = next(s for s in SLOTS if s != previous)
        state = store.state(name)
        # Mark the slot as being written before touching it: a cut from here on undoes it.
        state["trial"] = {"slot": slot, "previous": previous, "version": plan.version, "phase": "stage"}
        state["good"] = [s for s in state.get("good", []) if s != slot]
        store.save_state(name, state)
        events("stage", {"slot": slot})
        fsutil.remove_tree(model_dir / slot)
        self._stage(model_dir, slot, plan, manifest_bytes, sig_bytes)
        events("verify", {"slot": slot})
        problems = verify_package(model_dir / slot, store.trusted())
        if problems:
            return self._undo(name, state, slot, previous, "failed", f"staged slot does not verify: {problems[0]}")
        state["trial"]["phase"] = "health check"
        store.save_state(name, state)
        events("switch", {"slot": slot})
        store.switch(name, slot)
        events("health", {"slot": slot})
        result = health.check(model_dir / slot, self.config.memory_budget, self.config.health_timeout,
                              self.config.context, self.config.health_prompt, self.config.health_tokens)
        if not result.ok:
            events("rollback", {"reason": result.reason})
            store.switch(name, previous)
            return self._undo(name, state, slot, previous, "rolled back", f"health check failed: {result.reason}",
                              previous_version)
        state["good"] = [slot] + ([previous] if previous in state.get("good", []) else [])
        state["trial"] = None
        state["last_install"] = {"result": "installed", "version": plan.version, "at": now(),
                                 "reason": f"health check {result.reason} in {result.seconds:.1f} s, "
                                           f"peak {result.peak_rss >> 20} MiB"}
        store.save_state(name, state)
        events("commit", {"slot": slot})
        store.collect_garbage()
        return {"result": "installed", "name": name, "version": plan.version, "slot": slot,
                "previous_version": previous_version, "health": result.reason}

    def _stage(self, model_dir: Path, slot: str, plan: Plan, manifest_bytes: bytes, sig_bytes: bytes) -> None:
        """Build the slot under a temporary name from the objects, sync it, rename it into place."""
        tmp = model_dir / f"{fsutil.TMP_PREFIX}stage-{slot}"
        if tmp.exists():
            shutil.rmtree(tmp)
        tmp.mkdir()
        dirs = {tmp}
        for rel, info in plan.files.items():
            dest = tmp / rel
            dest.parent.mkdir(parents=True, exist_ok=True)
            dirs.add(dest.parent)
            try:
                os.link(self.store.object_path(info["sha256"]), dest)
            except OSError:  # a file system without hard links (FAT on an SD card): copy
                shutil.copyfile(self.store.object_path(info["sha256"]), dest)
                with open(dest, "rb") as f:
                    os.fsync(f.fileno())
        for fname, data in ((MANIFEST, manifest_bytes), (SIGNATURE, sig_bytes)):
            with open(tmp / fname, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
        for d in sorted(dirs, key=lambda p: len(p.parts), reverse=True):
            fsutil.fsync_dir(d)
        os.rename(tmp, model_dir / slot)
        fsutil.fsync_dir(model_dir)

    def _undo(self, name: str, state: dict, slot: str, previous: str | None, result: str, reason: str,
              previous_version: int | None = None) -> dict:
        fsutil.remove_tree(self.store.model_dir(name) / slot)
        version = state["trial"]["version"]
        state["trial"] = None
        state["last_install"] = {"result": result, "version": version, "at": now(), "reason": reason}
        self.store.save_state(name, state)
        self.store.collect_garbage()
        return {"result": result, "name": name, "version": version, "reason": reason,
                "previous_version": previous_version}


def rollback(store: Store, name: str) -> dict:
    """Switch ``name`` back to its other slot (an operator's choice; the slot must have been healthy)."""
    with store.locked():
        state = store.state(name)
        active = store.active_slot(name)
        other = next((s for s in SLOTS if s != active), None)
        if active is None or other not in state.get("good", []) or not store.active_slot_ok(name, other):
            raise DeployError(f"{name} has no previous healthy version to go back to on this device")
        store.switch(name, other)
        state["good"] = [other, active]
        version = store.status_version(name, other)
        state["last_install"] = {"result": "rolled back by operator", "version": version, "at": now(),
                                 "reason": f"`device rollback` from slot {active}"}
        store.save_state(name, state)
        return {"result": "rolled back", "name": name, "version": version, "slot": other}
