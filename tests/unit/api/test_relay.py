"""EventStream: a scheduler handle's events reach the event loop in order, and a silent scheduler
ends the request with a timeout (the HTTP front door's request_timeout_s)."""

import asyncio
import threading

from edge_os.api.relay import EventStream
from edge_os.runtime.request import Finished, FinishReason, Refused, TextDelta, Timings, Usage
from edge_os.scheduler.handle import Handle

DONE = Finished("abc", (1, 2, 3), FinishReason.LENGTH, Usage(1, 3), Timings(0.0, 0.0, 0.0))


def test_events_queued_before_and_put_after_arrive_in_order():
    cancelled = []
    handle = Handle("r1", cancelled.append)
    handle.put(TextDelta("a", (1,)))  # before the stream exists: queued, then forwarded

    async def read() -> list:
        seen: list = []
        stream = EventStream(handle, 60.0, seen.append)
        producer = threading.Thread(target=lambda: [handle.put(TextDelta(t, (i,))) for i, t in ((2, "b"), (3, "c"))]
                                    + [handle.put(DONE)])
        producer.start()
        events = [await stream.next() for _ in range(4)]
        producer.join()
        stream.close()  # already done: nothing to cancel
        assert seen == events
        return events

    events = asyncio.run(read())
    assert [e.text for e in events[:3]] == ["a", "b", "c"] and events[3] is DONE
    assert cancelled == []


def test_a_silent_scheduler_ends_the_request_with_a_timeout_and_cancels_it():
    cancelled = []
    handle = Handle("r2", cancelled.append)

    async def read():
        stream = EventStream(handle, 0.2, lambda _e: None)
        return await stream.next(), stream.done

    event, done = asyncio.run(read())
    assert isinstance(event, Refused) and event.code == "timeout" and done
    assert cancelled == ["r2"]


def test_a_scheduler_that_keeps_sending_is_not_timed_out_and_late_events_after_a_timeout_are_dropped():
    """The timeout counts from the last event, not from the start: events 1.2 s apart under a 2 s
    timeout run 2.4 s in all and arrive whole."""
    handle = Handle("r3", lambda _rid: None)

    def produce() -> None:
        for event in (TextDelta("a", (1,)), DONE):
            threading.Event().wait(1.2)  # the slow scheduler this test plays
            handle.put(event)

    async def read() -> list:
        stream = EventStream(handle, 2.0, lambda _e: None)
        producer = threading.Thread(target=produce)
        producer.start()
        events = [await stream.next(), await stream.next()]
        await asyncio.to_thread(producer.join)
        return events

    assert asyncio.run(read())[1] is DONE

    late = Handle("r4", lambda _rid: None)

    async def time_out_then_hear() -> bool:
        stream = EventStream(late, 0.1, lambda _e: None)
        assert (await stream.next()).code == "timeout"
        late.put(DONE)  # after the timeout: dropped, never read as a second last event
        await asyncio.sleep(0)
        return stream._queue.empty()

    assert asyncio.run(time_out_then_hear())
