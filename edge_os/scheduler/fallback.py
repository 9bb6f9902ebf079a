"""The cloud-fallback policy, one for every front door (MQTT bridge and HTTP API).

The scheduler decides *which* refusals another server may serve (``Refused.fallback``: too hot,
over memory, low battery, model absent, queue full, shutting down); this policy says what happens
then: the request leaves the device redacted, the cloud gets at most ``timeout_s`` (never past the
request's own deadline), and the answer is marked as the cloud's with the refusal's code and
reason. The MQTT bridge hands the request to a cloud worker over the broker
(``edge_os.mqtt.fallback``); the HTTP API sends it to an OpenAI-compatible server
(``edge_os.api.cloud``).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from functools import cached_property

from edge_os.mqtt.redact import RedactionConfig, Redactor
from edge_os.runtime.request import GenerationRequest, Refused

SERVED_BY_CLOUD = "cloud"


@dataclass(frozen=True)
class FallbackPolicy:
    """What leaves the device, and how long the cloud may take."""

    redaction: RedactionConfig = field(default_factory=RedactionConfig)
    timeout_s: float = 120.0

    def takes(self, refused: Refused) -> bool:
        """Whether ``refused`` may be served by the cloud (the scheduler marks which may)."""
        return refused.fallback

    @cached_property
    def redactor(self) -> Redactor:
        return Redactor(self.redaction)

    def outgoing(self, request: GenerationRequest) -> GenerationRequest:
        """``request`` as it may leave the device: prompt and message contents redacted."""
        if request.messages is not None:
            return replace(request, messages=tuple(self.redactor.redact_messages(list(request.messages))))
        return replace(request, prompt=self.redactor.redact(request.prompt))

    def outgoing_fields(self, fields: dict) -> dict:
        """The same for a request's JSON fields (``prompt`` and/or ``messages``)."""
        fields = dict(fields)
        if "prompt" in fields:
            fields["prompt"] = self.redactor.redact(fields["prompt"])
        if "messages" in fields:
            fields["messages"] = self.redactor.redact_messages(fields["messages"])
        return fields

    def cloud_deadline(self, deadline: float | None, now: float | None = None) -> float:
        """Wall-clock time by which the cloud must have answered."""
        until = (time.time() if now is None else now) + self.timeout_s
        return until if deadline is None else min(until, deadline)
