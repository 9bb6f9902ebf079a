"""The starlette application: routes, body limits, error objects, streaming.

Every completion goes through the scheduler (``SchedulerAPI.submit``): budgets, priorities,
the governor and refusals apply exactly as for MQTT requests, and so does the cloud fallback
(``edge_os.api.cloud``) when one is configured.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from edge_os.api import cloud, schema, shapes
from edge_os.api.agent_live import LiveRuns, owner_of, sse
from edge_os.api.auth import KeyCheck
from edge_os.api.config import HttpConfig
from edge_os.api.errors import ApiError, bad_request
from edge_os.api.inference import run_inference
from edge_os.api.metrics import CONTENT_TYPE as METRICS_CONTENT_TYPE
from edge_os.api.metrics import Metrics, RequestTimer
from edge_os.api.models import ModelCard, ModelCards
from edge_os.api.readiness import readiness
from edge_os.api.relay import (
    ClientGone,
    EventStream,
    refusal_error,
    unless_disconnected,
    until_disconnect,
)
from edge_os.errors import InputError
from edge_os.runtime.grammar import load_xgrammar
from edge_os.runtime.request import Finished, FinishReason, Refused, TextDelta
from edge_os.runtime.tools import ToolUse
from edge_os.scheduler.api import SchedulerAPI

log = logging.getLogger(__name__)

_FINISH = {FinishReason.STOP: "stop", FinishReason.LENGTH: "length"}


def error_response(err: ApiError) -> JSONResponse:
    return JSONResponse(err.body(), status_code=err.status, headers=err.headers)


class Api:
    """The handlers, bound to one scheduler and config."""

    def __init__(self, scheduler: SchedulerAPI, config: HttpConfig, cards: ModelCards) -> None:
        self.scheduler = scheduler
        self.agent = None  # edge_os.api.agent_runs.AgentRuns, when the server runs an agent
        self.live_runs = LiveRuns(config.max_agent_runs)  # agent runs that ask during the run (stream / background)
        self.config = config
        self.cards = cards
        self.started = int(time.time())
        self.metrics = Metrics(scheduler)
        self.cloud = cloud.CloudRoute(config.cloud) if config.cloud is not None else None

    def served_rows(self, status: dict | None = None) -> list[dict]:
        """The scheduler's rows of the models served now; a replaced version still finishing its
        requests takes no new ones, so it is not listed."""
        rows = (status or self.scheduler.status())["models"]
        return [row for row in rows if not row.get("replaced")]

    def model_names(self) -> list[str]:
        return [row["name"] for row in self.served_rows()]

    # ---- plain endpoints ------------------------------------------------------------------------

    async def health(self, request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def ready(self, request: Request) -> Response:
        """200 when a request can be served now, here or (with ``--cloud-url``) by the cloud."""
        state = readiness(self.scheduler.status(), self.cloud.policy if self.cloud else None)
        if isinstance(state, ApiError):
            return error_response(state)
        return JSONResponse(state)

    async def metrics_text(self, request: Request) -> Response:
        return Response(self.metrics.render(), media_type=METRICS_CONTENT_TYPE)

    async def list_models(self, request: Request) -> Response:
        """What is served now (read from the scheduler at each call: versions switch at run time)."""
        data = []
        for row in self.served_rows():
            card = self.cards.card_for(row)
            if card is None:
                data.append({"id": row["name"], "object": "model", "created": self.started, "owned_by": "edge-os",
                             "context_length": row["context_length"]})
            else:
                data.append(card.describe(self.started, row["context_length"]))
            data[-1].update(version=row.get("version"), loaded=row["loaded"])
        return JSONResponse({"object": "list", "data": data})

    async def tokenize(self, request: Request) -> Response:
        data = schema.parse_json(await read_body(request, self.config.max_body_bytes))
        card, text = self._tokenizer_card(data), data.get("prompt")
        if not isinstance(text, str):
            raise bad_request('"prompt" must be a string', "prompt", "invalid_type")
        ids = self.cards.tokenizer(card).encode(text, add_special_tokens=False).ids
        return JSONResponse({"model": card.name, "tokens": ids, "count": len(ids)})

    async def detokenize(self, request: Request) -> Response:
        data = schema.parse_json(await read_body(request, self.config.max_body_bytes))
        card, ids = self._tokenizer_card(data), data.get("tokens")
        tokenizer = self.cards.tokenizer(card)
        size = tokenizer.get_vocab_size(with_added_tokens=True)
        if not isinstance(ids, list) or not all(isinstance(i, int) and not isinstance(i, bool) and 0 <= i < size
                                                 for i in ids):
            raise bad_request(f'"tokens" must be a list of token ids from 0 to {size - 1}', "tokens", "invalid_type")
        return JSONResponse({"model": card.name, "prompt": tokenizer.decode(ids, skip_special_tokens=False)})

    def _tokenizer_card(self, data: dict[str, Any]) -> ModelCard:
        name = data.get("model")
        cards = {row["name"]: card for row in self.served_rows() if (card := self.cards.card_for(row)) is not None}
        if not isinstance(name, str) or name not in cards:
            have = ", ".join(cards) or "none"
            raise ApiError(404, f"the model {name!r} does not exist here (have: {have})", code="model_not_found",
                           param="model")
        return cards[name]

    async def infer(self, request: Request) -> Response:
        """``POST /v1/infer``: one inference of a TFLite model (``edge_os.api.inference``)."""
        return await run_inference(self, schema.parse_json(await read_body(request, self.config.max_body_bytes)))

    async def agent_runs(self, request: Request) -> Response:
        from edge_os.api.agent_runs import parse_run

        agent = self._agent()
        run = parse_run(schema.parse_json(await read_body(request, self.config.max_body_bytes)))
        owner = owner_of(request.headers)
        origin = {"via": "http", "requester": owner[:16]}  # who started it, in the audit log (a key's digest)
        if not (run.stream or run.background):
            return JSONResponse(await asyncio.to_thread(agent.run, self.scheduler, run, origin=origin))
        live = self.live_runs.start(owner, lambda live: agent.run(
            self.scheduler, run, live.ask, run_id=live.id, on_entry=live.tell, origin=origin))
        if run.background:
            return JSONResponse(live.describe(), status_code=202)

        async def events():
            seen = 0
            while True:
                fresh = await asyncio.to_thread(live.events_after, seen, 5.0)
                seen += len(fresh)
                for event in fresh:
                    yield sse(event)
                    if event["type"] == "run_finished":
                        yield b"data: [DONE]\n\n"
                        return

        return StreamingResponse(events(), media_type="text/event-stream",
                                 headers={"cache-control": "no-cache", "x-agent-run-id": live.id})

    async def agent_run(self, request: Request) -> Response:
        self._agent()
        live = self.live_runs.get(request.path_params["run_id"], owner_of(request.headers))
        return JSONResponse(live.describe())

    async def agent_confirmation(self, request: Request) -> Response:
        self._agent()
        live = self.live_runs.get(request.path_params["run_id"], owner_of(request.headers))
        data = schema.parse_json(await read_body(request, self.config.max_body_bytes))
        answer = data.get("answer")
        if answer not in ("yes", "no") or set(data) != {"answer"}:
            raise bad_request('the body must be {"answer": "yes"} or {"answer": "no"}', "answer")
        cid = request.path_params["cid"]
        live.answer(cid, answer)
        return JSONResponse({"id": cid, "object": "agent.run.confirmation", "run_id": live.id, "answer": answer})

    def _agent(self):
        if self.agent is None:
            raise ApiError(404, "this server runs no agent; start it with --agent-port PORT", code="no_agent")
        return self.agent

    # ---- completions ----------------------------------------------------------------------------

    async def chat_completions(self, request: Request) -> Response:
        return await self._complete(request, schema.parse_chat)

    async def completions(self, request: Request) -> Response:
        return await self._complete(request, schema.parse_completion)

    async def _complete(self, request: Request, parse) -> Response:
        data = schema.parse_json(await read_body(request, self.config.max_body_bytes))
        api = parse(data, self.model_names(), self.config.default_max_tokens)
        if api.generation.constraint is not None:  # the import is slow: not on the scheduler's thread
            try:
                await asyncio.to_thread(load_xgrammar)
            except InputError as exc:
                raise ApiError(501, str(exc), code="unsupported_parameter", param="response_format") from None
        timer = RequestTimer(self.metrics, api.kind, api.model, self.cloud.takes if self.cloud else None)
        handle = self.scheduler.submit(api.generation)
        events = EventStream(handle, self.config.request_timeout_s, timer.observe)
        streaming = False  # once the StreamResponse owns the request, it cancels it
        try:
            first = await unless_disconnected(request.receive, events.next())
            failed, headers = refusal_error, cloud.LOCAL_HEADERS
            if isinstance(first, Refused) and timer.cloud_reason is not None:  # the cloud answers instead
                device = first
                log.info("request %s handed to the cloud: %s (%s)", api.generation.request_id, device.code,
                         device.reason)
                events = EventStream(self.cloud.submit(api.generation), self.cloud.policy.timeout_s, timer.observe)
                first = await unless_disconnected(request.receive, events.next())
                failed, headers = (lambda refused: cloud.cloud_error(device, refused)), cloud.headers(device)
            if isinstance(first, Refused):
                raise failed(first)
            if api.stream:
                created = int(time.time())
                writer = shapes.ChunkWriter(api.kind, api.generation.request_id, created, api.model, api.include_usage)
                streaming = True
                return StreamResponse(events, first, writer, timer, api.tools, headers, failed)
            return await unless_disconnected(request.receive, self._collect(api, events, first, headers, failed))
        except ClientGone:
            log.info("client of %s went away; cancelled", api.generation.request_id)
            timer.finish("client_gone")
            return Response(status_code=499)
        finally:
            if not streaming:
                events.close()

    async def _collect(self, api: schema.ApiRequest, events: EventStream, event, headers: dict[str, str],
                       failed: Callable[[Refused], ApiError]) -> Response:
        while not isinstance(event, (Finished, Refused)):
            event = await events.next()
        if isinstance(event, Refused):
            raise failed(event)
        if event.finish_reason not in _FINISH:
            raise ApiError(503, f"the request ended early ({event.finish_reason.value}); the service may be stopping",
                           code=event.finish_reason.value)
        text, calls, finish = event.text, None, _FINISH[event.finish_reason]
        if api.tools is not None:
            text, found = api.tools.split(event.text)
            calls = [c.as_openai() for c in found] or None
            finish = "tool_calls" if calls else finish
        body = shapes.completion(api.kind, api.generation.request_id, int(time.time()), api.model, text, finish,
                                 event.usage, calls)
        return JSONResponse(body, headers=headers)


class StreamResponse(Response):
    """Server-sent events for one request; if the client goes, the request is cancelled at once."""

    media_type = "text/event-stream"

    def __init__(self, events: EventStream, first, writer: shapes.ChunkWriter, timer: RequestTimer,
                 tools: ToolUse | None, headers: dict[str, str], failed: Callable[[Refused], ApiError]) -> None:
        self.status_code = 200
        self.background = None
        self.raw_headers = [(b"content-type", b"text/event-stream; charset=utf-8"), (b"cache-control", b"no-cache"),
                            (b"x-accel-buffering", b"no")]
        self.raw_headers += [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()]
        self.failed = failed
        self.events = events
        self.first = first
        self.writer = writer
        self.timer = timer
        self.calls = tools.parser() if tools is not None else None  # with tools: text and calls told apart
        self.sent = 0

    async def __call__(self, scope, receive, send) -> None:
        await send({"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers})
        pump = asyncio.ensure_future(self._pump(send))
        watcher = asyncio.ensure_future(until_disconnect(receive))
        try:
            await asyncio.wait({pump, watcher}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            watcher.cancel()
            if not pump.done():
                pump.cancel()
                log.info("client of %s went away after %d chunks; cancelled", self.writer.rid, self.sent)
                self.timer.finish("client_gone")
            self.events.close()
        if pump.done() and not pump.cancelled() and pump.exception() is None:
            await send({"type": "http.response.body", "body": b"", "more_body": False})

    async def _pump(self, send) -> None:
        w, event = self.writer, self.first
        opening = w.first()
        if opening:
            await send({"type": "http.response.body", "body": opening, "more_body": True})
        while True:
            if isinstance(event, TextDelta) and event.text:
                chunk = w.text(event.text) if self.calls is None else w.pieces(self.calls.feed(event.text))
            elif isinstance(event, Finished):
                reason = _FINISH.get(event.finish_reason)
                if reason is None:  # cancelled by the service (stopping): end without [DONE]
                    chunk = shapes.event(ApiError(503, "the service stopped the request", code="shutting_down").body())
                elif self.calls is not None:
                    chunk = w.pieces(self.calls.finish())
                    called = self.calls.calls and self.calls.complete
                    chunk += w.finish("tool_calls" if called else reason, event.usage)
                else:
                    chunk = w.finish(reason, event.usage)
            elif isinstance(event, Refused):  # the engine (or the cloud) failed mid-stream
                chunk = shapes.event(self.failed(event).body())
            else:
                chunk = b""
            if chunk:
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
                self.sent += 1
            if isinstance(event, (Finished, Refused)):
                return
            event = await self.events.next()


async def read_body(request: Request, limit: int) -> bytes:
    """The body, refused with 413 past ``limit`` bytes (declared or actually sent)."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise ApiError(413, f"the body is {int(declared)} bytes; the limit is {limit}", code="body_too_large")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise ApiError(413, f"the body is over the limit of {limit} bytes", code="body_too_large")
        chunks.append(chunk)
    return b"".join(chunks)


