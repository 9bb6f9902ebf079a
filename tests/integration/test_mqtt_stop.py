"""Stopping the bridge while a worker is stuck in a request the scheduler does not let go of.

``MqttBridge.stop`` waits a bounded time for its workers; one that outlives the wait (a scheduler
that ignores the cancel) used to find the state file closed under it when its request finally
ended, and lose the answer to "Cannot operate on a closed database". The file now stays open until
the last late worker is done, and the log says so.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from contextlib import closing
from pathlib import Path

from edge_os.runtime.request import Finished, FinishReason, GenerationRequest, Timings, Usage
from edge_os.scheduler.handle import Handle
from tests.integration.mqtt_harness import Requester
from tests.waiting import wait_until

REQ = "edge-os/dev1/req"


class DeafScheduler:
    """Answers each request only when ``release`` is set, and ignores cancels (a stuck engine)."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.submitted = threading.Event()

    def submit(self, request: GenerationRequest) -> Handle:
        handle = Handle(request.request_id, lambda _rid: None)  # cancel does nothing

        def answer() -> None:
            self.release.wait(30)
            handle.put(Finished("late answer", (), FinishReason.STOP, Usage(1, 2), Timings(0.0, 0.0, 0.0)))

        threading.Thread(target=answer, daemon=True).start()
        self.submitted.set()
        return handle

    def status(self) -> dict:
        return {"models": [{"name": "deaf", "state": "loaded"}], "governor": "normal", "queue": 0}


def test_stop_keeps_the_state_file_open_for_a_worker_that_outlives_it(start_bridge, requester: Requester,
                                                                        tmp_path: Path, caplog) -> None:
    scheduler = DeafScheduler()
    bridge = start_bridge(scheduler)
    requester.ask({"prompt": "hello there", "max_tokens": 8}, b"late1", topic=REQ)
    assert scheduler.submitted.wait(10), "the request never reached the scheduler"
    workers = [t for t in threading.enumerate() if t.name.startswith("mqtt-worker-")]
    caplog.set_level(logging.INFO, logger="edge_os.mqtt")

    bridge.stop(timeout=0.2)  # the worker is still waiting for its request
    assert any("still running" in r.getMessage() for r in caplog.records), "stop did not say it left a worker"

    scheduler.release.set()  # the stuck request ends after all
    for worker in workers:
        worker.join(10)
        assert not worker.is_alive()
    wait_until(lambda: any("closed" in r.getMessage() and "state file" in r.getMessage() for r in caplog.records),
               10, what="the state file closed after the late worker")
    problems = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert not problems, [r.getMessage() for r in problems]
    with closing(sqlite3.connect(tmp_path / "bridge-state" / "bridge.sqlite3")) as db:
        [(state, answer)] = db.execute("SELECT state, answer FROM requests").fetchall()
    assert state == "answered" and b"late answer" in answer
