"""The wire protocol between ``edge-os flash`` and ``edge-os device receive`` (over ssh, adb, ...).

Requests are JSON lines; a ``send`` request is followed by exactly ``length`` raw bytes. Each
request gets JSON lines back: ``{"event": ...}`` progress lines during an install, then one
``{"ok": true, ...}`` or ``{"ok": false, "code": ..., "error": one line}``. An ``adopt`` request
names a file the sender copied into the store's root by other means (``adb push``), called
``.tmp-push-SHA-OFFSET``: its bytes are received as if sent, then it is deleted.
"""

from __future__ import annotations

import base64
import json
import os
import re
import stat
from typing import BinaryIO

from edge_os import errors
from edge_os.deploy.install import Installer
from edge_os.deploy.store import Store

MAX_CHUNK = 4 << 20
_PUSHED = re.compile(r"^\.tmp-push-([0-9a-f]{64})-(\d+)$")


def pushed_name(sha: str, offset: int) -> str:
    """The name under the store's root where a sender puts a piece of object ``sha`` from ``offset``."""
    return f".tmp-push-{sha}-{offset}"


def adopt(store: Store, installer: Installer, name: str) -> int:
    """Receive the pushed file ``name`` (see ``pushed_name``) into its object; returns the object's length now."""
    match = _PUSHED.match(name or "")
    if not match:
        raise errors.InputError(f"{name!r} is not a pushed piece (.tmp-push-SHA-OFFSET); the sender is broken")
    sha, have = match.group(1), int(match.group(2))
    path = store.root / name
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)  # a symbolic link is refused, never followed
    except OSError as exc:
        raise errors.DeployError(f"the pushed piece {name} cannot be read on the device ({exc.strerror}); "
                                 "flash again") from None
    try:
        with os.fdopen(fd, "rb") as f:
            if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):
                raise errors.DeployError(f"the pushed piece {name} is not a regular file; flash again")
            for block in iter(lambda: f.read(MAX_CHUNK), b""):
                have = installer.receive(sha, have, block)
    finally:
        path.unlink(missing_ok=True)
    return have


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
                elif op == "adopt":
                    _write(out, {"ok": True, "have": adopt(store, installer, request.get("name"))})
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
