"""The scheduler loop on simulated engines, driven tick by tick on a simulated clock."""

import json

from edge_os.runtime.request import Finished, FinishReason, Priority, Refused, TextDelta

from .conftest import G, M, last

SMALL = (1 * G, 64 * 1024, 100 * M)  # weights, KV bytes per token, workspace


def test_a_request_streams_tokens_then_finishes(harness):
    h = harness({"a": SMALL})
    handle = h.submit(max_tokens=5)
    events = h.run_until_done([handle])[handle.request_id]
    assert [type(e) for e in events] == [TextDelta] * 5 + [Finished]
    assert last(events).text == " w0 w1 w2 w3 w4"
    assert last(events).finish_reason == FinishReason.LENGTH
    assert h.engine("a").live == set()  # released after finishing


def test_requests_of_one_model_decode_together_and_newcomers_join_between_steps(harness):
    h = harness({"a": SMALL})
    first = [h.submit(max_tokens=6) for _ in range(2)]
    h.run(3)  # both prefill, then decode together
    late = h.submit(max_tokens=3)
    h.run_until_done(first + [late])
    steps = h.engine("a").steps
    assert steps[0] == 2 and 3 in steps  # batched from the start; the newcomer joined the batch
    assert h.scheduler.loads == 1


def test_interactive_is_admitted_before_background(harness):
    # Room for one request's KV pages at a time: the order of admission is visible.
    kv = 1 * M  # per token; 2048-token reservations are 2 GB
    h = harness({"a": (1 * G, kv, 0)}, budget=3 * G + 100 * M)
    running = h.submit(max_tokens=2000)
    h.run()
    background = h.submit(max_tokens=2000, priority=Priority.BACKGROUND)
    interactive = h.submit(max_tokens=2000)
    got = h.run_until_done([running, background, interactive])
    assert all(isinstance(last(e), Finished) for e in got.values())
    ids = [running.request_id, interactive.request_id, background.request_id]
    assert h.engine("a").started == ids


def test_cancel_frees_the_pages_at_once(harness):
    h = harness({"a": SMALL})
    handle = h.submit(max_tokens=100)
    h.run(4)
    engine = h.engine("a")
    assert len(engine.live) == 1
    kv_before = h.scheduler.status()["memory"]["accounted_bytes"]
    handle.cancel()
    h.run()
    assert engine.live == set()  # released by the very next pass of the loop
    assert h.scheduler.status()["memory"]["accounted_bytes"] < kv_before
    events = h.run_until_done([handle])[handle.request_id]
    end = last(events)
    assert end.finish_reason == FinishReason.CANCELLED
    assert end.text == "".join(e.text for e in events if isinstance(e, TextDelta))


def test_cancel_a_queued_request(harness):
    h = harness({"a": (1 * G, 1 * M, 0)}, budget=3 * G)
    running = h.submit(max_tokens=1500)
    h.run()
    queued = h.submit(max_tokens=1500)
    h.run()
    assert h.scheduler.status()["queue"]["waiting"] == 1
    queued.cancel()
    h.run()
    assert h.scheduler.status()["queue"]["waiting"] == 0
    got = h.run_until_done([running, queued])
    assert last(got[queued.request_id]).finish_reason == FinishReason.CANCELLED
    assert last(got[running.request_id]).finish_reason == FinishReason.LENGTH


def test_deadlines(harness):
    h = harness({"a": (1 * G, 1 * M, 0)}, budget=3 * G)
    now = h.clock.now
    running = h.submit(max_tokens=1500, deadline=now + 0.5)
    h.run()
    never = h.submit(max_tokens=1500, deadline=now + 0.2)
    got = h.run_until_done([running, never])
    refused = last(got[never.request_id])
    assert isinstance(refused, Refused) and refused.code == "deadline" and not refused.fallback
    stopped = last(got[running.request_id])
    assert stopped.finish_reason == FinishReason.DEADLINE and 0 < stopped.usage.completion_tokens < 1500
    assert h.engine("a").live == set()
    late = h.submit(deadline=h.clock.now - 1)
    assert last(h.run_until_done([late])[late.request_id]).code == "deadline"


