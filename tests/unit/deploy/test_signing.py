"""Keys, signatures and whole-package verification on a small hand-made package directory."""

from __future__ import annotations

import hashlib
import json
import os
import stat

import pytest

from edge_os.deploy import keys
from edge_os.deploy.signing import SIGNATURE, checked_relpath, sign_package, verify_package
from edge_os.errors import InputError, PackageError


def _package(root, files: dict[str, bytes]):
    root.mkdir()
    listed = {}
    for rel, data in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(data)
        listed[rel] = {"sha256": hashlib.sha256(data).hexdigest(), "size": len(data)}
    (root / "manifest.json").write_text(json.dumps({"name": "m", "files": listed}, indent=1, sort_keys=True))
    return root


@pytest.fixture
def keypair(tmp_path):
    return keys.generate(tmp_path / "k")


@pytest.fixture
def package(tmp_path):
    files = {"model.so": b"\x7fELF" + bytes(100), "weights/shard-00000.bin": bytes(range(256))}
    return _package(tmp_path / "pkg", files)


def test_generate_writes_a_private_key_only_its_owner_reads(keypair):
    private, public = keypair
    assert stat.S_IMODE(os.stat(private).st_mode) == 0o600
    assert keys.load_public(public).key_id == keys.key_id(keys.load_private(private).public_key())


def test_generate_refuses_to_overwrite_a_key(tmp_path, keypair):
    with pytest.raises(InputError, match="already exists"):
        keys.generate(tmp_path / "k")


def test_a_signed_package_verifies_and_an_unsigned_one_does_not(package, keypair):
    private, public = keypair
    trusted = [keys.load_public(public)]
    assert any("unsigned" in p for p in verify_package(package, trusted))
    sign_package(package, private, version=3)
    assert verify_package(package, trusted) == []
    assert json.loads((package / "manifest.json").read_text())["version"] == 3


def test_each_kind_of_tampering_is_one_line(tmp_path, package, keypair):
    private, public = keypair
    sign_package(package, private)
    trusted = [keys.load_public(public)]
    shard = package / "weights/shard-00000.bin"
    data = bytearray(shard.read_bytes())
    data[7] ^= 1
    shard.write_bytes(bytes(data))
    (package / "extra.py").write_text("import os")
    problems = verify_package(package, trusted)
    assert len(problems) == 2
    assert any("shard-00000.bin does not match its sha256" in p for p in problems)
    assert any("extra.py is not listed" in p for p in problems)


def test_an_edited_manifest_breaks_the_signature(package, keypair):
    private, public = keypair
    sign_package(package, private)
    text = (package / "manifest.json").read_text().replace('"name": "m"', '"name": "n"')
    (package / "manifest.json").write_text(text)
    assert any("does not match its signature" in p for p in verify_package(package, [keys.load_public(public)]))


def test_another_key_is_not_trusted(tmp_path, package, keypair):
    other_private, _ = keys.generate(tmp_path / "other")
    sign_package(package, other_private)
    problems = verify_package(package, [keys.load_public(keypair[1])])
    assert len(problems) == 1 and "not trusted" in problems[0]


def test_symlinks_and_device_files_are_refused(package, keypair):
    sign_package(package, keypair[0])
    (package / "weights" / "link").symlink_to("/etc/passwd")
    os.mkfifo(package / "fifo")
    problems = verify_package(package, [keys.load_public(keypair[1])])
    assert any("link is a symbolic link" in p for p in problems)
    assert any("fifo is not a regular file" in p for p in problems)


@pytest.mark.parametrize("rel", ["/etc/passwd", "../x", "a/../../x", "a//b", "./a", "", "a\\b", "manifest.sig"])
def test_paths_outside_the_package_are_refused(rel):
    with pytest.raises(PackageError):
        checked_relpath(rel)


def test_signing_refuses_a_package_whose_files_do_not_match(package, keypair):
    (package / "model.so").write_bytes(b"changed")
    with pytest.raises(PackageError, match="cannot sign"):
        sign_package(package, keypair[0])
    assert not (package / SIGNATURE).exists()
