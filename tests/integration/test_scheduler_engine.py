"""The scheduler driving real engines: two tiny packed models, concurrent requests from threads.

Memory is accounted from the packages' manifests and the engines' KV pools; the test checks the
accounting against the budget and the process's resident set against the same budget.
"""

from __future__ import annotations

import threading
import time
from dataclasses import replace
from pathlib import Path

import pytest

from edge_os.runtime.request import Finished, FinishReason, GenerationRequest, Refused, SamplingParams, TextDelta
from edge_os.scheduler.catalog import Catalog, package_entry
from edge_os.scheduler.config import SchedulerConfig
from edge_os.scheduler.loop import Scheduler
from edge_os.scheduler.probes import MemoryProbe, PowerProbe, ThermalProbe
from tests.simulated_sysfs import SimulatedDevice

CONTEXT, BATCH = 256, 4


def rss_bytes() -> int:
    pages = int(Path("/proc/self/statm").read_text().split()[1])
    import resource

    return pages * resource.getpagesize()


@pytest.fixture(scope="module")
def packages(tiny_package_factory):
    a, b = tiny_package_factory("q4f32", seed=0), tiny_package_factory("q4f32", seed=1)
    return a, b


def catalog_of(paths, engines):
    """Entries for the packages; every engine loaded is also kept in ``engines`` for inspection."""
    entries = []
    for path in paths:
        entry = package_entry(path, context_tokens=CONTEXT, max_batch=BATCH)

        def load(threads, entry=entry):
            engines.append(entry.load(threads))
            return engines[-1]

        entries.append(replace(entry, load=load))
    return Catalog(entries)