def test_full_queue_refuses(harness):
    h = harness({"a": (1 * G, 1 * M, 0)}, budget=3 * G, max_queue=1)
    handles = [h.submit(max_tokens=1500) for _ in range(3)]
    h.run()
    got = h.run_until_done(handles)
    codes = [getattr(last(got[x.request_id]), "code", "served") for x in handles]
    assert codes == ["served", "served", "queue_full"]  # one runs, one waits, one is too many
    assert last(got[handles[2].request_id]).fallback


def test_never_fits_is_refused_at_once_without_eviction(harness):
    h = harness({"a": SMALL, "huge": (5 * G, 1024, 0)}, budget=4 * G)
    warm = h.submit(model="a", max_tokens=2)
    h.run_until_done([warm])
    huge = h.submit(model="huge")
    h.run()
    refused = last(h.run_until_done([huge])[huge.request_id])
    assert refused.code == "over_memory" and refused.fallback and "budget" in refused.reason
    assert h.scheduler.evictions == 0 and h.scheduler.loads == 1
    assert h.scheduler.status()["models"][0]["loaded"]  # "a" is still there


def test_unknown_model_and_bad_prompt(harness):
    h = harness({"a": SMALL}, context_length=64)
    absent = h.submit(model="nope")
    too_long = h.submit(prompt="x" * 100, max_tokens=1)
    got = h.run_until_done([absent, too_long])
    assert last(got[absent.request_id]).code == "model_absent" and "it has a" in last(got[absent.request_id]).reason
    assert last(got[too_long.request_id]).code == "invalid_request"


def test_two_fit_together_a_third_evicts_the_lru_idle_one(harness):
    h = harness({"a": SMALL, "b": SMALL, "c": SMALL}, budget=2 * G + 600 * M)
    for name in ("a", "b"):
        h.run_until_done([h.submit(model=name, max_tokens=2)])
    loaded = {m["name"] for m in h.scheduler.status()["models"] if m["loaded"]}
    assert loaded == {"a", "b"}
    h.clock.idle(1.0)
    h.run_until_done([h.submit(model="b", max_tokens=2)])  # b is now the most recently used
    h.run_until_done([h.submit(model="c", max_tokens=2)])
    loaded = {m["name"] for m in h.scheduler.status()["models"] if m["loaded"]}
    assert loaded == {"b", "c"} and h.scheduler.evictions == 1
    assert h.engine("a").closed


def test_a_busy_model_is_never_evicted(harness):
    h = harness({"a": SMALL, "b": SMALL}, budget=1 * G + 400 * M)
    long = h.submit(model="a", max_tokens=50)
    h.run(2)
    other = h.submit(model="b", max_tokens=2)
    for _ in range(20):
        h.run()
        assert not h.engine("a").closed  # serving: must not be evicted
    got = h.run_until_done([long, other])
    assert all(isinstance(last(e), Finished) for e in got.values())
    assert h.engine("a").closed and h.scheduler.evictions == 1  # evicted only once it was idle


def test_no_evict_reload_loop(harness):
    """Two models that fit one at a time, requests alternating, plus one that never fits."""
    h = harness({"a": SMALL, "b": SMALL, "huge": (9 * G, 1, 0)}, budget=1 * G + 400 * M)
    handles = []
    for i in range(8):
        handles.append(h.submit(model="ab"[i % 2], max_tokens=3))
        handles.append(h.submit(model="huge", max_tokens=1))
    got = h.run_until_done(handles)
    served = [x for x in handles if isinstance(last(got[x.request_id]), Finished)]
    refused = [x for x in handles if isinstance(last(got[x.request_id]), Refused)]
    assert len(served) == 8 and len(refused) == 8
    assert all(last(got[x.request_id]).code == "over_memory" for x in refused)
    # Each load serves every queued request of its model at once: one load per model, one
    # eviction, instead of a load and an eviction per request.
    assert h.scheduler.loads == 2 and h.scheduler.evictions == 1


def test_waiting_request_is_not_starved_by_newcomers_on_the_busy_model(harness):
    h = harness({"a": SMALL, "b": SMALL}, budget=1 * G + 400 * M)
    first = h.submit(model="a", max_tokens=5)
    h.run()
    b = h.submit(model="b", max_tokens=2)
    h.run()
    newcomers = [h.submit(model="a", max_tokens=5) for _ in range(3)]
    h.run_until_done([first, b, *newcomers])
    assert h.engine("b").started == [b.request_id]
    assert h.engines["a"][0].started == [first.request_id]  # newcomers waited for b ...
    assert h.engines["a"][1].started == [x.request_id for x in newcomers]  # ... then a came back


