"""Kill -9 the broker five times while 200 requests are in flight: none lost, none run twice.

The requester behaves as the protocol asks of clients (docs/mqtt.md): a persistent session, and
a retry with the same correlation data when no answer came within a while. The retry matters
only when the broker acknowledged a message and was killed before saving it; the bridge answers
a retried request from its record, without running it again.
"""

from __future__ import annotations

import time

from edge_os.mqtt.dedup import request_key
from tests.integration.echo_scheduler import EchoScheduler, expected_answer
from tests.integration.mqtt_harness import Mosquitto, Requester
from tests.waiting import wait_until

N_REQUESTS = 200
N_KILLS = 5
RETRY_AFTER_S = 4.0


def runs_of(scheduler: EchoScheduler, requester: Requester, corr: bytes) -> int:
    """How often the scheduler ran the request with this correlation data (0: it never arrived)."""
    return scheduler.submissions.get(request_key(requester.response_topic, corr), 0)


def test_200_requests_survive_five_broker_kills(mosquitto: Mosquitto, start_bridge, record_property):
    scheduler = EchoScheduler(token_delay_s=0.02)
    bridge = start_bridge(scheduler, concurrency=8)
    requester = Requester(mosquitto.port, "fleet-hub")
    prompts = {
        f"req-{i:03d}".encode(): f"sensor {i} reads {i * 7 % 31} degrees near pump {i % 5}" for i in range(N_REQUESTS)
    }

    started = time.monotonic()
    sent_at: dict[bytes, float] = {}
    retries = 0
    acked_then_lost: set[bytes] = set()  # the broker acknowledged them, then died before saving
    # The requests go out in N_KILLS + 1 batches; the broker is killed once the bridge has begun
    # running each of the first N_KILLS batches, so every kill lands with requests in flight.
    corrs = list(prompts)
    batch = -(-N_REQUESTS // (N_KILLS + 1))
    for first in range(0, N_REQUESTS, batch):
        for corr in corrs[first : first + batch]:
            requester.ask({"prompt": prompts[corr], "max_tokens": 32}, corr, topic="edge-os/dev1/req")
            sent_at[corr] = time.monotonic()
        if mosquitto.starts > N_KILLS:
            continue
        wait_until(lambda sent=first: len(scheduler.submissions) > sent, 30, what="the bridge running the batch")
        mosquitto.kill()
        wait_until(lambda: not bridge.stats()["connected"], 10, what="the bridge seeing the broker gone")
        connects = bridge.stats()["connects"]
        mosquitto.start()
        wait_until(lambda before=connects: bridge.stats()["connects"] > before, 30, what="the bridge reconnecting")

    deadline = time.monotonic() + 90
    missing = set(prompts)
    while missing and time.monotonic() < deadline:
        time.sleep(0.1)
        missing = {c for c in prompts if not requester.answers(c, "final")}
        for corr in missing:
            if time.monotonic() - sent_at[corr] > RETRY_AFTER_S:
                if corr in requester.acked and runs_of(scheduler, requester, corr) == 0:
                    acked_then_lost.add(corr)
                requester.ask({"prompt": prompts[corr], "max_tokens": 32}, corr, topic="edge-os/dev1/req")
                sent_at[corr] = time.monotonic()
                retries += 1
    elapsed = time.monotonic() - started
    # Copies still in the bridge's outbox would arrive late; count them too.
    wait_until(lambda: bridge.stats()["outbox"] == 0, 30, what="the bridge's outbox to drain")

    stats = bridge.stats()
    finals = {c: requester.answers(c, "final") for c in prompts}
    figures = {
        "requests": N_REQUESTS,
        "broker_kills": N_KILLS,
        "seconds_to_last_answer": round(elapsed, 2),
        "bridge_connects": stats["connects"],
        "request_copies_received": stats["requests"]["received"],
        "broker_redeliveries_dup_flag": stats["requests"]["redelivered"],
        "duplicates_suppressed": stats["requests"]["duplicates_suppressed"],
        "client_retries": retries,
        "acked_by_broker_then_lost": len(acked_then_lost),
        "answers_resent_from_record": stats["answers_resent"],
        "outbox_publishes": stats["sent"],
        "outbox_pubacks": stats["delivered"],
        "final_copies_at_requester": sum(len(f) for f in finals.values()),
        "scheduler_runs": sum(scheduler.submissions.values()),
    }
    print("\nbroker-restart figures:", figures)
    for name, value in figures.items():
        record_property(name, value)
    requester.close()

    assert not missing, f"{len(missing)} request(s) never answered: {sorted(missing)[:5]}"
    assert mosquitto.starts == 1 + N_KILLS
    for corr, prompt in prompts.items():
        texts = {f["text"] for f in finals[corr]}
        assert texts == {expected_answer(prompt, 32)}, corr  # copies of one answer, never two answers
        assert all(f["served_by"] == "local" for f in finals[corr])
    assert len(scheduler.submissions) == N_REQUESTS
    assert max(scheduler.submissions.values()) == 1, "a request ran twice"
