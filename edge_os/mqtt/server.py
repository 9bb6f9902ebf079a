"""Serving request messages with a scheduler: intake, deduplication, and a pool of workers.

Intake runs on the network thread before the PUBACK: it validates the payload, records the
request (or its error answer) durably, and only then lets the message be acknowledged. Workers
take accepted requests in order, submit them to the scheduler, stream deltas and record the one
final answer. The device bridge and the cloud worker both serve requests this way.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from edge_os.errors import EdgeOSError
from edge_os.mqtt import schema
from edge_os.mqtt.answers import Answers
from edge_os.mqtt.connection import Inbound
from edge_os.mqtt.dedup import RequestLog, RequestRecord, State, request_key
from edge_os.mqtt.durable import outlived
from edge_os.mqtt.schema import MqttRequest, RequestRejected
from edge_os.mqtt.topics import publish_topic_problem
from edge_os.runtime.request import Finished, FinishReason, InferenceRequest, InferenceResult, Refused, TextDelta
from edge_os.scheduler.api import RequestHandle, SchedulerAPI

log = logging.getLogger(__name__)

RefusalHandler = Callable[[RequestRecord, MqttRequest, Refused], None]


@dataclass
class ServerStats:
    """Counters since start (exposed in telemetry and read by tests)."""

    received: int = 0  # request messages taken from the broker, copies included
    redelivered: int = 0  # of those, copies the broker marked as redelivered (DUP)
    duplicates_suppressed: int = 0  # copies of a known request that were not run again
    rejected: int = 0  # answered with an error at intake
    dropped: int = 0  # no usable response topic: nowhere to answer
    submitted: int = 0  # handed to the scheduler
    resumed: int = 0  # accepted before a restart and picked up again


@dataclass(frozen=True)
class Limits:
    max_payload_bytes: int
    models: tuple[str, ...]
    request_timeout_s: float


class RequestServer:
    def __init__(
        self,
        scheduler: SchedulerAPI,
        requests: RequestLog,
        answers: Answers,
        limits: Limits,
        *,
        served_by: str,
        concurrency: int,
        on_refused: RefusalHandler | None = None,
    ) -> None:
        self._scheduler = scheduler
        self._requests = requests
        self._answers = answers
        self._limits = limits
        self._served_by = served_by
        self._concurrency = concurrency
        self._on_refused = on_refused
        self._queue: queue.Queue[RequestRecord | None] = queue.Queue()
        self._running: dict[str, RequestHandle] = {}
        self._running_lock = threading.Lock()
        self._stopping = threading.Event()
        self._workers: list[threading.Thread] = []
        self.stats = ServerStats()

    @property
    def backlog(self) -> int:
        """Accepted requests not yet handed to the scheduler."""
        return self._queue.qsize()

    def start(self) -> None:
        """Resume requests accepted before the last stop, then start the workers."""
        for record in self._requests.in_state(State.ACCEPTED):
            self._queue.put(record)
            self.stats.resumed += 1
        if self.stats.resumed:
            log.info("resuming %d request(s) accepted before the last stop", self.stats.resumed)
        for i in range(self._concurrency):
            worker = threading.Thread(target=self._work, name=f"mqtt-worker-{i}", daemon=True)
            worker.start()
            self._workers.append(worker)

    def stop(self, timeout: float = 5.0) -> list[threading.Thread]:
        """Cancel running requests; they stay ``accepted`` and resume on the next start. Returns
        the workers still running after ``timeout`` (a request the scheduler has not let go of):
        they may still record an answer, so the state file must stay open until they end."""
        self._stopping.set()
        with self._running_lock:
            for handle in self._running.values():
                handle.cancel()
        for _ in self._workers:
            self._queue.put(None)
        return outlived(self._workers, timeout)

    # -- intake (network thread) --------------------------------------------------------------

    def handle(self, msg: Inbound) -> None:
        """Take one request message; returns once it is durably recorded (then it is acked)."""
        self.stats.received += 1
        self.stats.redelivered += msg.redelivered
        if not msg.response_topic:
            self.stats.dropped += 1
            log.warning("dropped a request on %s: it has no MQTT v5 response topic", msg.topic)
            return
        problem = publish_topic_problem(msg.response_topic)
        if problem is not None:  # the response topic is the only address there is: no error can be sent
            self.stats.dropped += 1
            log.warning(
                "dropped a request on %s: its response topic %.80r cannot be published to: %s",
                msg.topic, msg.response_topic, problem,
            )  # fmt: skip
            return
        if msg.retained:  # replayed at every connection: it would run again once its record is pruned
            self.stats.rejected += 1
            self._answers.unrecorded_error(msg.response_topic, msg.correlation, "retained_request",
                                           schema.RETAINED_REQUEST)
            return
        if not msg.correlation:
            self.stats.rejected += 1
            self._answers.unrecorded_error(
                msg.response_topic,
                None,
                "missing_correlation_data",
                "set MQTT v5 correlation data: it identifies the request and makes retries safe",
            )
            return
        key = request_key(msg.response_topic, msg.correlation)
        known = self._requests.get(key)
        if known is not None:
            self.stats.duplicates_suppressed += 1
            log.info("request %s seen before (%s); not run again", key, known.state.value)
            if known.state is State.ANSWERED:
                self._answers.resend(known)
            return
        deadline = None if msg.expiry_s is None else time.time() + msg.expiry_s
        record = RequestRecord(key, msg.response_topic, msg.correlation, msg.payload, deadline, State.ACCEPTED)
        try:
            schema.parse_request(
                msg.payload,
                request_id=key,
                max_bytes=self._limits.max_payload_bytes,
                models=self._limits.models,
            )
        except RequestRejected as exc:
            self.stats.rejected += 1
            self._answers.reject(record, exc.code, str(exc))
            return
        except Exception as exc:  # a validator bug must not make a poison message redelivered forever
            log.exception("validating request %s failed", key)
            self.stats.rejected += 1
            self._answers.reject(record, "internal", f"could not validate the request: {type(exc).__name__}")
            return
        if self._requests.admit(record):
            self._queue.put(record)

    # -- workers ------------------------------------------------------------------------------

    def _work(self) -> None:
        while True:
            record = self._queue.get()
            if record is None or self._stopping.is_set():
                return
            try:
                self._serve(record)
            except EdgeOSError as exc:  # e.g. the scheduler found the prompt longer than the context
                self._answers.fail(record, exc.code, str(exc))
            except Exception as exc:
                log.exception("request %s failed", record.key)
                self._answers.fail(record, "internal", f"{type(exc).__name__}: {exc}")

    def _serve(self, record: RequestRecord) -> None:
        if record.expired():
            self._answers.fail(record, "expired", "the request's message expiry passed before it could start")
            return
        deadline = None if record.deadline is None else time.monotonic() + (record.deadline - time.time())
        request = schema.parse_request(
            record.payload, request_id=record.key, deadline=deadline, max_bytes=len(record.payload)
        )
        handle = self._scheduler.submit(request.generation)
        self.stats.submitted += 1
        with self._running_lock:
            self._running[record.key] = handle
        try:
            self._relay(record, request, handle)
        except TimeoutError:
            handle.cancel()
            self._answers.fail(
                record, "timeout", f"no progress from the scheduler for {self._limits.request_timeout_s:.0f} s"
            )
        finally:
            with self._running_lock:
                self._running.pop(record.key, None)

    def _relay(self, record: RequestRecord, request: MqttRequest, handle: RequestHandle) -> None:
        seq = 0
        for event in handle.events(timeout=self._limits.request_timeout_s):
            if isinstance(event, TextDelta):
                if request.stream and event.text:
                    self._answers.delta(record, seq, event.text)
                    seq += 1
            elif isinstance(event, Finished):
                if event.finish_reason is FinishReason.CANCELLED and self._stopping.is_set():
                    return  # stays accepted; resumed after restart
                usage = {"prompt_tokens": event.usage.prompt_tokens, "completion_tokens": event.usage.completion_tokens}
                self._answers.finish(
                    record, schema.final(event.text, event.finish_reason.value, usage, self._served_by)
                )
                return
            elif isinstance(event, InferenceResult):
                encoding = request.fields["output_encoding"]
                self._answers.finish(record, schema.result(event.outputs, event.latency_s, encoding, self._served_by))
                return
            elif isinstance(event, Refused):
                inference = isinstance(request.generation, InferenceRequest)
                if self._on_refused is not None and not inference:  # it decides what may go elsewhere; no cloud TFLite
                    self._on_refused(record, request, event)
                else:
                    self._answers.fail(record, event.code, event.reason)
                return
        self._answers.fail(record, "internal", "the scheduler ended the request without a final event")