def test_keep_alive_pin_and_preload(harness):
    h = harness({"a": SMALL, "p": SMALL, "pre": SMALL}, budget=8 * G, keep_alive_s=30.0,
                pinned=("p",), preload=("pre",))
    h.run()
    assert {m["name"] for m in h.scheduler.status()["models"] if m["loaded"]} == {"p", "pre"}
    h.run_until_done([h.submit(model="a", max_tokens=2)])
    h.clock.idle(31.0)
    h.run()
    assert {m["name"] for m in h.scheduler.status()["models"] if m["loaded"]} == {"p"}


def test_pooled_memory_counts_our_models_once(harness):
    """8 GB unified board: MemAvailable already excludes a loaded model; B must still load."""
    h = harness({"a": (2 * G, 1024, 0), "b": (2 * G, 1024, 0)}, budget=int(4.8 * G),
                mem_total=8 * G, mem_available=5 * G, pooled_memory=True, allocate=True)
    h.run_until_done([h.submit(model="a", max_tokens=2)])
    assert h.scheduler.status()["memory"]["device_available_bytes"] == 3 * G
    b = h.submit(model="b", max_tokens=2)
    assert isinstance(last(h.run_until_done([b])[b.request_id]), Finished)
    assert h.scheduler.evictions == 0
    assert {m["name"] for m in h.scheduler.status()["models"] if m["loaded"]} == {"a", "b"}


def test_other_programs_squeezing_memory_evict_idle_models(harness):
    h = harness({"a": (2 * G, 1024, 0)}, budget=6 * G, mem_total=8 * G, mem_available=5 * G,
                pooled_memory=True, allocate=True)
    h.run_until_done([h.submit(model="a", max_tokens=2)])
    h.device.set_memory(8 * G, 100 * M)  # another program took almost everything
    h.clock.idle(1.0)
    h.run()
    assert h.engine("a").closed


def test_load_failure_refuses_with_the_reason(harness):
    h = harness({"a": SMALL}, fail_load=("a",))
    handle = h.submit()
    refused = last(h.run_until_done([handle])[handle.request_id])
    assert refused.code == "model_absent" and "truncated" in refused.reason


def test_status_is_json(harness):
    h = harness({"a": SMALL})
    h.submit(max_tokens=50)
    h.run(5)
    status = json.loads(json.dumps(h.scheduler.status()))
    assert status["running"] == 1 and status["models"][0]["active"] == 1
    assert status["memory"]["accounted_bytes"] <= status["memory"]["budget_bytes"]
    assert status["governor"]["level"] == "NORMAL"
    assert status["tok_s"] > 0


def test_close_ends_everything(harness):
    h = harness({"a": (1 * G, 1 * M, 0)}, budget=3 * G)
    running, queued = h.submit(max_tokens=1500), None
    h.run()
    queued = h.submit(max_tokens=1500)
    h.run()
    h.scheduler.close()
    assert last(list(running.events(timeout=0))).finish_reason == FinishReason.CANCELLED
    assert last(list(queued.events(timeout=0))).code == "shutting_down"
    assert h.engine("a").closed


def test_an_engine_with_a_kv_pool_is_accounted_at_load_and_admits_within_it(harness):
    # Pool of 64 tokens; each request reserves 10 + 20 -> 32 tokens, so two fit at a time.
    h = harness({"a": (1 * G, 1 * M, 0)}, budget=2 * G, pool=(64, 4))
    handles = [h.submit(prompt="x" * 10, max_tokens=20) for _ in range(3)]
    h.run(2)
    status = h.scheduler.status()
    row = status["models"][0]
    assert row["resident_bytes"] == 1 * G + 64 * M  # the pool is counted when the model loads
    assert row["active"] == 2 and row["kv_reserved_tokens"] == 64 and status["queue"]["waiting"] == 1
    assert status["memory"]["accounted_bytes"] == 1 * G + 64 * M  # requests add nothing beyond it
    got = h.run_until_done(handles)
    assert all(isinstance(last(e), Finished) for e in got.values())
    assert max(h.engine("a").steps) == 2


