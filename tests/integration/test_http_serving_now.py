"""What the HTTP API says follows what the scheduler serves now: ``/v1/models`` after a version
switch, an added and a removed model (what ``serve --root`` does on an install or a rollback),
and ``/ready`` with and without a cloud to fall back on.

A real scheduler and a real uvicorn server; the packages are manifests only (nothing is loaded:
listing and readiness never load a model), written into a temporary directory.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from edge_os.api.cloud import CloudConfig
from edge_os.api.config import HttpConfig
from edge_os.api.front_door import HttpFrontDoor
from edge_os.scheduler.catalog import Catalog, package_entry
from edge_os.scheduler.config import SchedulerConfig
from edge_os.scheduler.loop import Scheduler
from edge_os.scheduler.probes import MemoryProbe, PowerProbe, ThermalProbe
from tests.manifests import BASE_MANIFEST
from tests.simulated_sysfs import SimulatedDevice
from tests.waiting import wait_until

pytest.importorskip("starlette")

MANIFEST = {**BASE_MANIFEST, "name": "m", "source": {}, "limits": {}, "version": 1,
            "target": {**BASE_MANIFEST["target"], "cpu_features": []}}


def package(root: Path, slot: str, name: str = "m", version: int = 1, scheme: str = "q4f32") -> Path:
    manifest = copy.deepcopy(MANIFEST)
    manifest.update(name=name, version=version)
    manifest["quantization"]["scheme"] = scheme
    path = root / name / slot
    path.mkdir(parents=True)
    (path / "manifest.json").write_text(json.dumps(manifest))
    return path


@pytest.fixture
def board(tmp_path: Path) -> SimulatedDevice:
    return SimulatedDevice(tmp_path / "dev")


@pytest.fixture
def serve(board: SimulatedDevice) -> Iterator[Callable[..., tuple[Scheduler, str]]]:
    """``serve(packages, cloud=None) -> (scheduler, url)``: the HTTP front door over a real scheduler."""
    started: list[tuple[Scheduler, HttpFrontDoor]] = []

    def start(packages: list[Path], cloud: CloudConfig | None = None) -> tuple[Scheduler, str]:
        scheduler = Scheduler(Catalog([package_entry(p, context_tokens=256) for p in packages]),
                              SchedulerConfig(budget_bytes=1 << 30, threads=1, probe_interval_s=0.05), MemoryProbe(),
                              ThermalProbe(board.thermal_dir), PowerProbe(board.power_dir)).start()
        door = HttpFrontDoor(HttpConfig(port=0, packages=tuple(packages), cloud=cloud))
        door.start(scheduler)
        started.append((scheduler, door))
        return scheduler, door.url

    yield start
    for scheduler, door in started:
        door.stop()
        scheduler.close()


def listed(url: str) -> list[tuple[str, int, str]]:
    data = httpx.get(f"{url}/v1/models", timeout=10).json()["data"]
    return [(m["id"], m["version"], m["quantization"]["scheme"]) for m in data]


def test_models_follow_a_switch_an_install_and_a_removal(serve, tmp_path: Path) -> None:
    first = package(tmp_path, "a", version=1, scheme="q4f32")
    scheduler, url = serve([first])
    assert listed(url) == [("m", 1, "q4f32")]

    scheduler.set_model(package_entry(package(tmp_path, "b", version=2, scheme="q8f32"), context_tokens=256))
    wait_until(lambda: listed(url) == [("m", 2, "q8f32")], 10, what="the new version listed alone")

    scheduler.set_model(package_entry(package(tmp_path, "a", name="n"), context_tokens=256))
    wait_until(lambda: sorted(listed(url)) == [("m", 2, "q8f32"), ("n", 1, "q4f32")], 10, what="the added model")

    scheduler.remove_model("m")
    wait_until(lambda: listed(url) == [("n", 1, "q4f32")], 10, what="the removed model gone")
    missing = httpx.post(f"{url}/tokenize", json={"model": "m", "prompt": "hi"}, timeout=10)
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "model_not_found"


def ready(url: str) -> tuple[int, dict]:
    answer = httpx.get(f"{url}/ready", timeout=10)
    return answer.status_code, answer.json()


CLOUD = CloudConfig("http://127.0.0.1:9/v1")  # never called: readiness does not ask the cloud


def test_ready_without_a_model_is_unready_even_with_a_cloud(serve) -> None:
    """A request must name a model served here (else 404), so a cloud does not make a device without
    models ready: the cloud answers only what the device refuses."""
    for cloud in (None, CLOUD):
        _, url = serve([], cloud=cloud)
        status, body = ready(url)
        assert status == 503 and body["error"]["code"] == "no_model", body


def test_ready_when_too_hot_says_the_cloud_serves_and_why(serve, board: SimulatedDevice, tmp_path: Path) -> None:
    _, url = serve([package(tmp_path, "a")], cloud=CLOUD)
    status, body = ready(url)
    assert status == 200 and body["served_by"] == "local" and body["models"] == ["m"]
    board.model.temp_c = 95.0
    board.flush()
    status, body = wait_until(lambda: (lambda r: r if r[1].get("served_by") == "cloud" else None)(ready(url)), 20,
                              what="readiness through the cloud when hot")
    assert status == 200 and body["reason"] == "too_hot" and "C" in body["detail"]
