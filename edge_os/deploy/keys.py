"""Ed25519 signing keys: ``PREFIX.key`` (private, PKCS#8 PEM, mode 0600) and ``PREFIX.pub``.

A key is named on devices and in signatures by its *key id*: the first 16 hex digits of the
sha256 of its raw 32-byte public key.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from edge_os.errors import InputError


@dataclass(frozen=True)
class PublicKey:
    """A trusted public key and its id."""

    key: Ed25519PublicKey
    key_id: str

    def pem(self) -> bytes:
        return self.key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


def key_id(public: Ed25519PublicKey) -> str:
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


def generate(prefix: Path, force: bool = False) -> tuple[Path, Path]:
    """Write a new key pair to ``PREFIX.key`` and ``PREFIX.pub``; returns both paths."""
    prefix = Path(prefix)
    private_path, public_path = prefix.with_name(prefix.name + ".key"), prefix.with_name(prefix.name + ".pub")
    for path in (private_path, public_path):
        if path.exists() and not force:
            raise InputError(f"{path} already exists; choose another --out or pass --force (the old key is lost)")
    private = Ed25519PrivateKey.generate()
    pem = private.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    prefix.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(private_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(pem)
    os.chmod(private_path, 0o600)
    public_path.write_bytes(PublicKey(private.public_key(), "").pem())
    return private_path, public_path


def load_private(path: Path) -> Ed25519PrivateKey:
    """The private key in ``path`` (made by ``edge-os keys generate``)."""
    try:
        key = serialization.load_pem_private_key(Path(path).read_bytes(), password=None)
    except FileNotFoundError:
        raise InputError(
            f"signing key {path} does not exist; make one with `edge-os keys generate --out PREFIX`") from None
    except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
        raise InputError(f"{path} is not an unencrypted PEM private key ({exc}); "
                         "make one with `edge-os keys generate --out PREFIX`") from exc
    if not isinstance(key, Ed25519PrivateKey):
        raise InputError(f"{path} is not an Ed25519 key; make one with `edge-os keys generate --out PREFIX`")
    return key


def parse_public(data: bytes, where: str) -> PublicKey:
    try:
        key = serialization.load_pem_public_key(data)
    except (ValueError, UnsupportedAlgorithm) as exc:
        raise InputError(
            f"{where} is not a PEM public key ({exc}); use the .pub file of `edge-os keys generate`") from exc
    if not isinstance(key, Ed25519PublicKey):
        raise InputError(f"{where} is not an Ed25519 public key; use the .pub file of `edge-os keys generate`")
    return PublicKey(key, key_id(key))


def load_public(path: Path) -> PublicKey:
    """The public key in ``path`` (a ``.pub`` file)."""
    try:
        data = Path(path).read_bytes()
    except FileNotFoundError:
        raise InputError(
            f"public key {path} does not exist; pass the .pub file of `edge-os keys generate`") from None
    return parse_public(data, str(path))
