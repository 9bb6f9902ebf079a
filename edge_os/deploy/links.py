"""How ``flash`` reaches a device, picked by URL: ``file://`` (a mounted SD card or any directory
holding a device store), ``ssh://user@host[:port]/ROOT`` (``edge-os device receive`` run by the
real OpenSSH client) and ``adb://SERIAL/ROOT`` (the same, run by ``adb shell``, with the files
copied by ``adb push``). All offer the same four calls."""

from __future__ import annotations

import json
import shlex
import shutil
import subprocess
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Protocol
from urllib.parse import unquote, urlsplit

from edge_os.deploy import protocol
from edge_os.deploy.install import Events, Installer
from edge_os.deploy.store import Store
from edge_os.errors import DeployError, InputError


class DeviceLink(Protocol):
    def preflight(self, manifest: bytes, sig: bytes | None, allow_downgrade: bool) -> dict: ...
    def send(self, sha: str, offset: int, data: bytes) -> int: ...
    def install(self, manifest: bytes, sig: bytes | None, allow_downgrade: bool, events: Events) -> dict: ...
    def close(self) -> None: ...


class LocalLink:
    """A device store on a mounted file system, changed in this process."""

    def __init__(self, root: Path):
        self.store = Store(root)
        self.store.config()
        self._lock = self.store.locked()
        self._lock.__enter__()
        self.installer = Installer(self.store)

    def preflight(self, manifest, sig, allow_downgrade):
        return self.installer.preflight(manifest, sig, allow_downgrade).to_json()

    def send(self, sha, offset, data):
        return self.installer.receive(sha, offset, data)

    def install(self, manifest, sig, allow_downgrade, events):
        return self.installer.install(manifest, sig, allow_downgrade, events)

    def close(self):
        self._lock.__exit__(None, None, None)


class StreamLink:
    """A device reached through a command whose stdin/stdout carry ``protocol`` (``ssh host edge-os
    device receive ROOT``)."""

    def __init__(self, argv: list[str], where: str):
        self.where = where
        try:
            self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        except FileNotFoundError:
            raise DeployError(f"cannot run {argv[0]!r} to reach {where}; install it") from None
        self._reply()

    def _reply(self, events: Events | None = None) -> dict:
        while True:
            line = self.proc.stdout.readline()
            if not line:
                self.proc.wait()
                err = self.proc.stderr.read().decode(errors="replace").strip().splitlines()
                why = err[-1] if err else f"exit status {self.proc.returncode}"
                raise DeployError(f"{self.where} closed the connection ({why}); check the device and flash again")
            message = json.loads(line)
            if "event" in message:
                if events:
                    events(message.pop("event"), message)
                continue
            if not message.get("ok"):
                raise protocol.error_for(message.get("code", ""), message.get("error", "unknown device error"))
            return message

    def _request(self, request: dict, payload: bytes = b"", events: Events | None = None) -> dict:
        try:
            self.proc.stdin.write(json.dumps(request).encode() + b"\n" + payload)
            self.proc.stdin.flush()
        except BrokenPipeError:
            pass  # _reply reports why the device went away
        return self._reply(events)

    def preflight(self, manifest, sig, allow_downgrade):
        return self._request({"op": "preflight", "manifest": protocol.b64(manifest), "sig": protocol.b64(sig),
                              "allow_downgrade": allow_downgrade})["plan"]

    def send(self, sha, offset, data):
        return self._request({"op": "send", "sha": sha, "offset": offset, "length": len(data)}, data)["have"]

    def install(self, manifest, sig, allow_downgrade, events):
        return self._request({"op": "install", "manifest": protocol.b64(manifest), "sig": protocol.b64(sig),
                              "allow_downgrade": allow_downgrade}, events=events)["result"]

    def close(self):
        if self.proc.poll() is None:
            try:
                self._request({"op": "bye"})
            except DeployError:
                pass
            self.proc.stdin.close()
            self.proc.wait(timeout=30)


