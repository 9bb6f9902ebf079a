"""The SQLite request log and outbox: dedup, exactly-one answer, atomicity, persistence."""

import pytest

from edge_os.mqtt.dedup import RequestLog, RequestRecord, State, request_key
from edge_os.mqtt.outbox import Kind, Outbox
from edge_os.mqtt.store import Store


@pytest.fixture
def store(tmp_path):
    s = Store(tmp_path / "state.sqlite3")
    yield s
    s.close()


def record(key="k1", state=State.ACCEPTED, deadline=None):
    return RequestRecord(key, "resp/topic", b"corr", b'{"prompt": "x"}', deadline, state)


def test_request_keys_are_scoped_by_response_topic():
    assert request_key("a/res", b"1") != request_key("b/res", b"1")
    assert request_key("a/res", b"1") == request_key("a/res", b"1")


def test_a_key_is_admitted_once_and_answered_once(store):
    log = RequestLog(store)
    assert log.admit(record()) is True
    assert log.admit(record()) is False
    assert log.mark_answered("k1", b"first") is True
    assert log.mark_answered("k1", b"second") is False
    assert log.get("k1").answer == b"first" and log.get("k1").state is State.ANSWERED
    assert log.mark_answered("unknown", b"x") is False


def test_cloud_hand_over_only_from_accepted(store):
    log = RequestLog(store)
    log.admit(record())
    assert log.mark_cloud("k1", "too_hot", "91 C", 100.0) is True
    assert log.mark_cloud("k1", "too_hot", "91 C", 100.0) is False
    r = log.get("k1")
    assert (r.state, r.fallback_code, r.fallback_reason, r.cloud_deadline) == (State.CLOUD, "too_hot", "91 C", 100.0)
    assert [x.key for x in log.in_state(State.CLOUD)] == ["k1"]


def test_expiry_uses_wall_clock_deadline():
    assert record(deadline=10.0).expired(now=10.0)
    assert not record(deadline=10.0).expired(now=9.0)
    assert not record().expired()


def test_a_failed_transaction_leaves_neither_answer_nor_outbox_row(store):
    log, outbox = RequestLog(store), Outbox(store)
    log.admit(record())
    with pytest.raises(RuntimeError):
        with store.transaction():
            log.mark_answered("k1", b"answer")
            outbox.put(Kind.ANSWER, "resp/topic", b"answer", request_key="k1")
            raise RuntimeError("power cut")
    assert log.get("k1").state is State.ACCEPTED
    assert len(outbox) == 0


def test_state_survives_reopening(tmp_path):
    store = Store(tmp_path / "s.sqlite3")
    RequestLog(store).admit(record())
    Outbox(store).put(Kind.ANSWER, "t", b"p", correlation=b"c", request_key="k1")
    store.close()
    store = Store(tmp_path / "s.sqlite3")
    assert RequestLog(store).get("k1").state is State.ACCEPTED
    [message] = Outbox(store).after(0, 10)
    assert (message.topic, message.payload, message.correlation, message.kind) == ("t", b"p", b"c", Kind.ANSWER)
    store.close()


def test_outbox_order_and_answer_lookup(store):
    outbox = Outbox(store)
    ids = [outbox.put(Kind.ANSWER, f"t{i}", b"p", request_key=f"k{i}") for i in range(5)]
    assert [m.id for m in outbox.after(0, 3)] == ids[:3]
    assert [m.id for m in outbox.after(ids[2], 10)] == ids[3:]
    assert outbox.holds_answer_for("k3")
    outbox.remove(ids[3])
    assert not outbox.holds_answer_for("k3")
    assert len(outbox) == 4


def test_telemetry_backlog_is_capped_but_answers_are_not(store):
    outbox = Outbox(store, max_telemetry=3)
    for i in range(10):
        outbox.put(Kind.TELEMETRY, "tele", str(i).encode())
        outbox.put(Kind.ANSWER, "ans", str(i).encode())
    rows = outbox.after(0, 100)
    assert [m.payload for m in rows if m.kind is Kind.TELEMETRY] == [b"7", b"8", b"9"]
    assert len([m for m in rows if m.kind is Kind.ANSWER]) == 10


def test_prune_forgets_only_old_answered_requests(store):
    log = RequestLog(store)
    log.admit(record("old"))
    log.mark_answered("old", b"a")
    log.admit(record("open"))
    assert log.prune(older_than_s=3600) == 0
    assert log.prune(older_than_s=-1) == 1
    assert log.get("old") is None and log.get("open") is not None
    assert log.counts() == {"accepted": 1, "cloud": 0, "answered": 0}


def test_answering_drops_the_prompt_and_retention_forgets_answers_before_keys(store):
    log = RequestLog(store)
    log.admit(record())
    assert log.get("k1").payload == b'{"prompt": "x"}'
    log.mark_answered("k1", b"the answer")
    assert log.get("k1").payload == b"" and log.get("k1").answer == b"the answer"
    assert log.prune(older_than_s=3600, answers_older_than_s=3600) == 0
    assert log.get("k1").answer == b"the answer"
    assert log.prune(older_than_s=3600, answers_older_than_s=0) == 0
    assert log.get("k1").answer is None and log.get("k1").state is State.ANSWERED  # the key still dedups
    assert log.prune(older_than_s=0) == 1 and log.get("k1") is None


def test_a_bad_topic_is_never_queued(store):
    from edge_os.mqtt.topics import InvalidTopic

    outbox = Outbox(store)
    for topic, response_topic in (("x/#", None), ("", None), ("$SYS/a", None), ("ok", "a/+")):
        with pytest.raises(InvalidTopic):
            outbox.put(Kind.ANSWER, topic, b"{}", response_topic=response_topic)
    assert len(outbox) == 0


def test_dead_letters_leave_the_queue_with_their_reason(store):
    outbox = Outbox(store)
    first = outbox.put(Kind.ANSWER, "resp/one", b"{}")
    second = outbox.put(Kind.ANSWER, "resp/two", b"{}")
    [message] = [m for m in outbox.after(0, 10) if m.id == first]
    outbox.dead_letter(message, "the broker refused it")
    assert [m.id for m in outbox.after(0, 10)] == [second] and outbox.dead_letters() == 1
