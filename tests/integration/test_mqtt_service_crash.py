"""Kill -9 the device service process: answers waiting in its outbox are delivered after restart,
and requests it had accepted but not answered are resumed."""

from __future__ import annotations

import signal
import sqlite3
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from tests.integration.echo_scheduler import expected_answer
from tests.integration.mqtt_harness import Mosquitto, Requester, run_env
from tests.waiting import wait_until


class Service:
    """``mqtt_service`` in a subprocess, restartable with the same state directory."""

    def __init__(self, broker: Mosquitto, tmp: Path, device_id: str, token_delay: float) -> None:
        self.state_dir = tmp / "service-state"
        self.runs_log = tmp / "runs.log"
        self.log = tmp / "service.log"
        self.args = [
            sys.executable, "-m", "tests.integration.mqtt_service",
            "--mqtt", broker.url, "--device-id", device_id, "--mqtt-state-dir", str(self.state_dir),
            "--runs-log", str(self.runs_log), "--token-delay", str(token_delay), "--telemetry-interval", "3600",
        ]  # fmt: skip
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        with open(self.log, "a") as log:
            self.proc = subprocess.Popen(self.args, env=run_env(), stdout=log, stderr=subprocess.STDOUT)

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.kill()

    def runs(self) -> Counter[str]:
        return Counter(self.runs_log.read_text().split()) if self.runs_log.exists() else Counter()

    def outbox_answers(self) -> int:
        db = sqlite3.connect(f"file:{self.state_dir / 'bridge.sqlite3'}?mode=ro", uri=True, timeout=5)
        try:
            return db.execute("SELECT COUNT(*) FROM outbox WHERE kind = 'answer'").fetchone()[0]
        finally:
            db.close()


@pytest.fixture
def service_factory(mosquitto: Mosquitto, tmp_path: Path):
    services: list[Service] = []

    def make(token_delay: float) -> Service:
        service = Service(mosquitto, tmp_path, "dev2", token_delay)
        services.append(service)
        return service

    yield make
    for service in services:
        service.stop()


def _online(requester: Requester) -> bool:
    statuses = requester.on_topic("edge-os/dev2/status")
    return bool(statuses) and statuses[-1]["state"] == "online"


def test_answers_in_the_outbox_survive_kill_9_of_the_service(mosquitto: Mosquitto, service_factory):
    service = service_factory(token_delay=0.3)
    requester = Requester(mosquitto.port, "hub", subscribe=("edge-os/dev2/status",))
    service.start()
    wait_until(lambda: _online(requester), 20, what="the service online")
    prompts = {f"c{i}".encode(): f"valve {i} pressure reading {i * 3}" for i in range(5)}
    for corr, prompt in prompts.items():
        requester.ask({"prompt": prompt}, corr, topic="edge-os/dev2/req")
    wait_until(lambda: sum(service.runs().values()) == 5, 10, what="all 5 requests running")

    mosquitto.kill()  # the hub goes away: answers can only go to the outbox
    wait_until(lambda: service.outbox_answers() == 5, 20, what="5 answers waiting in the outbox")
    service.kill()  # and the device loses power before the hub is back
    assert service.outbox_answers() == 5
    assert not any(requester.answers(c) for c in prompts)

    mosquitto.start()
    service.start()
    for corr, prompt in prompts.items():
        answer = requester.final(corr, timeout=20)
        assert answer["text"] == expected_answer(prompt)
    wait_until(lambda: service.outbox_answers() == 0, 10, what="an empty outbox")
    assert all(n == 1 for n in service.runs().values()) and len(service.runs()) == 5  # nothing re-ran
    requester.close()


def test_requests_accepted_but_unanswered_resume_after_kill_9(mosquitto: Mosquitto, service_factory):
    """A request interrupted mid-generation runs again from the start; it still gets one answer."""
    service = service_factory(token_delay=0.5)
    requester = Requester(mosquitto.port, "hub", subscribe=("edge-os/dev2/status",))
    service.start()
    wait_until(lambda: _online(requester), 20, what="the service online")
    requester.ask({"prompt": "long running question about the compressor"}, b"long", topic="edge-os/dev2/req")
    wait_until(lambda: sum(service.runs().values()) == 1, 10, what="the request running")
    service.kill()
    service.start()
    answer = requester.final(b"long", timeout=30)
    assert answer["text"] == expected_answer("long running question about the compressor")
    assert list(service.runs().values()) == [2]  # interrupted once, then completed
    assert len(requester.answers(b"long", "final")) == 1
    requester.close()
