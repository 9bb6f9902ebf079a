"""The cloud worker forgets what it answered, as the device does: answers after the answer
retention, keys after the deduplication time (it used to keep every request for ever)."""

from __future__ import annotations

import sqlite3
from contextlib import closing
from pathlib import Path

from edge_os.mqtt.cloud_worker import CloudWorker
from edge_os.mqtt.config import BrokerConfig, WorkerConfig
from edge_os.mqtt.topics import cloud_request_topic
from tests.integration.conftest import FAST_BACKOFF
from tests.integration.echo_scheduler import EchoScheduler, expected_answer
from tests.integration.mqtt_harness import Mosquitto, Requester
from tests.waiting import wait_until


def _rows(path: Path) -> list[tuple]:
    with closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)) as db:
        return db.execute("SELECT key, answer IS NOT NULL FROM requests").fetchall()


def test_the_cloud_worker_prunes_its_request_log(mosquitto: Mosquitto, requester: Requester, tmp_path: Path) -> None:
    config = WorkerConfig(BrokerConfig.from_url(mosquitto.url), worker_id="prune-worker",
                          state_dir=tmp_path / "worker", dedup_ttl_s=2.0, answer_retention_s=0.5,
                          prune_interval_s=0.1, backoff=FAST_BACKOFF)
    with CloudWorker(EchoScheduler(), config) as worker:
        assert worker.wait_connected(10)
        requester.ask({"prompt": "one two", "max_tokens": 8}, b"c1", topic=cloud_request_topic())
        assert requester.final(b"c1")["text"] == expected_answer("one two")
        # First the answer goes (the key stays, so a copy is still not run again), then the key.
        wait_until(lambda: [answered for _key, answered in _rows(config.state_path)] == [0], 10,
                   what="the answer forgotten after the retention")
        wait_until(lambda: _rows(config.state_path) == [], 10, what="the key forgotten after the dedup time")
