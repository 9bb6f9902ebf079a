"""The wire protocol between ``edge-os flash`` and ``edge-os device receive`` (over ssh, adb, ...).

Requests are JSON lines; a ``send`` request is followed by exactly ``length`` raw bytes. Each
request gets JSON lines back: ``{"event": ...}`` progress lines during an install, then one
``{"ok": true, ...}`` or ``{"ok": false, "code": ..., "error": one line}``.
"""

from __future__ import annotations

import base64
import json
from typing import BinaryIO

from edge_os import errors
from edge_os.deploy.install import Installer
from edge_os.deploy.store import Store

MAX_CHUNK = 4 << 20


def b64(data: bytes | None) -> str | None:
    return None if data is None else base64.b64encode(data).decode()


def unb64(text: str | None) -> bytes | None:
    return None if text is None else base64.b64decode(text)


def error_for(code: str, message: str) -> errors.EdgeOSError:
    """The exception class a device's error ``code`` stands for, so remote refusals read like local ones."""
    for cls in (errors.PackageError, errors.TargetError, errors.InputError, errors.DeployError):
        if cls.code == code:
            return cls(message)
    return errors.DeployError(message)


def _write(out: BinaryIO, message: dict) -> None:
    out.write(json.dumps(message).encode() + b"\n")
    out.flush()


def serve(store: Store, inp: BinaryIO, out: BinaryIO) -> None:
    """Answer one flash session on this device (the store stays locked until the session ends)."""
    with store.locked():
        installer = Installer(store)
        _write(out, {"ok": True, "hello": "edge-os device", "root": str(store.root)})
        for line in iter(inp.readline, b""):
            request = json.loads(line)
            op = request.get("op")
            try:
                if op == "preflight":
                    plan = installer.preflight(unb64(request["manifest"]), unb64(request["sig"]),
                                               request.get("allow_downgrade", False))
                    _write(out, {"ok": True, "plan": plan.to_json()})
                elif op == "send":
                    length = int(request["length"])
                    if not 0 <= length <= MAX_CHUNK:
                        raise errors.DeployError(f"chunk of {length} bytes is over the {MAX_CHUNK}-byte limit")
                    data = inp.read(length)
                    if len(data) != length:
                        return  # the sender went away mid-chunk; what arrived before stays for a resume
                    _write(out, {"ok": True, "have": installer.receive(request["sha"], request["offset"], data)})
                elif op == "install":
                    result = installer.install(unb64(request["manifest"]), unb64(request["sig"]),
                                               request.get("allow_downgrade", False),
                                               lambda phase, details: _write(out, {"event": phase, **details}))
                    _write(out, {"ok": True, "result": result})
                elif op == "bye":
                    _write(out, {"ok": True})
                    return
                else:
                    raise errors.InputError(f"unknown request {op!r}")
            except errors.EdgeOSError as exc:
                _write(out, {"ok": False, "code": exc.code, "error": str(exc)})
