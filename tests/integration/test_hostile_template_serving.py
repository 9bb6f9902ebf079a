"""A package whose chat template never ends, served by the real scheduler and engine: the request
is answered with an error within the render bound (not retried), the scheduler keeps serving, and
closing it is prompt."""

from __future__ import annotations

import json
import shutil
import time

from edge_os.runtime.chat_template import RENDER_SECONDS
from edge_os.runtime.request import Finished, GenerationRequest, Refused, SamplingParams
from edge_os.scheduler.catalog import Catalog, package_entry
from edge_os.scheduler.config import SchedulerConfig
from edge_os.scheduler.loop import Scheduler
from edge_os.scheduler.probes import MemoryProbe, PowerProbe, ThermalProbe
from tests.simulated_sysfs import SimulatedDevice

ENDLESS = "{% for c in 'a'*200000 %}{% for d in 'a'*200000 %}{% endfor %}{% endfor %}"


def test_an_endless_template_is_refused_in_bounded_time_and_the_scheduler_goes_on(tmp_path, tiny_package):
    hostile = shutil.copytree(tiny_package, tmp_path / "hostile")
    manifest = json.loads((hostile / "manifest.json").read_text())
    (hostile / "manifest.json").write_text(json.dumps({**manifest, "name": "hostile", "chat_template": ENDLESS}))
    catalog = Catalog([package_entry(hostile, context_tokens=64, max_batch=1),
                       package_entry(tiny_package, context_tokens=64, max_batch=1)])
    device = SimulatedDevice(tmp_path / "dev")
    config = SchedulerConfig(budget_bytes=1 << 30, threads=1, template_allowance_tokens=32)
    scheduler = Scheduler(catalog, config, MemoryProbe(), ThermalProbe(device.thermal_dir),
                          PowerProbe(device.power_dir)).start()
    try:
        scheduler.submit(GenerationRequest(prompt="warm up", model="hostile", max_tokens=1))  # loads the model
        started = time.monotonic()
        handle = scheduler.submit(GenerationRequest(prompt="hi", model="hostile", max_tokens=4))
        events = list(handle.events(timeout=60))
        elapsed = time.monotonic() - started
        assert len(events) == 1 and isinstance(events[0], Refused), events
        assert events[0].code == "invalid_request" and not events[0].fallback
        assert "took longer than" in events[0].reason
        assert elapsed < 2 * RENDER_SECONDS + 10  # the warm-up's render, then this one's
        # The scheduler thread is free again: another model's request is served.
        request = GenerationRequest(prompt="hi", model=manifest["name"], max_tokens=2,
                                    sampling=SamplingParams(temperature=0))
        assert isinstance(list(scheduler.submit(request).events(timeout=120))[-1], Finished)
        scheduler.submit(GenerationRequest(prompt="again", model="hostile", max_tokens=1))
    finally:
        closing = time.monotonic()
        scheduler.close()
    assert time.monotonic() - closing < RENDER_SECONDS + 5