def test_an_engine_takes_at_most_max_batch_sequences(harness):
    h = harness({"a": (1 * G, 1 * M, 0)}, budget=2 * G, pool=(1000, 1))
    handles = [h.submit(max_tokens=3) for _ in range(3)]
    h.run_until_done(handles)
    assert max(h.engine("a").steps) == 1


def test_a_pool_engine_that_can_never_fit_is_refused(harness):
    h = harness({"a": (1 * G, 1 * M, 0)}, budget=1 * G + 32 * M, pool=(64, 2))
    handle = h.submit()
    assert last(h.run_until_done([handle])[handle.request_id]).code == "over_memory"


def test_an_engine_that_fails_mid_step_is_unloaded_and_its_requests_refused(harness):
    h = harness({"a": SMALL})
    handles = [h.submit(max_tokens=50) for _ in range(2)]
    h.run(3)
    engine = h.engine("a")

    def broken(sequences):
        raise RuntimeError("kernel fault")

    engine.step = broken
    got = h.run_until_done(handles)
    for events in got.values():
        assert last(events).code == "engine_error" and "kernel fault" in last(events).reason
    assert engine.closed and not h.scheduler.status()["models"][0]["loaded"]
    again = h.submit(max_tokens=2)
    assert isinstance(last(h.run_until_done([again])[again.request_id]), Finished)  # reloads cleanly


def test_a_new_version_takes_new_requests_while_the_old_one_finishes_its_own(harness):
    from dataclasses import replace

    h = harness({"a": SMALL})
    running = h.submit(max_tokens=30)
    h.run(3)
    old_engine = h.engine("a")
    assert len(old_engine.live) == 1
    old = h.scheduler.catalog.get("a")
    h.scheduler.set_model(replace(old, info=replace(old.info, version=2)))
    queued = h.submit(max_tokens=3)
    h.run()
    rows = h.scheduler.status()["models"]
    assert [(r["version"], r["replaced"], r["loaded"]) for r in rows][-1] == (None, True, True)
    got = h.run_until_done([running, queued])
    assert last(got[running.request_id]).finish_reason == FinishReason.LENGTH  # not dropped by the switch
    assert len(last(got[running.request_id]).token_ids) == 30
    assert old_engine.started == [running.request_id]  # the old version took nothing new
    assert len(h.engines["a"]) == 2 and h.engine("a").started == [queued.request_id]
    h.run()
    assert old_engine.closed  # unloaded once its request finished
    assert [(r["version"], r["replaced"]) for r in h.scheduler.status()["models"]] == [(2, False)]


def test_removing_a_model_refuses_its_queued_requests_and_finishes_running_ones(harness):
    h = harness({"a": (1 * G, 1 * M, 0)}, budget=3 * G)
    running = h.submit(max_tokens=1500)
    h.run()
    queued = h.submit(max_tokens=1500)
    h.run()
    h.scheduler.remove_model("a")
    got = h.run_until_done([running, queued])
    assert last(got[running.request_id]).finish_reason == FinishReason.LENGTH
    assert isinstance(last(got[queued.request_id]), Refused)
    assert h.scheduler.status()["models"] == []


def test_a_throttle_that_cuts_threads_resizes_a_loaded_engine_before_its_next_step(harness):
    h = harness({"a": SMALL}, threads=4, probe_interval_s=0.0)
    handle = h.submit(max_tokens=400)
    h.run(2)
    engine = h.engine("a")
    assert engine.threads == 4 and engine.thread_changes == []
    steps = len(engine.steps)
    h.device.model.temp_c = 72.0  # SLOW_3 at the default setpoint: a quarter of the threads
    h.device.flush()
    h.run(1)
    assert engine.thread_changes == [1] and len(engine.steps) == steps + 1  # resized, then stepped
    assert h.scheduler.status()["models"][0]["threads"] == 1
    h.device.model.temp_c = 30.0  # cool: the levels step down one per probe, threads come back
    h.device.flush()
    for _ in range(20):
        wake = h.scheduler.tick()
        h.clock.idle(wake - h.clock.now)  # the duty-cycle pauses pass
    assert engine.thread_changes[-1] == 4 and h.scheduler.status()["models"][0]["threads"] == 4
    handle.cancel()
    h.run_until_done([handle])
