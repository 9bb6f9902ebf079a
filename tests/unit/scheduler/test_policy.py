"""Table tests of the memory policy (pure functions, no scheduler)."""

import pytest

from edge_os.runtime.request import GenerationRequest
from edge_os.scheduler.policy import (
    Admit,
    MemoryState,
    ModelView,
    Refuse,
    Wait,
    keep_alive_expired,
    lru_victims,
    plan_memory,
    pressure_victims,
    request_kv_tokens,
    round_to_pages,
)
from edge_os.scheduler.probes import MemoryReading

G = 1 << 30
M = 1 << 20


def model(name, resident, kv=0, active=0, pinned=False, last_used=0.0, keep_alive_s=300.0):
    return ModelView(name, resident, kv, active, pinned, last_used, keep_alive_s)


def state(budget, models=(), device=None, unbacked=0):
    return MemoryState(budget=budget, accounted=sum(m.bytes for m in models), device=device, unbacked=unbacked)


@pytest.mark.parametrize(
    "tokens, pages", [(0, 0), (1, 16), (16, 16), (17, 32), (1000, 1008)]
)
def test_kv_is_counted_in_16_token_pages(tokens, pages):
    assert round_to_pages(tokens) == pages


def test_request_reservation_is_the_worst_case_capped_at_the_context():
    short = GenerationRequest(prompt="héllo", max_tokens=100)  # 6 UTF-8 bytes
    assert request_kv_tokens(short, 2048, template_allowance=10) == round_to_pages(6 + 10 + 100)
    chat = GenerationRequest(messages=({"role": "user", "content": "ab"}, {"role": "user", "content": "cd"}))
    assert request_kv_tokens(chat, 2048, 0) == round_to_pages(4 + 256)
    huge = GenerationRequest(prompt="x", max_tokens=100_000)
    assert request_kv_tokens(huge, 1000, 0) == 1008


# (case, request bytes, model bytes, loaded, budget, others, expected decision, expected evictions)
TABLE = [
    ("fits in an empty budget", 100 * M, 1 * G, False, 4 * G, [], Admit, ()),
    ("larger than the budget: refused at once, nothing evicted",
     100 * M, 5 * G, False, 4 * G, [model("a", 1 * G, last_used=1)], Refuse, ()),
    ("two models that fit together both stay loaded",
     100 * M, 1 * G, False, 4 * G, [model("a", 2 * G, last_used=1)], Admit, ()),
    ("a third evicts the least recently used idle one",
     100 * M, 1500 * M, False, 4 * G,
     [model("old", 1 * G, last_used=1), model("new", 1 * G, last_used=5), model("mid", 1 * G, last_used=3)],
     Admit, ("old",)),
    ("evicts as many LRU idle models as it needs, oldest first",
     0, 3 * G, False, 4 * G,
     [model("new", 1 * G, last_used=5), model("old", 1 * G, last_used=1), model("mid", 1 * G, last_used=3)],
     Admit, ("old", "mid")),
    ("a busy model is never evicted: wait for it to drain",
     0, 2 * G, False, 4 * G,
     [model("busy", 3 * G, kv=10 * M, active=1, last_used=0)], Wait, ()),
    ("not enough even after evicting every idle model: evict nothing now",
     0, 3 * G, False, 4 * G,
     [model("idle", 1 * G, last_used=0), model("busy", 2 * G, active=2, last_used=9)], Wait, ()),
    ("a pinned model is never evicted",
     0, 2 * G, False, 4 * G, [model("pin", 3 * G, pinned=True, last_used=0)], Refuse, ()),
    ("pinned bytes lower the ceiling: what can never fit is refused",
     100 * M, 2 * G, False, 4 * G, [model("pin", 2 * G, pinned=True)], Refuse, ()),
    ("a loaded model only needs room for the request's KV pages",
     200 * M, 3 * G, True, 4 * G, [model("other", 700 * M, last_used=0)], Admit, ()),
    ("KV that no longer fits next to the loaded models evicts an idle one",
     500 * M, 3 * G, True, 4 * G, [model("other", 700 * M, last_used=0)], Admit, ("other",)),
]


@pytest.mark.parametrize("case, req, size, loaded, budget, others, kind, evict", TABLE, ids=[t[0] for t in TABLE])
def test_plan_memory_table(case, req, size, loaded, budget, others, kind, evict):
    own = [model("me", size)] if loaded else []
    plan = plan_memory("me", req, size, loaded, state(budget, others + own), others)
    assert isinstance(plan, kind), plan
    if kind is Admit:
        assert plan.evict == evict
        freed = sum(m.bytes for m in others if m.name in evict)
        assert req + (0 if loaded else size) <= state(budget, others + own).headroom + freed
    if kind is Refuse:
        assert plan.code == "over_memory" and "needs" in plan.reason


