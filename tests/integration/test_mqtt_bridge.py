"""The bridge on a real mosquitto: answers, streaming, status, telemetry, and bad requests."""

from __future__ import annotations

from edge_os.errors import InputError
from edge_os.runtime.request import Refused
from tests.integration.echo_scheduler import EchoScheduler, expected_answer
from tests.integration.mqtt_harness import Requester
from tests.waiting import wait_until

REQ = "edge-os/dev1/req"


def test_answers_a_prompt_with_one_final(start_bridge, requester: Requester):
    scheduler = EchoScheduler()
    start_bridge(scheduler)
    requester.ask({"prompt": "what is the boiling point of water", "max_tokens": 64}, b"q1", topic=REQ)
    answer = requester.final(b"q1")
    assert answer["type"] == "final"
    assert answer["text"] == expected_answer("what is the boiling point of water")
    assert answer["served_by"] == "local"
    assert answer["finish_reason"] == "stop"
    assert answer["usage"] == {"prompt_tokens": 7, "completion_tokens": 8}
    assert "reason" not in answer


def test_streams_deltas_in_order_then_final(start_bridge, requester: Requester):
    start_bridge(EchoScheduler())
    requester.ask({"messages": [{"role": "user", "content": "one two three"}], "stream": True}, b"s1", topic=REQ)
    final = requester.final(b"s1")
    assert final["text"] == expected_answer("one two three")
    # Deltas are progress, published directly; the final goes through the outbox. On a loaded
    # machine the last delta may land just after the final, so wait for the whole text.
    wait_until(lambda: "".join(d["text"] for d in requester.answers(b"s1", "delta")) == final["text"], 5,
               what="every delta")
    deltas = requester.answers(b"s1", "delta")
    assert [d["seq"] for d in deltas] == list(range(len(deltas)))


def test_broadcast_topic_and_max_tokens(start_bridge, requester: Requester):
    start_bridge(EchoScheduler())
    requester.ask({"prompt": "a b c d e f", "max_tokens": 3}, b"b1", topic="edge-os/all/req")
    answer = requester.final(b"b1")
    assert answer["text"] == expected_answer("a b c d e f", 3)
    assert answer["finish_reason"] == "length"


def test_status_is_retained_and_goes_offline_on_stop(start_bridge, mosquitto):
    bridge = start_bridge(EchoScheduler())
    watcher = Requester(mosquitto.port, "watcher", subscribe=("edge-os/dev1/status",))
    try:
        wait_until(lambda: watcher.on_topic("edge-os/dev1/status"), 5, what="retained status")
        assert watcher.on_topic("edge-os/dev1/status")[-1]["state"] == "online"
        bridge.stop()
        wait_until(lambda: watcher.on_topic("edge-os/dev1/status")[-1]["state"] == "offline", 5, what="offline")
    finally:
        watcher.close()


def test_last_will_says_offline_when_the_bridge_dies(start_bridge, mosquitto):
    """The broker publishes the will when the bridge's connection drops without DISCONNECT."""
    bridge = start_bridge(EchoScheduler())
    watcher = Requester(mosquitto.port, "watcher", subscribe=("edge-os/dev1/status",))
    try:
        wait_until(lambda: watcher.on_topic("edge-os/dev1/status"), 5, what="retained status")
        bridge._connection._client.socket().close()  # the network vanishes under the bridge
        wait_until(
            lambda: any(s["state"] == "offline" for s in watcher.on_topic("edge-os/dev1/status")), 10, what="the will"
        )
        wait_until(lambda: watcher.on_topic("edge-os/dev1/status")[-1]["state"] == "online", 10, what="back online")
    finally:
        watcher.close()


def test_telemetry_carries_the_scheduler_status(start_bridge, mosquitto):
    watcher = Requester(mosquitto.port, "watcher", subscribe=("edge-os/dev1/telemetry",))
    try:
        start_bridge(EchoScheduler(), telemetry_interval_s=0.2)
        wait_until(lambda: len(watcher.on_topic("edge-os/dev1/telemetry")) >= 2, 10, what="two telemetry reports")
        report = watcher.on_topic("edge-os/dev1/telemetry")[-1]
        assert report["device_id"] == "dev1"
        assert report["scheduler"]["governor"] == "normal"
        assert report["scheduler"]["temperatures"] == {"cpu": 41.5}
        assert report["bridge"]["connected"] is True
    finally:
        watcher.close()


