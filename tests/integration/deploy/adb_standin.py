"""A stand-in for Android's `adb`, for machines without a phone: the same command line (`-s
SERIAL`, `devices`, `get-state`, `push LOCAL REMOTE`, `shell [-T] COMMAND...`), messages and exit
statuses, over a directory that lists the attached devices (one file per serial, holding its
state: device, offline, unauthorized). A device's file system is this machine's, as an emulator
sharing its host's paths would be; `shell` runs the command with `sh -c` like adb's device shell.

    python adb_standin.py --devices-dir DIR ADB-ARGUMENTS...
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path


def fail(message: str) -> int:
    print(message, file=sys.stderr)
    return 1


def main(argv: list[str]) -> int:
    devices_dir = Path(argv[argv.index("--devices-dir") + 1])
    del argv[argv.index("--devices-dir"):argv.index("--devices-dir") + 2]
    attached = {p.name: p.read_text().strip() or "device" for p in sorted(devices_dir.iterdir())}
    serial = os.environ.get("ANDROID_SERIAL")
    while argv and argv[0] == "-s":
        if len(argv) < 2:
            return fail("adb: -s requires an argument")
        serial, argv = argv[1], argv[2:]
    if not argv:
        return fail("adb: usage: no command specified")
    command, args = argv[0], argv[1:]
    if command == "devices":
        print("List of devices attached")
        for name, state in attached.items():
            print(f"{name}\t{state}")
        print()
        return 0
    if serial is None:
        if not attached:
            return fail("adb: no devices/emulators found")
        if len(attached) > 1:
            return fail("adb: more than one device/emulator")
        serial = next(iter(attached))
    if serial not in attached:
        return fail(f"error: device '{serial}' not found")
    if command == "get-state":
        if attached[serial] != "device":
            return fail(f"error: device {attached[serial]}")
        print("device")
        return 0
    if attached[serial] != "device":
        return fail(f"error: device {attached[serial]}")
    if command == "push":
        if len(args) != 2:
            return fail("adb: push requires an argument")
        local, remote = Path(args[0]), args[1]
        if not local.exists():
            return fail(f"adb: error: cannot stat '{local}': No such file or directory")
        target = Path(remote) / local.name if remote.endswith("/") else Path(remote)
        began = time.monotonic()
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(local, target)
        except OSError as exc:
            return fail(f"adb: error: failed to copy '{local}' to '{remote}': remote {exc.strerror}")
        size, seconds = local.stat().st_size, max(time.monotonic() - began, 1e-6)
        print(f"{local}: 1 file pushed, 0 skipped. {size / seconds / 1e6:.1f} MB/s ({size} bytes in {seconds:.3f}s)")
        return 0
    if command == "shell":
        while args and args[0] in ("-T", "-t", "-tt", "-n", "-x"):
            args = args[1:]
        if not args:
            return fail("adb: the stand-in has no interactive shell; give a command")
        return subprocess.run(["sh", "-c", " ".join(args)], check=False).returncode
    return fail(f"adb: unknown command {command}")


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