async def _api_error(request: Request, exc: ApiError) -> Response:
    return error_response(exc)


async def _http_error(request: Request, exc) -> Response:
    return error_response(ApiError(exc.status_code, exc.detail or "not found", code=None))


async def _internal_error(request: Request, exc: Exception) -> Response:
    log.exception("HTTP request %s %s failed", request.method, request.url.path)
    return error_response(ApiError(500, f"internal error: {type(exc).__name__}", code="internal"))


def build_app(scheduler: SchedulerAPI, config: HttpConfig, cards: ModelCards | None = None,
              agent=None) -> KeyCheck:
    """The ASGI app serving ``scheduler`` (run it with uvicorn; ``HttpFrontDoor`` does); with
    ``agent`` (an ``edge_os.api.agent_runs.AgentRuns``), also ``POST /v1/agent/runs``."""
    from starlette.exceptions import HTTPException

    api = Api(scheduler, config, cards or ModelCards(config.packages))
    api.agent = agent
    routes = [
        Route("/health", api.health, methods=["GET"]),
        Route("/ready", api.ready, methods=["GET"]),
        Route("/v1/models", api.list_models, methods=["GET"]),
        Route("/v1/chat/completions", api.chat_completions, methods=["POST"]),
        Route("/v1/completions", api.completions, methods=["POST"]),
        Route("/metrics", api.metrics_text, methods=["GET"]),
        Route("/tokenize", api.tokenize, methods=["POST"]),
        Route("/detokenize", api.detokenize, methods=["POST"]),
        Route("/v1/infer", api.infer, methods=["POST"]),
        Route("/v1/agent/runs", api.agent_runs, methods=["POST"]),
        Route("/v1/agent/runs/{run_id}", api.agent_run, methods=["GET"]),
        Route("/v1/agent/runs/{run_id}/confirmations/{cid}", api.agent_confirmation, methods=["POST"]),
    ]
    app = Starlette(routes=routes, exception_handlers={ApiError: _api_error, HTTPException: _http_error,
                                                       Exception: _internal_error})
    app.state.api = api
    return KeyCheck(app, config.api_keys)
