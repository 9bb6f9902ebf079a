"""How ``flash`` reaches a device, picked by URL: ``file://`` (a mounted SD card or any directory
holding a device store) and ``ssh://user@host[:port]/ROOT`` (``edge-os device receive`` run by the
real OpenSSH client). Both offer the same four calls."""

from __future__ import annotations

import json
import subprocess
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


def open_link(url: str, remote_command: str = "edge-os", ssh_options: tuple[str, ...] = ()) -> DeviceLink:
    """The link for a device URL: ``file:///ROOT``, a plain path, or ``ssh://user@host[:port]/ROOT``."""
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
    raise InputError(f"{url}: unknown device URL scheme {parts.scheme!r}; use file:///ROOT or "
                     "ssh://user@host[:port]/ROOT")
