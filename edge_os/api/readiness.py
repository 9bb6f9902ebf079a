"""``GET /ready``: whether a request sent now would be served, and by whom.

The device is ready when a served model takes new work. When it does not (too hot, low battery:
the governor refuses new requests), those requests are refused with a refusal the fallback
policy may hand to the cloud (``edge_os.scheduler.fallback``); with ``--cloud-url`` the answer
is then 200 with ``served_by: cloud`` and the refusal's code and reason, exactly as such a
request would be answered. The cloud itself is not called: readiness says where requests go,
not whether the cloud is up. A pinned model still loading makes requests wait (not refused), and
a device without models answers no request (a request must name a served model), so both stay
503 with or without a cloud.
"""

from __future__ import annotations

from typing import Any

from edge_os.api.errors import ApiError
from edge_os.runtime.request import Refused
from edge_os.scheduler.fallback import FallbackPolicy

_NOT_READY_LEVELS = {"FALLBACK", "REFUSE"}


def readiness(status: dict[str, Any], cloud: FallbackPolicy | None) -> dict[str, Any] | ApiError:
    """The body of a ready answer, or the error of an unready one, for a scheduler ``status``."""
    served = [row["name"] for row in status["models"] if not row.get("replaced")]
    if not served:
        hint = "; a cloud answers only what a served model refuses" if cloud is not None else ""
        return ApiError(503, f"no model is configured; start serve with --models{hint}", code="no_model")
    waiting = [row["name"] for row in status["models"] if row["pinned"] and not row["loaded"]]
    if waiting:
        return ApiError(503, f"still loading {', '.join(waiting)}", code="loading")
    governor = status["governor"]
    if governor["level"] in _NOT_READY_LEVELS or governor["refuse_new"]:
        reason = governor["reason"] or governor["power"]
        refused = Refused(governor["refuse_new"] or "too_hot", f"not taking new work: {reason}", fallback=True)
        if cloud is not None and cloud.takes(refused):
            return {"status": "ready", "served_by": "cloud", "reason": refused.code, "detail": refused.reason,
                    "models": served}
        return ApiError(503, refused.reason, code="throttled", headers={"Retry-After": "30"})
    return {"status": "ready", "served_by": "local", "models": served}
