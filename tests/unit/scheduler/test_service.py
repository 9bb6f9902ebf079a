"""The service: a threaded scheduler, the status socket, and front doors attached to it."""

import json
import socket
import threading

import pytest

from edge_os.errors import SchedulerError
from edge_os.package.memory import MemoryFigures
from edge_os.runtime.request import Finished, GenerationRequest, TextDelta
from edge_os.scheduler.catalog import Catalog, ModelEntry, ModelInfo
from edge_os.scheduler.config import SchedulerConfig
from edge_os.scheduler.loop import Scheduler
from edge_os.scheduler.probes import MemoryProbe, PowerProbe, ThermalProbe
from edge_os.scheduler.report import format_status
from edge_os.scheduler.service import Service
from edge_os.scheduler.status_socket import StatusServer, query
from tests.scheduler_simulation import SimulatedEngine
from tests.simulated_sysfs import SimulatedDevice

G = 1 << 30


def threaded_scheduler(tmp_path, names=("a", "b")):
    """Engines without a simulated clock: the loop runs on real time, as in the service."""
    device = SimulatedDevice(tmp_path / "dev")
    engines = []

    def load(info):
        def make(threads):
            engines.append(SimulatedEngine(info.name, info.memory))
            return engines[-1]
        return make

    infos = [ModelInfo(n, MemoryFigures(G, 1024, 0), 2048) for n in names]
    catalog = Catalog([ModelEntry(i, load(i)) for i in infos])
    config = SchedulerConfig(budget_bytes=4 * G, pooled_memory=False, probe_interval_s=0.05)
    scheduler = Scheduler(catalog, config, MemoryProbe(device.meminfo_path),
                          ThermalProbe(device.thermal_dir), PowerProbe(device.power_dir))
    return scheduler, engines


def test_concurrent_front_doors_on_the_threaded_loop(tmp_path):
    scheduler, engines = threaded_scheduler(tmp_path)
    results = {}
    submitted = threading.Semaphore(0)

    def client(i):
        handle = scheduler.submit(GenerationRequest(prompt=f"p{i}", model="ab"[i % 2], max_tokens=20))
        submitted.release()
        events = list(handle.events(timeout=10))
        results[i] = events

    threads = [threading.Thread(target=client, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    # The loop starts once every front door has submitted: with engines that step in no time, a
    # loaded machine could otherwise finish each request before the next thread runs.
    for _ in threads:
        submitted.acquire(timeout=10)
    with scheduler.start():
        for t in threads:
            t.join()
    assert len(results) == 8
    for events in results.values():
        assert isinstance(events[-1], Finished)
        assert sum(isinstance(e, TextDelta) for e in events) == 20
    assert max(max(e.steps) for e in engines) > 1  # some requests decoded together


def test_cancel_from_another_thread(tmp_path):
    scheduler, engines = threaded_scheduler(tmp_path, names=("a",))
    with scheduler.start():
        handle = scheduler.submit(GenerationRequest(prompt="p", max_tokens=10**6, ignore_eos=True))
        stream = handle.events(timeout=10)
        assert isinstance(next(stream), TextDelta)
        handle.cancel()
        end = [e for e in stream][-1]
        assert end.finish_reason.value == "cancelled"
        assert engines[0].live == set()


def test_events_time_out(tmp_path):
    scheduler, _ = threaded_scheduler(tmp_path, names=("a",))
    handle = scheduler.submit(GenerationRequest(prompt="p"))  # loop not started: nothing comes
    with pytest.raises(TimeoutError):
        next(handle.events(timeout=0.01))
    scheduler.close()


def test_status_socket_answers_and_refuses_garbage(tmp_path):
    scheduler, _ = threaded_scheduler(tmp_path)
    service = Service(scheduler, tmp_path / "s.sock").start()
    try:
        status = query(tmp_path / "s.sock")
        assert [m["name"] for m in status["models"]] == ["a", "b"]
        assert status["memory"]["budget_bytes"] == 4 * G
        assert "governor:" in format_status(status)
        with socket.socket(socket.AF_UNIX) as raw:
            raw.connect(str(tmp_path / "s.sock"))
            raw.sendall(b"{\"op\": \"reboot\"}\n")
            answer = json.loads(raw.makefile().readline())
        assert not answer["ok"] and "unknown op" in answer["error"]
        with pytest.raises(SchedulerError, match="already answers"):
            StatusServer(tmp_path / "s.sock").start(scheduler)
    finally:
        service.stop()
    assert not (tmp_path / "s.sock").exists()
    with pytest.raises(SchedulerError, match="no edge-os service"):
        query(tmp_path / "s.sock")


def test_a_stale_socket_file_is_replaced(tmp_path):
    stale = socket.socket(socket.AF_UNIX)
    stale.bind(str(tmp_path / "s.sock"))
    stale.close()  # the file stays, nobody listens
    scheduler, _ = threaded_scheduler(tmp_path)
    service = Service(scheduler, tmp_path / "s.sock").start()
    try:
        assert query(tmp_path / "s.sock")["queue"]["waiting"] == 0
    finally:
        service.stop()


def test_front_doors_attach_and_stop_in_reverse(tmp_path):
    calls = []

    class Door:
        def __init__(self, name):
            self.name = name

        def start(self, scheduler):
            calls.append(("start", self.name))
            assert scheduler.status()["models"]

        def stop(self):
            calls.append(("stop", self.name))

    scheduler, _ = threaded_scheduler(tmp_path)
    service = Service(scheduler, tmp_path / "s.sock")
    service.attach(Door("mqtt"))
    service.attach(Door("http"))
    service.start()
    service.stop()
    assert calls == [("start", "mqtt"), ("start", "http"), ("stop", "http"), ("stop", "mqtt")]


def test_socket_path_too_long(tmp_path):
    with pytest.raises(SchedulerError, match="longer than"):
        query(tmp_path / ("x" * 120))