def test_bad_requests_get_errors_and_the_bridge_keeps_serving(start_bridge, requester: Requester):
    scheduler = EchoScheduler()
    bridge = start_bridge(scheduler, models=("smollm2-135m",), max_payload_bytes=1000)
    requester.ask(b"{not json", b"e1", topic=REQ)
    requester.ask({"prompt": "hi", "model": "gpt-17"}, b"e2", topic=REQ)
    requester.ask({"prompt": "x" * 2000}, b"e3", topic=REQ)
    requester.ask({"prompt": "hi", "temperature": -1}, b"e4", topic=REQ)
    requester.ask({"prompt": "hi", "max_token": 5}, b"e5", topic=REQ)
    requester.ask({"prompt": "hi"}, None, topic=REQ)  # no correlation data
    requester.ask({"prompt": "nobody listens"}, b"e7", topic=REQ, response_topic=None)
    codes = {c: requester.final(c)["code"] for c in (b"e1", b"e2", b"e3", b"e4", b"e5", None)}
    assert codes == {
        b"e1": "invalid_json",
        b"e2": "unknown_model",
        b"e3": "payload_too_large",
        b"e4": "invalid_request",
        b"e5": "invalid_request",
        None: "missing_correlation_data",
    }
    requester.ask({"prompt": "still here", "model": "smollm2-135m"}, b"ok", topic=REQ)
    assert requester.final(b"ok")["text"] == expected_answer("still here")
    wait_until(lambda: bridge.stats()["requests"]["dropped"] == 1, 5, what="the logged drop")
    assert scheduler.prompts == ["still here"]  # nothing invalid reached the scheduler


def test_expired_request_never_runs(start_bridge, requester: Requester):
    """A request whose message expiry passes while it waits behind another gets ``expired``."""
    scheduler = EchoScheduler(token_delay_s=0.5, one_at_a_time=True)
    start_bridge(scheduler, concurrency=1)
    requester.ask({"prompt": "slow one two three four"}, b"slow", topic=REQ)
    requester.ask({"prompt": "impatient"}, b"late", topic=REQ, expiry_s=1)
    late = requester.final(b"late", timeout=15)
    assert late["type"] == "error" and late["code"] == "expired"
    assert requester.final(b"slow", timeout=15)["type"] == "final"
    assert scheduler.prompts == ["slow one two three four"]


def test_a_repeated_request_is_answered_again_but_runs_once(start_bridge, requester: Requester):
    scheduler = EchoScheduler()
    bridge = start_bridge(scheduler)
    requester.ask({"prompt": "once only"}, b"r1", topic=REQ)
    first = requester.final(b"r1")
    requester.ask({"prompt": "once only"}, b"r1", topic=REQ)  # the requester retries
    wait_until(lambda: len(requester.answers(b"r1", "final")) == 2, 5, what="the answer again")
    assert requester.answers(b"r1", "final")[1] == first
    assert sum(scheduler.submissions.values()) == 1
    assert bridge.stats()["requests"]["duplicates_suppressed"] == 1


def test_a_retained_request_is_refused_not_replayed_at_each_start(start_bridge, requester: Requester):
    """The broker hands a retained request to every new subscriber: after the dedup record is pruned
    it would run again at each restart. It is refused and runs nothing; the bridge serves on."""
    requester.ask({"prompt": "kept forever"}, b"kept", topic=REQ, retain=True)
    wait_until(lambda: b"kept" in requester.acked, 10, what="the broker's ack of the retained request")
    scheduler = EchoScheduler()
    bridge = start_bridge(scheduler)
    error = requester.final(b"kept")
    assert (error["type"], error["code"]) == ("error", "retained_request")
    assert "retain off" in error["message"] and "\n" not in error["message"]
    requester.ask({"prompt": "live"}, b"live", topic=REQ)
    assert requester.final(b"live")["text"] == expected_answer("live")
    assert scheduler.prompts == ["live"] and bridge.stats()["requests"]["rejected"] == 1


def test_scheduler_refusal_without_fallback_is_an_error(start_bridge, requester: Requester):
    scheduler = EchoScheduler(refuse=lambda r: Refused("too_hot", "SoC at 92 C", fallback=True))
    start_bridge(scheduler, cloud_fallback=False)
    requester.ask({"prompt": "hi"}, b"h1", topic=REQ)
    answer = requester.final(b"h1")
    assert (answer["type"], answer["code"]) == ("error", "too_hot")
    assert "92 C" in answer["message"]


def test_an_input_error_from_the_scheduler_keeps_its_code(start_bridge, requester: Requester):
    class ContextLimited(EchoScheduler):
        def submit(self, request):
            if len(request.prompt or "") > 20:
                raise InputError("prompt is 30 tokens; this model's context holds 16")
            return super().submit(request)

    start_bridge(ContextLimited())
    requester.ask({"prompt": "a prompt that is far too long"}, b"long", topic=REQ)
    requester.ask({"prompt": "short"}, b"short", topic=REQ)
    answer = requester.final(b"long")
    assert (answer["type"], answer["code"]) == ("error", "invalid_request")
    assert "context" in answer["message"]
    assert requester.final(b"short")["type"] == "final"