def published_reservation(scheduler, none: bool = True, timeout: float = 30) -> int:
    """The first model's reserved KV tokens once the status shows none (``none``) or some (the
    loop publishes its status at the end of the pass that sent the events), or at the timeout."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        reserved = scheduler.status()["models"][0].get("kv_reserved_tokens", 0)
        if (reserved == 0) == none:
            break
        time.sleep(0.01)
    return reserved


def make_scheduler(tmp_path, catalog, budget):
    device = SimulatedDevice(tmp_path / "dev")  # a cool device: the governor stays out of the way
    config = SchedulerConfig(budget_bytes=budget, pooled_memory=True, threads=1, template_allowance_tokens=32)
    return Scheduler(catalog, config, MemoryProbe(), ThermalProbe(device.thermal_dir), PowerProbe(device.power_dir))


def test_two_real_models_concurrent_requests_within_budget(tmp_path, packages):
    engines = []
    catalog = catalog_of(packages, engines)
    a, b = (entry for entry in catalog)
    assert a.name != b.name
    budget = a.info.resident_bytes + b.info.resident_bytes + 4096
    # Warm-up: TVM's runtime, allocator arenas and thread pool are paid once per process, not per
    # model; measure the budget against what loading and serving adds after that.
    warm = catalog_of(packages[:1], [])
    warm_engine = next(iter(warm)).load(1)
    list(warm_engine.generate(GenerationRequest(prompt="warm", max_tokens=4)))
    warm_engine.close()
    baseline = rss_bytes()
    peak_rss = [baseline]

    scheduler = make_scheduler(tmp_path, catalog, budget)
    results: dict[int, list] = {}

    def client(i: int) -> None:
        request = GenerationRequest(prompt=f"request {i}", model=(a.name, b.name)[i % 2], max_tokens=24,
                                    ignore_eos=True, sampling=SamplingParams(temperature=0.7, seed=i))
        events = []
        for event in scheduler.submit(request).events(timeout=120):
            events.append(event)
            peak_rss[0] = max(peak_rss[0], rss_bytes())
        results[i] = events

    with scheduler.start():
        threads = [threading.Thread(target=client, args=(i,)) for i in range(12)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        status = scheduler.status()

    for i, events in results.items():
        end = events[-1]
        assert isinstance(end, (Finished, Refused)), (i, end)
        if isinstance(end, Finished):
            assert end.finish_reason == FinishReason.LENGTH and end.usage.completion_tokens == 24
            assert end.text == "".join(e.text for e in events if isinstance(e, TextDelta))
    assert sum(isinstance(r[-1], Finished) for r in results.values()) == 12
    assert scheduler.loads == 2 and scheduler.evictions == 0  # both fit: both stayed loaded
    mem = status["memory"]
    assert mem["peak_accounted_bytes"] <= mem["budget_bytes"] == budget
    growth = peak_rss[0] - baseline
    print(f"\nbudget {budget} B, peak accounted {mem['peak_accounted_bytes']} B, RSS growth {growth} B")
    assert growth <= budget


def test_pool_matches_the_engine_and_cancel_frees_pages_at_once(tmp_path, packages):
    engines = []
    catalog = catalog_of(packages[:1], engines)
    entry = next(iter(catalog))
    scheduler = make_scheduler(tmp_path, catalog, budget=entry.info.resident_bytes)
    with scheduler.start():
        handle = scheduler.submit(GenerationRequest(prompt="long", max_tokens=200, ignore_eos=True))
        stream = handle.events(timeout=120)
        first = next(e for e in stream if isinstance(e, TextDelta))
        assert first.token_ids
        engine = engines[0]
        assert published_reservation(scheduler, none=False) > 0
        handle.cancel()
        end = list(stream)[-1]
        # The loop released the sequence before it sent the event: the pages are free already.
        assert end.finish_reason == FinishReason.CANCELLED
        # (Its pages now sit in the prefix cache, evictable; freed, they fill the pool again.)
        engine.clear_prefix_cache()
        assert engine.runner.free_tokens() == entry.info.kv_pool_tokens
        assert published_reservation(scheduler) == 0


def test_a_third_model_evicts_the_lru_idle_one_and_never_fit_is_refused(tmp_path, tiny_package_factory, packages):
    engines = []
    third = tiny_package_factory("q4f32", seed=2)
    catalog = catalog_of((*packages, third), engines)
    a, b, c = (entry for entry in catalog)
    # Room for any two of the three, never for all three. The compiled libraries differ by a few
    # KiB from pack to pack, so the budget is not built from the first two alone.
    residents = [entry.info.resident_bytes for entry in (a, b, c)]
    scheduler = make_scheduler(tmp_path, catalog, budget=sum(residents) - min(residents) + 4096)
    with scheduler.start():
        for name in (a.name, b.name, c.name):
            events = list(scheduler.submit(GenerationRequest(prompt="x", model=name, max_tokens=2)).events(120))
            assert isinstance(events[-1], Finished)
        loaded = {m["name"] for m in scheduler.status()["models"] if m["loaded"]}
        assert loaded == {b.name, c.name} and scheduler.evictions == 1
        too_long = GenerationRequest(prompt="x" * 10_000, model=c.name, max_tokens=2)
        end = list(scheduler.submit(too_long).events(120))[-1]
        assert isinstance(end, Refused) and end.code == "invalid_request"


def test_serve_options_pin_a_real_package(tmp_path, packages):
    from edge_os.scheduler.service import ServeOptions, build_scheduler

    device = SimulatedDevice(tmp_path / "dev")
    name = package_entry(packages[0]).name
    options = ServeOptions(models=packages, memory_budget="64M", pin=(name,), context=CONTEXT,
                           thermal_root=device.thermal_dir, power_root=device.power_dir)
    scheduler = build_scheduler(options)
    scheduler.tick()  # the first pass loads pinned models
    rows = {m["name"]: m for m in scheduler.status()["models"]}
    assert rows[name]["loaded"] and rows[name]["pinned"] and rows[name]["keep_alive_s"] is None
    assert not [m for m in rows.values() if m["loaded"] and not m["pinned"]]
    scheduler.close()


def test_kept_prefixes_are_counted_once_and_give_way_to_reserved_requests(tmp_path, packages):
    """The prefix cache lives inside the model's KV pool: it adds nothing to what is accounted, and
    requests whose reservations fill the whole pool still all run (kept pages are evicted)."""
    engines = []
    catalog = catalog_of(packages[:1], engines)
    entry = next(iter(catalog))
    scheduler = make_scheduler(tmp_path, catalog, budget=entry.info.resident_bytes)
    greedy = SamplingParams(temperature=0)
    with scheduler.start():
        for word in ("north", "south", "east"):
            request = GenerationRequest(prompt="The hub reads every sensor. " + word, raw=True, max_tokens=40,
                                        ignore_eos=True, sampling=greedy)
            assert isinstance(list(scheduler.submit(request).events(120))[-1], Finished)
        engine = engines[0]
        assert engine.prefix_cache.hits == 2 and len(engine.prefix_cache) >= 1
        assert published_reservation(scheduler) == 0
        status = scheduler.status()
        assert status["memory"]["accounted_bytes"] == entry.info.resident_bytes  # the cache adds nothing
        # Four requests reserving 80 tokens each: 320 of the pool's 336, with pages still kept.
        handles = [scheduler.submit(GenerationRequest(prompt=f"{i} the hub.", raw=True, max_tokens=38,
                                                      ignore_eos=True, sampling=greedy)) for i in range(BATCH)]
        ends = [list(h.events(120))[-1] for h in handles]
        assert all(isinstance(e, Finished) and e.usage.completion_tokens == 38 for e in ends), ends
        assert scheduler.status()["memory"]["peak_accounted_bytes"] <= entry.info.resident_bytes
