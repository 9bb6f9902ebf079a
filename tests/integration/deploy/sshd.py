"""A real OpenSSH server on 127.0.0.1 for the ssh:// flash tests: a throw-away host key, one
throw-away client key, key authentication only."""

from __future__ import annotations

import getpass
import os
import socket
import subprocess
import time
from pathlib import Path

SSHD = "/usr/sbin/sshd"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Sshd:
    def __init__(self, workdir: Path):
        self.dir = workdir
        self.dir.mkdir(parents=True)
        self.port = _free_port()
        self.user = getpass.getuser()
        self.proc: subprocess.Popen | None = None

    def start(self, timeout: float = 20.0) -> Sshd:
        for name in ("host_key", "client_key"):
            subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(self.dir / name)], check=True)
        (self.dir / "authorized_keys").write_text((self.dir / "client_key.pub").read_text())
        host_pub = (self.dir / "host_key.pub").read_text().split()
        (self.dir / "known_hosts").write_text(f"[127.0.0.1]:{self.port} {host_pub[0]} {host_pub[1]}\n")
        (self.dir / "sshd_config").write_text("\n".join([
            f"Port {self.port}", "ListenAddress 127.0.0.1", f"HostKey {self.dir / 'host_key'}",
            f"AuthorizedKeysFile {self.dir / 'authorized_keys'}", "PasswordAuthentication no",
            "KbdInteractiveAuthentication no", "PubkeyAuthentication yes", "UsePAM no", "StrictModes no",
            "PermitRootLogin prohibit-password", f"PidFile {self.dir / 'sshd.pid'}", "LogLevel ERROR", ""]))
        if os.geteuid() == 0:
            Path("/run/sshd").mkdir(exist_ok=True)  # sshd's privilege-separation directory
        with open(self.dir / "sshd.log", "wb") as log:
            self.proc = subprocess.Popen([SSHD, "-D", "-e", "-f", str(self.dir / "sshd_config")], stderr=log)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"sshd exited: {(self.dir / 'sshd.log').read_text()}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return self
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("sshd did not start listening")

    def url(self, root: Path) -> str:
        return f"ssh://{self.user}@127.0.0.1:{self.port}{root}"

    def options(self) -> list[str]:
        """``flash`` arguments that make the client use the throw-away keys."""
        opts = [f"IdentityFile={self.dir / 'client_key'}", "IdentitiesOnly=yes",
                f"UserKnownHostsFile={self.dir / 'known_hosts'}", "StrictHostKeyChecking=yes"]
        return [arg for opt in opts for arg in ("--ssh-option", opt)]

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=10)