class AdbLink(StreamLink):
    """An Android device (or any board adb reaches): ``adb -s SERIAL shell edge-os device receive
    ROOT`` speaks ``protocol``; file contents go by ``adb push`` into the store's root, in pieces of
    ``PUSH_BYTES`` that the device then adopts, so an interrupted flash resumes from the last whole piece."""

    PUSH_BYTES = 32 << 20

    def __init__(self, serial: str, root: str, remote_command: str, where: str):
        adb = shutil.which("adb")
        if adb is None:
            raise DeployError("adb is not on PATH; install Android's platform tools (`apt-get install adb`) "
                              f"or put adb on PATH to flash {where}")
        self.adb, self.serial, self.root = adb, serial, root.rstrip("/") or "/"
        state = self._adb("get-state")
        if state.returncode != 0 or state.stdout.strip() != "device":
            lines = (state.stderr.strip() or state.stdout.strip() or f"exit status {state.returncode}").splitlines()
            raise DeployError(f"adb cannot reach device {serial!r} ({lines[-1]}); connect it and check `adb devices`")
        command = " ".join(shlex.quote(a) for a in (remote_command, "device", "receive", self.root))
        super().__init__([adb, "-s", serial, "shell", "-T", command], where)

    def _adb(self, *args: str) -> subprocess.CompletedProcess:
        return subprocess.run([self.adb, "-s", self.serial, *args], capture_output=True, text=True, check=False)

    def send_file(self, sha: str, path: Path, offset: int, size: int, progress: Callable[[int], None]) -> int:
        """Push ``path`` from ``offset`` to ``size`` in pieces, each adopted by the device."""
        with tempfile.TemporaryDirectory(prefix="edge-os-adb-") as tmp:
            while offset < size:
                length = min(self.PUSH_BYTES, size - offset)
                piece = Path(tmp) / "piece"
                with open(path, "rb") as src, open(piece, "wb") as dst:
                    src.seek(offset)
                    dst.write(src.read(length))
                remote = f"{self.root}/{protocol.pushed_name(sha, offset)}"
                pushed = self._adb("push", str(piece), remote)
                if pushed.returncode != 0:
                    why = (pushed.stderr.strip() or pushed.stdout.strip() or "no reason given").splitlines()[-1]
                    raise DeployError(f"adb push to {self.serial} failed ({why}); check the device and flash "
                                      "again: what arrived is kept")
                offset = self._request({"op": "adopt", "name": protocol.pushed_name(sha, offset)})["have"]
                progress(length)
        return offset


def open_link(url: str, remote_command: str = "edge-os", ssh_options: tuple[str, ...] = ()) -> DeviceLink:
    """The link for a device URL: ``file:///ROOT``, a plain path, ``ssh://user@host[:port]/ROOT`` or
    ``adb://SERIAL/ROOT``."""
    parts = urlsplit(url)
    if parts.scheme in ("", "file"):
        if parts.scheme == "file" and parts.netloc not in ("", "localhost"):
            raise InputError(f"{url}: file:// URLs name a local directory (file:///path); drop the host")
        return LocalLink(Path(unquote(parts.path)))
    if parts.scheme == "ssh":
        if not parts.hostname or not parts.path or parts.path == "/":
            raise InputError(f"{url} lacks a host or a store path; write ssh://user@host[:port]/ROOT")
        argv = ["ssh", "-o", "BatchMode=yes"]
        for option in ssh_options:
            argv += ["-o", option]
        if parts.port:
            argv += ["-p", str(parts.port)]
        target = f"{parts.username}@{parts.hostname}" if parts.username else parts.hostname
        return StreamLink(argv + [target, "--", remote_command, "device", "receive", unquote(parts.path)], url)
    if parts.scheme == "adb":
        if not parts.netloc or not parts.path or parts.path == "/":
            raise InputError(f"{url} lacks a serial or a store path; write adb://SERIAL/ROOT "
                             "(`adb devices` lists the serials)")
        return AdbLink(unquote(parts.netloc), unquote(parts.path), remote_command, url)
    raise InputError(f"{url}: unknown device URL scheme {parts.scheme!r}; use file:///ROOT, "
                     "ssh://user@host[:port]/ROOT or adb://SERIAL/ROOT")
