"""Cloud fallback for the HTTP API: a request the device refuses is answered by an
OpenAI-compatible server (``serve --http ADDR --cloud-url URL``).

The policy (which refusals, redaction, how long the cloud may take) is the one the MQTT bridge
follows (``edge_os.scheduler.fallback``). The cloud's answer goes back in the same shape as a
local one, streamed or not, with ``X-Edge-OS-Served-By: cloud`` and the refusal's code and reason
in response headers.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from edge_os.api.errors import ApiError
from edge_os.runtime.request import GenerationRequest, Refused
from edge_os.scheduler.api import RequestHandle
from edge_os.scheduler.fallback import SERVED_BY_CLOUD, FallbackPolicy

SERVED_BY = "X-Edge-OS-Served-By"
REASON = "X-Edge-OS-Fallback-Reason"
DETAIL = "X-Edge-OS-Fallback-Detail"
LOCAL_HEADERS = {SERVED_BY: "local"}


@dataclass(frozen=True)
class CloudConfig:
    """Where the cloud is: an OpenAI-compatible base URL, the model name it is asked for (default:
    the local model's name), the bearer token it wants, and the shared fallback policy."""

    url: str
    model: str | None = None
    api_key: str | None = field(default=None, repr=False)
    policy: FallbackPolicy = field(default_factory=FallbackPolicy)


class CloudRoute:
    """Hands refused requests to the cloud under the fallback policy."""

    def __init__(self, config: CloudConfig) -> None:
        from edge_os.mqtt.openai_backend import OpenAIBackend

        self.config = config
        self.policy = config.policy
        self._backend = OpenAIBackend(config.url, api_key=config.api_key, timeout_s=config.policy.timeout_s)

    def takes(self, refused: Refused) -> bool:
        return self.policy.takes(refused)

    def submit(self, request: GenerationRequest) -> RequestHandle:
        """Send ``request`` (redacted) to the cloud; its events come like the scheduler's."""
        outgoing = self.policy.outgoing(request)
        if self.config.model:
            outgoing = replace(outgoing, model=self.config.model)
        return self._backend.submit(outgoing)


def headers(refused: Refused) -> dict[str, str]:
    """Response headers that mark an answer as the cloud's, and why the device did not serve it."""
    detail = refused.reason.encode("ascii", "replace").decode()[:200]
    return {SERVED_BY: SERVED_BY_CLOUD, REASON: refused.code, DETAIL: detail}


def cloud_error(device: Refused, cloud: Refused) -> ApiError:
    """The answer when the device refused and the cloud failed too."""
    if cloud.code == "timeout":
        return ApiError(504, f"not served here ({device.code}: {device.reason}) and the cloud did not answer in "
                             "time", code="cloud_timeout", headers=headers(device))
    return ApiError(502, f"not served here ({device.code}: {device.reason}) and the cloud failed: {cloud.reason}",
                    code="cloud_error", kind="server_error", headers=headers(device))
