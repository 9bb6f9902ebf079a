"""Periodic TFLite models in the scheduler: deadline bookkeeping and the LLM yielding between tokens.

The TFLite model is real (a keyword-spotting model from pymicro-wakeword, packed here); the LLM is
the simulated engine and time is the simulated clock, so these tests check the mechanism, not speed.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from edge_os.errors import SchedulerError
from edge_os.package.memory import MemoryFigures
from edge_os.package.tflite import pack_tflite, read_manifest
from edge_os.runtime.request import Finished, GenerationRequest, InferenceRequest, InferenceResult, Refused
from edge_os.scheduler.catalog import Catalog, ModelEntry, ModelInfo, tflite_entry
from edge_os.scheduler.config import SchedulerConfig
from edge_os.scheduler.loop import Scheduler
from edge_os.scheduler.periodic import PeriodicSpec, PeriodicTask, llm_may_step
from edge_os.scheduler.probes import MemoryProbe
from edge_os.scheduler.report import format_status
from tests.scheduler_simulation import SimClock, SimulatedEngine
from tests.simulated_sysfs import SimulatedDevice
from tests.tflite_models import keyword_spotting_model

M = 1 << 20


@pytest.fixture(scope="module")
def kws(tmp_path_factory):
    return pack_tflite(keyword_spotting_model(), tmp_path_factory.mktemp("kws") / "kws", name="kws")


def spec(period=0.02, deadline=None, model="kws", source=lambda: None):
    return PeriodicSpec(model, period, source, deadline_s=deadline)


def test_a_release_more_than_a_period_late_is_skipped_and_counted_missed():
    task = PeriodicTask(spec(), next_release=1.0)
    assert task.take_release(1.005) == 1.0 and task.next_release == pytest.approx(1.02)
    assert task.record(1.0, 1.005, 1.006) and task.misses == 0
    assert task.take_release(1.075) == pytest.approx(1.06)  # releases 1.02 and 1.04 never ran
    assert task.skipped == 2 and task.misses == 2
    assert not task.record(1.06, 1.075, 1.09)  # finished after 1.06 + 0.02
    assert task.misses == 3 and task.status()["miss_pct"] == pytest.approx(100 * 3 / 4)


def test_an_llm_step_that_would_push_a_release_past_its_deadline_waits():
    task = PeriodicTask(spec(period=0.02), next_release=1.02)
    task.run_estimate_s = 0.001
    assert llm_may_step(1.0, 0.010, [task])  # ends at 1.01, long before the release's latest start
    assert llm_may_step(1.005, 0.034, [task])  # ends 1.039 = 1.02 + 0.02 - 0.001, the latest start
    assert not llm_may_step(1.005, 0.036, [task])  # would start the release too late: the LLM yields
    assert not llm_may_step(1.02, 0.001, [task])  # due: the release runs first
    # A step that never fits between two releases is not starved: it runs right after one.
    assert llm_may_step(1.0, 0.5, [task])


def build(tmp_path, kws, llm_step_s, period=0.02, budget=512 * M, extra=(), deadline=None, clock=None, threads=1,
          on_output=None):
    device = SimulatedDevice(tmp_path, mem_total=16 << 30, mem_available=12 << 30)
    sim = clock is None
    clock = SimClock() if sim else clock
    engines = []

    def load_llm(threads):
        engines.append(SimulatedEngine("llm", MemoryFigures(64 * M, 1024, 8 * M), clock if sim else None,
                                       step_s=llm_step_s, per_seq_s=0.0))
        engines[-1].threads = threads
        return engines[-1]

    llm = ModelEntry(ModelInfo("llm", MemoryFigures(64 * M, 1024, 8 * M), 2048), load_llm)
    kws_entry = tflite_entry(kws, pinned=True, keep_alive_s=math.inf)
    frames = read_manifest(kws).inputs[0]
    seen = []

    def source():
        return np.ones(frames.shape, frames.dtype)


    def sink(outputs):
        seen.append(outputs)
        if on_output is not None:
            on_output(outputs)

    periodic = (PeriodicSpec("kws", period, source, sink=sink, deadline_s=deadline),)
    config = SchedulerConfig(budget_bytes=budget, pooled_memory=False, threads=threads)
    sched = Scheduler(Catalog([llm, kws_entry, *extra]), config, MemoryProbe(device.meminfo_path), clock=clock,
                      periodic=periodic)
    return sched, clock, engines, seen


def drive(sched, clock, until):
    while clock.now < until:
        wake = sched.tick()
        if wake is not None and wake > clock.now:
            clock.idle(wake - clock.now)


@pytest.mark.parametrize("llm_step_s, deadline_s", [(0.005, None), (0.015, None), (0.03, None), (0.015, 0.005)])
def test_the_llm_yields_so_the_periodic_model_meets_every_deadline(tmp_path, kws, llm_step_s, deadline_s):
    sched, clock, engines, seen = build(tmp_path, kws, llm_step_s, deadline=deadline_s)
    handle = sched.submit(GenerationRequest(prompt="go", max_tokens=10_000, ignore_eos=True))
    drive(sched, clock, clock.now + 2.0)
    status = sched.status()
    (p,) = status["periodic"]
    assert p["runs"] >= 99 and p["misses"] == 0, p  # 2 s / 20 ms
    assert len(seen) == p["runs"] and all(set(out) for out in seen)  # the sink got every output
    decoded = sum(engines[0].steps)
    assert decoded > 0.5 * 2.0 / llm_step_s  # the LLM kept decoding between releases
    if deadline_s is not None:  # a deadline shorter than a step: steps right before a release must wait
        assert sched.yields > 0
    rows = {m["name"]: m for m in status["models"]}
    assert rows["kws"]["kind"] == "tflite" and rows["llm"]["kind"] == "llm"
    assert status["memory"]["accounted_bytes"] <= status["memory"]["budget_bytes"]
    table = format_status(status).splitlines()
    assert next(line for line in table if line.startswith("kws")).split()[:5] == ["kws", "v1", "(pinned)", "tflite",
                                                                                  "yes"]
    assert next(line for line in table if line.startswith("llm")).split()[:4] == ["llm", "llm", "yes", "1"]
    assert f"{p['runs']} runs, 0 missed deadlines" in "\n".join(table)
    handle.cancel()


def test_an_llm_step_longer_than_the_period_is_not_starved_and_misses_are_counted(tmp_path, kws):
    sched, clock, engines, _ = build(tmp_path, kws, llm_step_s=0.08)
    sched.submit(GenerationRequest(prompt="go", max_tokens=10_000, ignore_eos=True))
    drive(sched, clock, clock.now + 2.0)
    (p,) = sched.status()["periodic"]
    assert sum(engines[0].steps) >= 10 and p["misses"] > 0


def test_the_tflite_arena_counts_in_the_budget_and_inference_requests_are_served(tmp_path, kws):
    sched, clock, _, _ = build(tmp_path, kws, 0.01)
    sched.tick()  # preloads the pinned periodic model
    rows = {m["name"]: m for m in sched.status()["models"]}
    m = read_manifest(kws)
    assert rows["kws"]["loaded"] and rows["kws"]["resident_bytes"] >= m.model_bytes
    assert sched.status()["memory"]["accounted_bytes"] == rows["kws"]["resident_bytes"]
    x = np.zeros(m.inputs[0].shape, m.inputs[0].dtype)
    ok = sched.submit(InferenceRequest("kws", x))
    bad = sched.submit(InferenceRequest("kws", x.astype(np.float32)))
    text = sched.submit(GenerationRequest(prompt="hi", model="kws"))
    arrays_to_llm = sched.submit(InferenceRequest("llm", x))
    sched.tick()
    (result,) = list(ok.events(timeout=1))
    assert isinstance(result, InferenceResult) and set(result.outputs) == {m.outputs[0].name}
    for handle, fragment in ((bad, "must be int8"), (text, "tflite model"), (arrays_to_llm, "llm model")):
        (refused,) = list(handle.events(timeout=1))
        assert isinstance(refused, Refused) and fragment in refused.reason, refused
    assert sched.status()["periodic"][0]["errors"] == 0  # the periodic model kept running


def test_a_tflite_model_whose_arena_does_not_fit_the_budget_is_refused_without_evicting(tmp_path, kws):
    m = read_manifest(kws)
    big = ModelEntry(ModelInfo("big", MemoryFigures(m.model_bytes, 0, 600 * M), 0, kind="tflite"),
                     lambda threads: pytest.fail("must not load"))
    sched, clock, _, _ = build(tmp_path, kws, 0.01, extra=(big,))
    sched.tick()
    handle = sched.submit(InferenceRequest("big", np.zeros(1)))
    sched.tick()
    (refused,) = list(handle.events(timeout=1))
    assert isinstance(refused, Refused) and refused.code == "over_memory"
    assert sched.status()["periodic"][0]["runs"] >= 1 and sched.evictions == 0


@pytest.mark.parametrize("model, fragment", [("nope", "not a TFLite model"), ("kws", "must be pinned")])
def test_a_periodic_model_must_be_a_pinned_tflite_model_the_scheduler_serves(tmp_path, kws, model, fragment):
    device = SimulatedDevice(tmp_path, mem_total=16 << 30, mem_available=12 << 30)
    with pytest.raises(SchedulerError, match=fragment):
        Scheduler(Catalog([tflite_entry(kws)]), SchedulerConfig(budget_bytes=512 * M),
                  MemoryProbe(device.meminfo_path), periodic=(spec(model=model),))


def test_finished_requests_still_end_with_finished(tmp_path, kws):
    sched, clock, _, _ = build(tmp_path, kws, 0.01)
    handle = sched.submit(GenerationRequest(prompt="go", max_tokens=3))
    drive(sched, clock, clock.now + 0.5)
    events = list(handle.events(timeout=1))
    assert isinstance(events[-1], Finished) and len(events[-1].token_ids) == 3


@pytest.mark.parametrize("threads, llm_threads", [(4, 3), (2, 2)])
def test_once_started_periodic_models_run_on_their_own_thread_and_partition_the_cores(tmp_path, kws, threads,
                                                                                      llm_threads):
    import threading
    import time

    threads_seen = set()
    sched, _, engines, seen = build(tmp_path, kws, 0.0, clock=time.monotonic, threads=threads,
                                    on_output=lambda out: threads_seen.add(threading.current_thread().name))
    with sched.start():
        handle = sched.submit(GenerationRequest(prompt="go", max_tokens=10_000, ignore_eos=True))
        deadline = time.monotonic() + 30
        while (len(seen) < 10 or not engines or sum(engines[0].steps) < 10) and time.monotonic() < deadline:
            time.sleep(0.01)
        assert len(seen) >= 10 and sum(engines[0].steps) >= 10
        handle.cancel()
    assert threads_seen == {"edge-os-periodic"}
    assert engines[0].threads == llm_threads  # from 4 threads on, one is kept for the periodic model
