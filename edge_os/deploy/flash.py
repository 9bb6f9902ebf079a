"""``edge-os flash PACKAGE DEVICE``: one pipeline for every transport.

preflight (signature, target, version, memory, disk) → transfer only the files the device lacks
(by sha256), resuming partial ones → install on the device (stage, verify, switch, health check,
commit or roll back).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from edge_os.deploy.install import Events
from edge_os.deploy.links import DeviceLink
from edge_os.deploy.signing import listed_files, parse_manifest, verify_package
from edge_os.deploy.store import package_files
from edge_os.errors import PackageError

CHUNK = 1 << 20


@dataclass(frozen=True)
class FlashOptions:
    allow_downgrade: bool = False
    progress: bool = True


def flash(package: Path, link: DeviceLink, options: FlashOptions = FlashOptions(),
          events: Events = lambda phase, details: None) -> dict:
    """Put ``package`` on the device behind ``link``; returns the device's result plus transfer
    figures (``sent_bytes``, ``package_bytes``)."""
    package = Path(package)
    problems = [p for p in verify_package(package, []) if not p.startswith(("package is signed by key",))]
    if problems:
        raise PackageError(f"{package}: {problems[0]}")
    manifest, sig = package_files(package)
    files = listed_files(parse_manifest(manifest))
    package_bytes = len(manifest) + len(sig) + sum(info["size"] for info in files.values())
    events("preflight", {"package": str(package)})
    plan = link.preflight(manifest, sig, options.allow_downgrade)
    by_sha = {info["sha256"]: package / rel for rel, info in files.items()}
    todo = sum(m["size"] - m["have"] for m in plan["missing"].values())
    events("transfer", {"files": len(plan["missing"]), "bytes": todo})
    sent = 2 * (len(manifest) + len(sig))  # the preflight and the install both carry them
    bar = None
    if options.progress and todo:
        from tqdm import tqdm

        bar = tqdm(total=todo, unit="B", unit_scale=True, desc="transfer")
    try:
        for sha, missing in plan["missing"].items():
            offset = missing["have"]
            if hasattr(link, "send_file") and missing["size"]:  # a link with its own way of copying files
                sent += missing["size"] - offset
                link.send_file(sha, by_sha[sha], offset, missing["size"], bar.update if bar else lambda n: None)
                continue
            with open(by_sha[sha], "rb") as f:
                f.seek(offset)
                while offset < missing["size"]:
                    data = f.read(min(CHUNK, missing["size"] - offset))
                    offset = link.send(sha, offset, data)
                    sent += len(data)
                    if bar:
                        bar.update(len(data))
            if missing["size"] == 0:
                link.send(sha, 0, b"")
    finally:
        if bar:
            bar.close()
    result = link.install(manifest, sig, options.allow_downgrade, events)
    return {**result, "sent_bytes": sent, "package_bytes": package_bytes, "resumed_bytes":
            sum(m["have"] for m in plan["missing"].values())}
