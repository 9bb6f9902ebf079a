"""EventStream: a scheduler handle's events reach the event loop in order, and a silent scheduler
ends the request with a timeout (the HTTP front door's request_timeout_s)."""

import asyncio
import threading

from edge_os.api.relay import EventStream
from edge_os.runtime.request import Finished, FinishReason, Refused, TextDelta, Timings, Usage
from edge_os.scheduler.handle import Handle, wakeups_held

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


class _CountingLoop(asyncio.SelectorEventLoop):
    """A real event loop that counts the wake-ups other threads ask of it."""

    wakeups = 0

    def call_soon_threadsafe(self, *args, **kwargs):
        self.wakeups += 1
        return super().call_soon_threadsafe(*args, **kwargs)


def test_a_scheduler_pass_wakes_the_loop_once_for_all_its_events():
    """4 streams' events put in one pass of the scheduler: the loop is woken once, when the pass
    ends, and every stream still reads its events in order."""
    loop = _CountingLoop()
    runner = threading.Thread(target=loop.run_forever)
    runner.start()
    try:
        handles = [Handle(f"r{i}", lambda _rid: None) for i in range(4)]

        async def open_streams() -> list:
            return [EventStream(h, 60.0, lambda _e: None) for h in handles]

        streams = asyncio.run_coroutine_threadsafe(open_streams(), loop).result(10)
        loop.wakeups = 0  # run_coroutine_threadsafe woke it too
        with wakeups_held():
            for i, handle in enumerate(handles):
                handle.put(TextDelta(str(i), (i,)))
                handle.put(DONE)
            assert loop.wakeups == 0  # held until the pass ends
        assert loop.wakeups == 1

        async def read_all() -> list:
            return [[await s.next(), await s.next()] for s in streams]

        events = asyncio.run_coroutine_threadsafe(read_all(), loop).result(10)
        assert [[e.text for e in pair] for pair in events] == [[str(i), "abc"] for i in range(4)]

        woken = loop.wakeups
        handles[0].put(TextDelta("late", (9,)))  # outside a pass: woken at once
        assert loop.wakeups == woken + 1
    finally:
        loop.call_soon_threadsafe(loop.stop)
        runner.join(10)
        loop.close()
