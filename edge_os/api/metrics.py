"""``GET /metrics``: Prometheus text from ``prometheus-client``.

Per-request figures (latencies, token counts, outcomes) are recorded by the app as requests
end; the scheduler's state (queue, running, KV use, memory, governor, temperatures) is read from
``SchedulerAPI.status()`` at scrape time. Labels come from closed sets only: served model names,
the two endpoints, finish reasons and refusal codes, thermal zone names. No prompt, output or
client-chosen text ever becomes a label.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from edge_os.runtime.request import Event, Finished, Refused, TextDelta
from edge_os.scheduler.api import SchedulerAPI

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
LEVELS = ("NORMAL", "SLOW_1", "SLOW_2", "SLOW_3", "PAUSE_BACKGROUND", "FALLBACK", "REFUSE")
OUTCOMES = ("stop", "length", "cancelled", "deadline", "client_gone", "refused", "timeout", "error")
REFUSALS = ("queue_full", "over_memory", "too_hot", "low_battery", "model_absent", "deadline", "invalid_request",
            "engine_error", "shutting_down", "timeout")
_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)
_E2E_BUCKETS = (0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600)


class Metrics:
    """The registry behind /metrics for one server."""

    def __init__(self, scheduler: SchedulerAPI) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter("edge_os_http_requests", "Completion requests that ended, by endpoint and outcome",
                                ["endpoint", "outcome"], registry=r)
        self.refused = Counter("edge_os_refused_requests", "Requests the scheduler refused, by reason "
                               "(each could go to a fallback)", ["reason"], registry=r)
        self.fallbacks = Counter("edge_os_cloud_fallbacks", "Requests the device refused and handed to the cloud, "
                                 "by refusal reason and how the cloud's answer ended", ["reason", "outcome"],
                                 registry=r)
        self.ttft = Histogram("edge_os_time_to_first_token_seconds", "From arrival to the first generated token",
                              ["model"], buckets=_LATENCY_BUCKETS, registry=r)
        self.itl = Histogram("edge_os_inter_token_latency_seconds", "Between consecutive generated tokens",
                             ["model"], buckets=_LATENCY_BUCKETS, registry=r)
        self.e2e = Histogram("edge_os_request_duration_seconds", "From arrival to the last event",
                             ["model"], buckets=_E2E_BUCKETS, registry=r)
        self.prompt_tokens = Counter("edge_os_prompt_tokens", "Prompt tokens of finished requests", ["model"],
                                     registry=r)
        self.generated_tokens = Counter("edge_os_generation_tokens", "Tokens generated", ["model"], registry=r)
        r.register(_SchedulerCollector(scheduler))

    def render(self) -> bytes:
        return generate_latest(self.registry)


def _never(_refused: Refused) -> bool:
    return False


class RequestTimer:
    """Latencies and outcome of one request, fed with each event's arrival on the event loop.

    ``hands_over(refused)`` says whether a refusal goes to the cloud; the timer then follows the
    cloud's events too, and counts the request once, in the fallback counter as well.
    """

    def __init__(self, metrics: Metrics, endpoint: str, model: str,
                 hands_over: Callable[[Refused], bool] | None = None) -> None:
        self.metrics, self.endpoint, self.model = metrics, endpoint, model
        self.started = time.monotonic()
        self._last: float | None = None
        self._hands_over = hands_over or _never
        self.cloud_reason: str | None = None  # the device's refusal code once the cloud serves the request
        self.ended = False

    def observe(self, event: Event) -> None:
        """Called with every event of the request as the app reads it."""
        if isinstance(event, TextDelta):
            self._tokens(len(event.token_ids))  # the cloud's deltas carry no token ids
        elif isinstance(event, Finished):
            self.finish(event.finish_reason.value, event.usage.prompt_tokens)
        elif isinstance(event, Refused) and self.cloud_reason is None:  # the device refused
            code = event.code if event.code in REFUSALS else "other"
            self.metrics.refused.labels(code).inc()
            if self._hands_over(event):
                self.cloud_reason = code
            else:
                self.finish("refused")
        elif isinstance(event, Refused):  # the cloud failed
            self.finish("timeout" if event.code == "timeout" else "error")

    def _tokens(self, count: int) -> None:
        if count <= 0:
            return
        self.metrics.generated_tokens.labels(self.model).inc(count)
        now = time.monotonic()
        if self._last is None:
            self.metrics.ttft.labels(self.model).observe(now - self.started)
        else:
            self.metrics.itl.labels(self.model).observe((now - self._last) / count)
        self._last = now

    def finish(self, outcome: str, prompt_tokens: int = 0) -> None:
        if self.ended:
            return
        self.ended = True
        m = self.metrics
        outcome = outcome if outcome in OUTCOMES else "error"
        m.requests.labels(self.endpoint, outcome).inc()
        if self.cloud_reason is not None:
            m.fallbacks.labels(self.cloud_reason, outcome).inc()
            return  # the device's latency and token figures are its own
        m.e2e.labels(self.model).observe(time.monotonic() - self.started)
        m.prompt_tokens.labels(self.model).inc(prompt_tokens)


class _SchedulerCollector:
    """Gauges read from the scheduler's status snapshot at each scrape."""

    def __init__(self, scheduler: SchedulerAPI) -> None:
        self._scheduler = scheduler

    def collect(self):
        s = self._scheduler.status()
        yield _gauge("edge_os_requests_running", "Requests being decoded", s["running"])
        yield _gauge("edge_os_requests_waiting", "Requests queued in the scheduler", s["queue"]["waiting"])
        mem = s["memory"]
        yield _gauge("edge_os_memory_budget_bytes", "The scheduler's memory budget", mem["budget_bytes"])
        yield _gauge("edge_os_memory_accounted_bytes", "Memory the loaded models account for", mem["accounted_bytes"])
        yield _gauge("edge_os_memory_available_bytes", "The device's MemAvailable", mem["device_available_bytes"])
        resident = GaugeMetricFamily("edge_os_model_memory_bytes", "Memory a loaded model holds", labels=["model"])
        kv_used = GaugeMetricFamily("edge_os_kv_cache_reserved_tokens", "KV tokens reserved by running requests",
                                    labels=["model"])
        kv_pool = GaugeMetricFamily("edge_os_kv_cache_pool_tokens", "KV tokens a loaded model's pool holds",
                                    labels=["model"])
        loaded = GaugeMetricFamily("edge_os_model_loaded", "1 while the model is loaded", labels=["model"])
        kept = GaugeMetricFamily("edge_os_prefix_cache_tokens", "Prompt tokens the prefix cache keeps",
                                 labels=["model"])
        hits = CounterMetricFamily("edge_os_prefix_cache_hits", "Requests that started from a kept prompt",
                                   labels=["model"])
        saved = CounterMetricFamily("edge_os_prefix_cache_hit_tokens", "Prompt tokens not prefilled thanks to "
                                    "the prefix cache", labels=["model"])
        for row in s["models"]:
            loaded.add_metric([row["name"]], 1 if row["loaded"] else 0)
            if row["loaded"]:
                resident.add_metric([row["name"]], row["resident_bytes"])
                kv_used.add_metric([row["name"]], row["kv_reserved_tokens"])
                kv_pool.add_metric([row["name"]], row["kv_pool_tokens"])
            if (cache := row.get("prefix_cache")) is not None:
                kept.add_metric([row["name"]], cache["tokens"])
                hits.add_metric([row["name"]], cache["hits"])
                saved.add_metric([row["name"]], cache["hit_tokens"])
        yield from (resident, kv_used, kv_pool, loaded, kept, hits, saved)
        yield CounterMetricFamily("edge_os_model_loads", "Models loaded since start", value=s["loads"])
        yield CounterMetricFamily("edge_os_evictions", "Models unloaded to make room", value=s["evictions"])
        gov = s["governor"]
        level = GaugeMetricFamily("edge_os_governor_level", "1 for the governor's current level", labels=["level"])
        for name in LEVELS:
            level.add_metric([name], 1 if gov["level"] == name else 0)
        yield level
        yield _gauge("edge_os_governor_duty", "Share of time the engines may run", gov["duty"])
        temps = GaugeMetricFamily("edge_os_temperature_celsius", "Thermal zone temperatures", labels=["zone"])
        for zone in s["thermal"]["zones"]:
            if zone["temp_c"] is not None:
                temps.add_metric([zone["name"]], zone["temp_c"])
        yield temps
        yield _gauge("edge_os_decode_tokens_per_second", "Tokens generated per second over the last 10 s", s["tok_s"])


def _gauge(name: str, doc: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, doc, value=value)
