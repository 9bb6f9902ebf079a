"""`edge-os serve --root ROOT --mqtt URL` processes for the flash tests: simulated devices that
serve their store, follow its switches and take over-the-air jobs."""

from __future__ import annotations

import json
import subprocess
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path

from tests.integration.deploy.helpers import EDGE_OS, edge_os
from tests.integration.mqtt_harness import Mosquitto, Requester, run_env
from tests.waiting import wait_until


@dataclass
class ServedDevice:
    device_id: str
    root: Path
    socket: Path
    proc: subprocess.Popen
    log: Path

    def ps(self) -> dict:
        """What the running service says it serves (`edge-os ps --json`), by model name."""
        result = edge_os("ps", "--json", "--socket", self.socket, timeout=60)
        assert result.returncode == 0, result.stderr
        return {m["name"]: m for m in json.loads(result.stdout)["models"] if not m["replaced"]}

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(60)


def start_devices(mosquitto: Mosquitto, roots: dict[str, Path], workdir: Path, timeout: float = 300,
                  *extra: str) -> dict[str, ServedDevice]:
    """Start one `edge-os serve --root` per device id; returns once every one announced itself
    (retained ``edge-os/ID/ota/device``, the message `rollout --all` discovers devices by)."""
    watcher = Requester(mosquitto.port, f"watch-{workdir.name}", subscribe=("edge-os/+/ota/device",))
    devices = {}
    try:
        for device_id, root in roots.items():
            socket_dir = Path(tempfile.mkdtemp(prefix="eos-", dir="/tmp"))  # Unix socket paths are short
            log = workdir / f"serve-{device_id}.log"
            proc = subprocess.Popen(
                [EDGE_OS, "serve", "--root", str(root), "--mqtt", mosquitto.url, "--device-id", device_id,
                 "--mqtt-state-dir", str(workdir / f"state-{device_id}"), "--socket", str(socket_dir / "s.sock"),
                 "--threads", "1", "--context", "256", "--telemetry-interval", "3600", *extra],
                env=run_env(), stdout=open(log, "w"), stderr=subprocess.STDOUT)
            devices[device_id] = ServedDevice(device_id, root, socket_dir / "s.sock", proc, log)

        def online() -> bool:
            for device in devices.values():
                assert device.proc.poll() is None, device.log.read_text()[-3000:]
            states = {topic.split("/")[1]: body.get("state") for topic, _c, body in list(watcher.received)}
            return all(states.get(d) == "online" for d in devices)

        wait_until(online, timeout, interval=0.2, what="every device online")
    except BaseException:
        for device in devices.values():
            device.stop()
        raise
    finally:
        watcher.close()
    return devices


def ask(mosquitto: Mosquitto, device_id: str, prompt: str, max_tokens: int = 8, timeout: float = 120) -> dict:
    """One greedy request over MQTT; the device's final answer."""
    requester = Requester(mosquitto.port, f"ask-{device_id}")
    try:
        correlation = uuid.uuid4().hex.encode()
        requester.ask({"prompt": prompt, "max_tokens": max_tokens, "temperature": 0}, correlation,
                      topic=f"edge-os/{device_id}/req")
        return requester.final(correlation, timeout=timeout)
    finally:
        requester.close()
