"""``POST /v1/infer``: one inference of a TFLite model (the body is an MQTT inference request's).

```
{"model": "kws", "inputs": [[...]], "output_encoding": "json"}
-> {"model": "kws", "outputs": {"name": {"shape": [1, 1], "dtype": "uint8", "data": [[3]]}}, "latency_ms": 0.2}
```
"""

from __future__ import annotations

import asyncio

from starlette.responses import JSONResponse, Response

from edge_os.api.errors import ApiError
from edge_os.api.relay import refusal_error
from edge_os.errors import InputError
from edge_os.runtime.arrays import parse_inference, result_body
from edge_os.runtime.request import InferenceResult, Refused

TIMEOUT_S = 60.0


async def run_inference(api, data: dict) -> Response:
    """Run the body's inference through ``api``'s scheduler; refusals map to the API's usual statuses."""
    try:
        inference, encoding = parse_inference(data)
    except InputError as exc:
        raise ApiError(400, str(exc), code="invalid_request") from None
    kinds = {row["name"]: row.get("kind", "llm") for row in api.scheduler.status()["models"]}
    if kinds.get(inference.model) != "tflite":
        have = ", ".join(n for n, k in kinds.items() if k == "tflite") or "none"
        raise ApiError(404, f"no TFLite model {inference.model!r} is served here (TFLite models: {have})",
                       code="model_not_found", param="model")
    handle = api.scheduler.submit(inference)
    events = await asyncio.to_thread(lambda: list(handle.events(timeout=TIMEOUT_S)))
    last = events[-1]
    if isinstance(last, Refused):
        raise refusal_error(last)
    if not isinstance(last, InferenceResult):
        raise ApiError(500, "the scheduler ended the inference without a result", code="internal")
    return JSONResponse({"model": inference.model, **result_body(last.outputs, last.latency_s, encoding)})