def test_wait_names_the_busy_models_to_drain():
    others = [model("busy-old", 2 * G, active=1, last_used=1), model("busy-new", 1 * G, active=1, last_used=2)]
    plan = plan_memory("me", 0, 2 * G, False, state(4 * G, others), others)
    assert isinstance(plan, Wait)
    assert plan.drain == ("busy-old",) and "busy-old" in plan.reason


def test_no_evict_reload_loop_for_a_model_that_never_fits():
    """ollama#18282: the never-fits check comes before any eviction, every time it is asked."""
    others = [model("a", 1 * G, last_used=1), model("b", 1 * G, last_used=2)]
    for _ in range(3):
        plan = plan_memory("huge", 0, 9 * G, False, state(8 * G, others), others)
        assert isinstance(plan, Refuse) and not hasattr(plan, "evict")


def test_alternating_models_that_do_not_fit_together_never_evict_a_busy_one():
    """Two 3 GB models in a 4 GB budget: a request for one while the other is busy waits."""
    a_busy = [model("a", 3 * G, active=1, last_used=5)]
    assert isinstance(plan_memory("b", 0, 3 * G, False, state(4 * G, a_busy), a_busy), Wait)
    a_idle = [model("a", 3 * G, active=0, last_used=5)]
    assert plan_memory("b", 0, 3 * G, False, state(4 * G, a_idle), a_idle) == Admit(evict=("a",))


GI = G
UNIFIED = [
    # (case, MemTotal, MemAvailable, budget, loaded others, need, expected)
    # 8 GB Jetson, 60 % budget = 4.8 GB. Model A (2 GB) is loaded: MemAvailable already dropped by
    # 2 GB. Counting A again against MemAvailable would refuse B (2 GB) although it fits.
    ("our own model is counted once", 8 * GI, 5 * GI, int(4.8 * GI), [model("a", 2 * GI)], 2 * GI, Admit),
    # The GPU draws from the same pool: adding a "GPU free" figure on top of RAM would admit 4 GB
    # when only 3 GB is really available.
    ("no extra GPU pool on a unified board", 8 * GI, 3 * GI, 8 * GI, [], 4 * GI, Wait),
    # Budget larger than the device (a wrong override): the device is the ceiling.
    ("ceiling is the device", 8 * GI, 7 * GI, 16 * GI, [], 9 * GI, Refuse),
]


@pytest.mark.parametrize("case, total, avail, budget, others, need, kind", UNIFIED, ids=[u[0] for u in UNIFIED])
def test_unified_memory_is_counted_once(case, total, avail, budget, others, need, kind):
    device = MemoryReading(total_bytes=total, available_bytes=avail)
    plan = plan_memory("b", 0, need, False, state(budget, others, device), others)
    assert isinstance(plan, kind), plan


def test_unbacked_reservations_are_held_back_from_memavailable():
    device = MemoryReading(total_bytes=8 * G, available_bytes=3 * G)
    assert state(8 * G, device=device).headroom == 3 * G
    assert state(8 * G, device=device, unbacked=1 * G).headroom == 2 * G


def test_the_device_reserve_is_kept_free():
    device = MemoryReading(total_bytes=8 * G, available_bytes=3 * G)
    mem = MemoryState(budget=8 * G, accounted=0, device=device, reserve=512 * M)
    assert mem.headroom == 3 * G - 512 * M
    assert mem.ceiling == 8 * G - 512 * M


def test_discrete_accelerator_ignores_host_memory():
    assert state(4 * G, device=None).headroom == 4 * G
    assert state(4 * G, device=None).ceiling == 4 * G


def test_keep_alive_and_pressure():
    models = [
        model("expired", 1 * G, last_used=0, keep_alive_s=10),
        model("busy", 1 * G, active=1, last_used=0, keep_alive_s=10),
        model("pinned", 1 * G, pinned=True, last_used=0, keep_alive_s=0),
        model("fresh", 1 * G, last_used=95, keep_alive_s=10),
    ]
    assert keep_alive_expired(models, now=100) == ("expired",)
    squeezed = MemoryReading(total_bytes=8 * G, available_bytes=0)
    assert pressure_victims(state(8 * G, models, squeezed, unbacked=1 * G), models) == ("expired",)
    assert pressure_victims(state(8 * G, models), models) == ()


def test_lru_victims_skips_busy_and_pinned():
    models = [model("busy", G, active=1), model("pin", G, pinned=True), model("idle", G, last_used=3)]
    assert lru_victims(10 * G, models) == (("idle",), G)
