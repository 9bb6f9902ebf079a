"""Detached signatures over ``manifest.json`` and whole-package verification.

``manifest.sig`` holds an Ed25519 signature over the exact bytes of ``manifest.json``. The manifest
lists the sha256 and size of every other file, so a valid signature plus matching files proves the
whole package is what the key holder signed. Nothing else may be in the package.
"""

from __future__ import annotations

import base64
import json
import os
import stat
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from cryptography.exceptions import InvalidSignature

from edge_os.deploy import keys
from edge_os.deploy.fsutil import write_atomic
from edge_os.errors import InputError, PackageError
from edge_os.package.manifest import MANIFEST
from edge_os.package.writer import sha256_file

SIGNATURE = "manifest.sig"
ALGORITHM = "ed25519"


@dataclass(frozen=True)
class Signature:
    key_id: str
    signature: bytes

    def to_bytes(self) -> bytes:
        return json.dumps({"algorithm": ALGORITHM, "key_id": self.key_id,
                           "signature": base64.b64encode(self.signature).decode()}, indent=1).encode() + b"\n"

    @classmethod
    def from_bytes(cls, data: bytes, where: str = SIGNATURE) -> Signature:
        try:
            doc = json.loads(data)
            if doc["algorithm"] != ALGORITHM:
                raise ValueError(f"algorithm {doc['algorithm']!r}")
            return cls(str(doc["key_id"]), base64.b64decode(doc["signature"], validate=True))
        except (ValueError, KeyError, TypeError) as exc:
            raise PackageError(f"{where} is malformed ({exc}); sign the package again with `edge-os sign`") from exc


def sign_bytes(manifest_bytes: bytes, private) -> Signature:
    return Signature(keys.key_id(private.public_key()), private.sign(manifest_bytes))


def check_signature(manifest_bytes: bytes, sig_bytes: bytes | None, trusted: list[keys.PublicKey]) -> str:
    """Raise ``PackageError`` unless ``sig_bytes`` is a trusted key's signature of ``manifest_bytes``;
    return the key id."""
    if sig_bytes is None:
        raise PackageError(f"package is unsigned (no {SIGNATURE}); sign it with `edge-os sign PACKAGE --key KEY`")
    sig = Signature.from_bytes(sig_bytes)
    by_id = {k.key_id: k for k in trusted}
    if sig.key_id not in by_id:
        raise PackageError(f"package is signed by key {sig.key_id}, which is not trusted here; sign it with a "
                           "trusted key or add its .pub with `edge-os device init ROOT --trust PUB`")
    try:
        by_id[sig.key_id].key.verify(sig.signature, manifest_bytes)
    except InvalidSignature:
        raise PackageError(f"{MANIFEST} does not match its signature by key {sig.key_id} (edited after "
                           "signing); re-sign the package") from None
    return sig.key_id


def checked_relpath(rel: object) -> str:
    """A manifest file name, refused unless it is a plain relative path inside the package."""
    if not isinstance(rel, str) or not rel or "\\" in rel or "\0" in rel:
        raise PackageError(f"manifest lists a bad file name {rel!r}; re-pack the package")
    path = PurePosixPath(rel)
    if path.is_absolute() or any(part in ("", ".", "..") for part in rel.split("/")) or str(path) != rel:
        raise PackageError(f"manifest lists {rel!r}, a path outside the package; re-pack the package")
    if rel in (MANIFEST, SIGNATURE):
        raise PackageError(f"manifest lists {rel!r} as a data file; re-pack the package")
    return rel


def listed_files(manifest: dict) -> dict[str, dict]:
    """``{relative path: {"sha256", "size"}}`` from a parsed manifest, every entry checked."""
    files = manifest.get("files")
    if not isinstance(files, dict) or not files:
        raise PackageError("manifest lists no files; re-pack the package")
    out = {}
    for rel, info in files.items():
        checked_relpath(rel)
        if (not isinstance(info, dict) or not isinstance(info.get("size"), int) or info["size"] < 0
                or not isinstance(info.get("sha256"), str) or len(info["sha256"]) != 64):
            raise PackageError(f"manifest entry for {rel} is malformed; re-pack the package")
        out[rel] = info
    return out


