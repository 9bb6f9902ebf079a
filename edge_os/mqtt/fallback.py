"""Cloud fallback: hand a request the device refused to a cloud worker, relay its answer back.

The forwarded request is redacted first (``FallbackPolicy``, shared with the HTTP API), travels
through the outbox (so it survives outages and restarts) with the remaining deadline as its
message expiry, and carries the device's request key as correlation data. The cloud worker answers
on ``edge-os/{device_id}/cloud/res``; the answer is relayed to the original requester marked
``served_by: cloud`` with the refusal reason.
A request the cloud does not answer within ``timeout_s`` gets a ``cloud_timeout`` error.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass

from edge_os.errors import InputError
from edge_os.mqtt import schema
from edge_os.mqtt.answers import Answers
from edge_os.mqtt.connection import Inbound
from edge_os.mqtt.dedup import RequestLog, RequestRecord, State
from edge_os.mqtt.delivery import OutboxSender
from edge_os.mqtt.outbox import Kind, Outbox
from edge_os.mqtt.schema import MqttRequest
from edge_os.mqtt.store import Store
from edge_os.mqtt.topics import cloud_request_topic, cloud_response_topic
from edge_os.runtime.request import Refused
from edge_os.scheduler.fallback import SERVED_BY_CLOUD, FallbackPolicy

log = logging.getLogger(__name__)


@dataclass
class FallbackStats:
    forwarded: int = 0
    relayed: int = 0  # final or error answers relayed from the cloud
    timed_out: int = 0
    ignored: int = 0  # cloud answers for requests already answered (duplicates, late)


class CloudFallback:
    def __init__(
        self,
        device_id: str,
        store: Store,
        requests: RequestLog,
        outbox: Outbox,
        sender: OutboxSender,
        answers: Answers,
        policy: FallbackPolicy,
    ) -> None:
        self.device_id = device_id
        self.response_topic = cloud_response_topic(device_id)
        self._store = store
        self._requests = requests
        self._outbox = outbox
        self._sender = sender
        self._answers = answers
        self._policy = policy
        self.stats = FallbackStats()

    def forward(self, record: RequestRecord, request: MqttRequest, refusal: Refused) -> None:
        """Queue ``request`` for the cloud if the policy lets it go there (worker thread); its
        answer arrives in ``handle``. Other refusals are answered with their error at once."""
        if not self._policy.takes(refusal):
            self._answers.fail(record, refusal.code, refusal.reason)
            return
        if record.expired():
            self._answers.fail(record, "expired", f"not served here ({refusal.reason}) and its deadline passed")
            return
        fields = self._policy.outgoing_fields(request.fields)
        fields["fallback"] = {"device_id": self.device_id, "code": refusal.code, "reason": refusal.reason}
        cloud_deadline = self._policy.cloud_deadline(record.deadline)
        with self._store.transaction():
            if not self._requests.mark_cloud(record.key, refusal.code, refusal.reason, cloud_deadline):
                return
            self._outbox.put(
                Kind.CLOUD,
                cloud_request_topic(),
                json.dumps(fields, ensure_ascii=False).encode(),
                correlation=record.key.encode(),
                response_topic=self.response_topic,
                expires=record.deadline,
                request_key=record.key,
            )
        self.stats.forwarded += 1
        log.info("request %s handed to the cloud: %s (%s)", record.key, refusal.code, refusal.reason)
        self._sender.notify()

    def handle(self, msg: Inbound) -> None:
        """Relay one cloud answer (network thread)."""
        record = self._requests.get(msg.correlation.decode(errors="replace")) if msg.correlation else None
        if record is None or record.state is not State.CLOUD:
            self.stats.ignored += 1
            return
        try:
            answer = schema.parse_answer(msg.payload)
        except InputError as exc:
            self.stats.relayed += 1
            self._answers.fail(record, "cloud_error", f"the cloud worker sent a bad answer: {exc}")
            return
        if answer["type"] == "delta":
            if json.loads(record.payload).get("stream"):
                self._answers.delta(record, int(answer["seq"]), str(answer["text"]))
            return
        self.stats.relayed += 1
        if answer["type"] == "error":
            self._answers.fail(record, str(answer["code"]), f"cloud worker: {answer['message']}")
            return
        self._answers.finish(
            record,
            schema.final(
                answer["text"],
                answer["finish_reason"],
                answer["usage"],
                SERVED_BY_CLOUD,
                reason_code=record.fallback_code,
                reason=record.fallback_reason,
            ),
        )

    def expire(self) -> None:
        """Fail requests the cloud has not answered in time (called periodically)."""
        now = time.time()
        for record in self._requests.in_state(State.CLOUD):
            if record.cloud_deadline is not None and record.cloud_deadline <= now:
                if self._answers.fail(
                    record,
                    "cloud_timeout",
                    f"not served here ({record.fallback_reason}) and the cloud did not answer in time",
                ):
                    self.stats.timed_out += 1
