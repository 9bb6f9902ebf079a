"""``edge-os serve --root ROOT``: serve a device store's installed packages and follow its switches.

``committed_packages`` names, for each model, the slot a server may run: the active slot, except
while an install's trial is in progress (staged, switched, health check running), when it is the
slot the device ran before; a version is served only once its health check has passed, so a
rollback never reaches the requests. ``StoreWatcher`` is a front door of the service: it looks at
the store between scheduler steps (every ``interval_s``) and hands a changed model to the
scheduler's ``set_model``, which lets the requests running on the old version finish on it.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

from edge_os.deploy.store import SLOTS, Store
from edge_os.errors import DeployError
from edge_os.package.manifest import MANIFEST

log = logging.getLogger(__name__)


def committed_packages(store: Store) -> dict[str, Path]:
    """Each model name's package directory that passed its health check (names without one are left out)."""
    packages = {}
    for name in store.names():
        active = store.active_slot(name)
        trial = store.state(name).get("trial")
        if trial and active == trial.get("slot"):
            previous = trial.get("previous")
            active = previous if previous in SLOTS and store.active_slot_ok(name, previous) else None
        if active:
            packages[name] = store.model_dir(name) / active
    return packages


def serving_packages(root: Path, can_wait: bool) -> dict[str, Path]:
    """The packages ``serve --root`` starts with; one line of error for a store it cannot serve
    (not a store; no installed model unless ``can_wait`` for an over-the-air install)."""
    store = Store(root)
    store.config()  # "ROOT is not a device store; set it up with `edge-os device init ...`"
    packages = committed_packages(store)
    if not packages and not can_wait:
        raise DeployError(f"{root} has no installed model to serve; flash one first (`edge-os flash PACKAGE "
                          f"file://{Path(root).resolve()}`), or pass --mqtt URL to take over-the-air installs")
    return packages


def _identity(package: Path) -> tuple:
    """Changes whenever another package is staged there: each install writes a new manifest file."""
    stat = os.stat(package / MANIFEST)
    return package.name, stat.st_ino, stat.st_mtime_ns, stat.st_size


class ModelSwitcher(Protocol):
    def set_model(self, entry) -> None: ...
    def remove_model(self, name: str) -> None: ...


class StoreWatcher:
    """Follows a device store's committed packages into a running scheduler (a front door)."""

    name = "store"

    def __init__(self, root: Path, make_entry: Callable[[Path], object], interval_s: float = 0.5):
        self.store = Store(root)
        self.make_entry = make_entry
        self.interval_s = interval_s
        self._known = self._snapshot()  # build the scheduler from ``packages()``: nothing is missed in between
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._scheduler: ModelSwitcher | None = None

    def packages(self) -> tuple[Path, ...]:
        """The committed packages when the watcher was made: what the scheduler starts with."""
        return tuple(package for _identity, package in self._known.values())

    def start(self, scheduler: ModelSwitcher) -> None:
        self._scheduler = scheduler
        self._thread = threading.Thread(target=self._run, name="store-watcher", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)

    def _snapshot(self) -> dict[str, tuple]:
        known = {}
        for name, package in committed_packages(self.store).items():
            try:
                known[name] = (_identity(package), package)
            except FileNotFoundError:
                pass  # an install is replacing it right now; seen on the next look
        return known

    def poll(self) -> list[str]:
        """Hand every model whose committed package changed to the scheduler; returns what changed."""
        now, changed = self._snapshot(), []
        for name, (identity, package) in now.items():
            if self._known.get(name, (None,))[0] != identity:
                try:
                    entry = self.make_entry(package)
                except Exception as exc:  # noqa: BLE001 (a package replaced mid-read: try again next time)
                    log.warning("cannot read %s yet: %s", package, exc)
                    if name in self._known:
                        now[name] = self._known[name]  # keep serving what it served; look again next time
                    else:
                        now.pop(name)
                    continue
                log.info("serving %s version %s from %s", name, getattr(entry.info, "version", "?"), package)
                self._scheduler.set_model(entry)
                changed.append(name)
        for name in set(self._known) - set(now):
            log.info("%s has no installed version any more; no longer serving it", name)
            self._scheduler.remove_model(name)
            changed.append(name)
        self._known = now
        return changed

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            try:
                self.poll()
            except Exception:  # noqa: BLE001 (the watcher must outlive one odd look at the store)
                log.exception("looking at the device store failed; trying again")


class OtaFrontDoor:
    """Over-the-air install jobs for the store a service serves (``serve --root ROOT --mqtt URL``):
    ``edge_os.deploy.ota.OtaAgent`` started and stopped with the service; ``StoreWatcher`` then
    picks up what it installs."""

    name = "ota"

    def __init__(self, root: Path, broker, device_id: str):
        self.root, self.broker, self.device_id = Path(root), broker, device_id
        self.agent = None

    def start(self, scheduler) -> None:
        from edge_os.deploy.ota import OtaAgent

        self.agent = OtaAgent(Store(self.root), self.broker, self.device_id).start()

    def stop(self) -> None:
        if self.agent is not None:
            self.agent.stop()
            self.agent = None