def parse_manifest(manifest_bytes: bytes) -> dict:
    try:
        data = json.loads(manifest_bytes)
    except (ValueError, UnicodeDecodeError) as exc:
        raise PackageError(f"{MANIFEST} is not valid JSON ({exc}); re-pack the package") from exc
    if not isinstance(data, dict) or not isinstance(data.get("name"), str):
        raise PackageError(f"{MANIFEST} has no model name; re-pack the package")
    if not isinstance(data.get("version", 1), int):
        raise PackageError(f"{MANIFEST} has a non-integer version; sign it again with --version N")
    return data


def _walk(package_dir: Path):
    """Every entry under ``package_dir`` as (relative posix path, lstat), directories included."""
    for dirpath, dirnames, filenames in os.walk(package_dir):
        for name in dirnames + filenames:
            full = Path(dirpath) / name
            yield full.relative_to(package_dir).as_posix(), full.lstat()


def verify_package(package_dir: Path, trusted: list[keys.PublicKey]) -> list[str]:
    """Every problem with the package as one line each (empty: signed by a trusted key, complete,
    every file matching, nothing extra)."""
    package_dir = Path(package_dir)
    try:
        manifest_bytes = (package_dir / MANIFEST).read_bytes()
    except OSError:
        return [f"{package_dir} is not a model package (no readable {MANIFEST})"]
    problems = []
    sig_path = package_dir / SIGNATURE
    try:
        check_signature(manifest_bytes, sig_path.read_bytes() if sig_path.is_file() else None, trusted)
    except PackageError as exc:
        problems.append(str(exc))
    try:
        files = listed_files(parse_manifest(manifest_bytes))
    except PackageError as exc:
        return problems + [str(exc)]
    dirs = {str(p) for rel in files for p in PurePosixPath(rel).parents}
    for rel, st in _walk(package_dir):
        if stat.S_ISLNK(st.st_mode):
            problems.append(f"{rel} is a symbolic link; packages hold plain files only, remove it")
        elif stat.S_ISDIR(st.st_mode):
            if rel not in dirs:
                problems.append(f"{rel}/ is not in the manifest; remove it or re-pack the package")
        elif not stat.S_ISREG(st.st_mode):
            problems.append(f"{rel} is not a regular file (device or pipe); remove it")
        elif rel not in files and rel not in (MANIFEST, SIGNATURE):
            problems.append(f"{rel} is not listed in the manifest; remove it or re-pack the package")
    for rel, info in files.items():
        path = package_dir / rel
        if not path.is_file() or path.is_symlink():
            problems.append(f"{rel} is missing; re-pack or re-flash the package")
        elif path.stat().st_size != info["size"]:
            problems.append(f"{rel} is {path.stat().st_size} bytes, the manifest says {info['size']}; "
                            "re-pack or re-flash the package")
        elif sha256_file(path) != info["sha256"]:
            problems.append(f"{rel} does not match its sha256 in the manifest (edited or corrupted); "
                            "re-pack or re-flash the package")
    return problems


def sign_package(package_dir: Path, key_path: Path, version: int | None = None) -> Signature:
    """Sign ``package_dir`` in place (optionally setting its release ``version`` first).

    Refuses a package whose files do not match its manifest, so a signature never vouches for
    content the signer did not check."""
    package_dir = Path(package_dir)
    private = keys.load_private(key_path)
    problems = [p for p in verify_package(package_dir, [])
                if not p.startswith(("package is unsigned", "package is signed by key"))]
    if problems:
        raise PackageError(f"cannot sign {package_dir}: {problems[0]}")
    manifest_path = package_dir / MANIFEST
    manifest_bytes = manifest_path.read_bytes()
    if version is not None:
        if version < 1:
            raise InputError(f"--version must be 1 or more (got {version})")
        data = json.loads(manifest_bytes)
        data["version"] = version
        manifest_bytes = json.dumps(data, indent=1, sort_keys=True).encode()
        write_atomic(manifest_path, manifest_bytes)
    sig = sign_bytes(manifest_bytes, private)
    write_atomic(package_dir / SIGNATURE, sig.to_bytes())
    return sig
