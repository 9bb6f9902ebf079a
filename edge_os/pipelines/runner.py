"""Runs pipelines as a front door of `edge-os serve`: readings in, inferences through the scheduler,
events out over MQTT, questions to the LLM when a condition holds."""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from edge_os.errors import DeviceError, InputError
from edge_os.package.tflite import TFLiteManifest
from edge_os.pipelines.config import Pipeline
from edge_os.runtime.request import (
    Finished,
    GenerationRequest,
    InferenceRequest,
    InferenceResult,
    Refused,
    SamplingParams,
)
from edge_os.scheduler.api import SchedulerAPI

log = logging.getLogger(__name__)

RESULT_TIMEOUT_S = 60.0
ASK_MAX_TOKENS = 128
Publish = Callable[[str, dict], None]


def check_pipelines(pipelines: tuple[Pipeline, ...], manifests: dict[str, TFLiteManifest],
                    llms: tuple[str, ...], has_mqtt: bool) -> None:
    """Every pipeline names a served TFLite model whose single input holds ``window`` values, an
    output its condition can read, an LLM that is served, and has MQTT if it sends events."""
    for p in pipelines:
        where = f"pipeline {p.name!r}"
        m = manifests.get(p.model)
        if m is None:
            raise InputError(f"{where} names model {p.model!r}, which is not a TFLite model served here "
                             f"(TFLite models: {', '.join(manifests) or 'none'})")
        if len(m.inputs) != 1 or int(np.prod(m.inputs[0].shape)) != p.window:
            shape = [list(t.shape) for t in m.inputs]
            raise InputError(f"{where}: window {p.window} does not fill {p.model}'s input(s) {shape}; "
                             "set window to the input's number of values")
        if p.when is not None:
            names = [t.name for t in m.outputs]
            ok = p.when.output in names if isinstance(p.when.output, str) else 0 <= p.when.output < len(names)
            if not ok or (ok and p.when.index >= int(np.prod(_output(m, p.when.output).shape))):
                raise InputError(f"{where}: when names output {p.when.output!r} element {p.when.index}, which "
                                 f"{p.model} does not have (outputs: {', '.join(names)})")
        if p.ask and p.llm is not None and p.llm not in llms:
            raise InputError(f"{where} asks LLM {p.llm!r}, which is not served (LLMs: {', '.join(llms) or 'none'})")
        if p.ask and not llms:
            raise InputError(f"{where} has ask but no LLM is served; add one to --models")
        if p.event and not has_mqtt:
            raise InputError(f"{where} sends MQTT events; give --mqtt URL (or set event = false)")


def _output(m: TFLiteManifest, which: int | str):
    return next(t for t in m.outputs if t.name == which) if isinstance(which, str) else m.outputs[which]


def to_input(values: list[float], spec) -> np.ndarray:
    """Readings as the model's input: shaped, and quantized with the input's scale and zero point."""
    x = np.asarray(values, dtype=np.float64).reshape(spec.shape)
    dtype = np.dtype(spec.dtype)
    if spec.quantization and dtype.kind in "iu":
        q = spec.quantization
        x = np.round(x / q["scale"][0] + q["zero_point"][0])
        info = np.iinfo(dtype)
        x = np.clip(x, info.min, info.max)
    return x.astype(dtype)


def score_of(outputs: dict, m: TFLiteManifest, which: int | str, index: int) -> float:
    """One element of an output, dequantized."""
    spec = _output(m, which)
    value = float(np.asarray(outputs[spec.name]).reshape(-1)[index])
    if spec.quantization:
        value = (value - spec.quantization["zero_point"][0]) * spec.quantization["scale"][0]
    return value


@dataclass
class _State:
    pipeline: Pipeline
    window: list[float] = field(default_factory=list)
    work: queue.Queue = field(default_factory=lambda: queue.Queue(maxsize=64))
    last_fired: float = float("-inf")
    stats: dict = field(default_factory=lambda: dict(readings=0, runs=0, fired=0, answers=0, dropped=0, errors=0))


class PipelineRunner:
    """The pipelines of one `serve` (a front door: ``start(scheduler)`` / ``stop()``)."""

    name = "pipelines"

    def __init__(self, pipelines: tuple[Pipeline, ...], manifests: dict[str, TFLiteManifest],
                 publish: Callable[[], Publish | None] = lambda: None, open_device=None) -> None:
        self.pipelines = pipelines
        self.manifests = manifests
        self._publish_source = publish
        self._open_device = open_device or _open_device
        self._states = {p.name: _State(p) for p in pipelines}
        self._devices: dict[str, object] = {}
        self._workers: list[threading.Thread] = []
        self._scheduler: SchedulerAPI | None = None
        self._publish: Publish | None = None

    @classmethod
    def for_packages(cls, pipelines: tuple[Pipeline, ...], packages: tuple[Path, ...],
                     publish: Callable[[], Publish | None], has_mqtt: bool) -> PipelineRunner:
        """Checked against the packages `serve` was given (before any model loads)."""
        from edge_os.package.manifest import Manifest
        from edge_os.package.tflite import is_tflite_package, read_manifest

        manifests, llms = {}, []
        for path in packages:
            if is_tflite_package(path):
                m = read_manifest(path)
                manifests[m.name] = m
            else:
                llms.append(Manifest.read(path).name)
        check_pipelines(pipelines, manifests, tuple(llms), has_mqtt)
        return cls(pipelines, manifests, publish)

    def stats(self) -> dict[str, dict]:
        return {name: dict(s.stats) for name, s in self._states.items()}

    def start(self, scheduler: SchedulerAPI) -> None:
        self._scheduler = scheduler
        self._publish = self._publish_source()
        try:
            for state in self._states.values():
                p = state.pipeline
                device = self._devices.get(p.port)
                if device is None:
                    device = self._devices[p.port] = self._open_device(p.port)
                _bridge_call(lambda d=device, p=p, s=state: d.subscribe(
                    p.sensor, p.period_ms / 1000, lambda r, s=s: self._on_reading(s, r)), f"pipeline {p.name!r}")
        except BaseException:
            self.stop()
            raise
        for state in self._states.values():
            worker = threading.Thread(target=self._work, args=(state,), name=f"pipeline-{state.pipeline.name}",
                                      daemon=True)
            worker.start()
            self._workers.append(worker)
        log.info("pipelines running: %s", ", ".join(self._states))

    def stop(self) -> None:
        for state in self._states.values():
            state.work.put(None)
        for worker in self._workers:
            worker.join(5)
        self._workers.clear()
        for device in self._devices.values():
            device.close()
        self._devices.clear()

    # ---- reader thread: quick ----------------------------------------------------------------

    def _on_reading(self, state: _State, reading) -> None:
        state.stats["readings"] += 1
        state.window.append(float(reading.value))
        if len(state.window) >= state.pipeline.window:
            values, state.window = state.window, []
            try:
                state.work.put_nowait(values)
            except queue.Full:
                state.stats["dropped"] += 1

    # ---- worker thread -----------------------------------------------------------------------

    def _work(self, state: _State) -> None:
        while (values := state.work.get()) is not None:
            try:
                self._run(state, values)
            except Exception as exc:  # one bad window must not stop the pipeline
                state.stats["errors"] += 1
                log.error("pipeline %s: %s", state.pipeline.name, exc)

    def _run(self, state: _State, values: list[float]) -> None:
        p, m = state.pipeline, self.manifests[state.pipeline.model]
        handle = self._scheduler.submit(InferenceRequest(p.model, to_input(values, m.inputs[0])))
        last = list(handle.events(timeout=RESULT_TIMEOUT_S))[-1]
        if isinstance(last, Refused):
            raise DeviceError(f"{p.model} refused the window: {last.reason}")
        assert isinstance(last, InferenceResult)
        state.stats["runs"] += 1
        which = p.when.output if p.when else 0
        score = score_of(last.outputs, m, which, p.when.index if p.when else 0)
        now = time.monotonic()
        if (p.when is not None and not p.when.holds(score)) or now - state.last_fired < p.cooldown_s:
            return
        state.last_fired = now
        state.stats["fired"] += 1
        event = {"type": "event", "pipeline": p.name, "sensor": p.sensor, "model": p.model, "score": score,
                 "values": values, "ts": time.time()}
        if p.event and self._publish is not None:
            self._publish(p.name, event)
        if p.ask:
            answer = self._ask(p, score, values)
            state.stats["answers"] += 1
            log.info("pipeline %s asked the LLM and got: %s", p.name, answer[:200])
            if p.event and self._publish is not None:
                self._publish(p.name, {**event, "type": "answer", "answer": answer})

    def _ask(self, p: Pipeline, score: float, values: list[float]) -> str:
        llm = p.llm or next(m["name"] for m in self._scheduler.status()["models"] if m.get("kind", "llm") == "llm")
        prompt = p.ask.format(sensor=p.sensor, score=score, values=[round(v, 3) for v in values], model=p.model,
                              pipeline=p.name)
        request = GenerationRequest(prompt=prompt, model=llm, max_tokens=ASK_MAX_TOKENS,
                                    sampling=SamplingParams(temperature=0))
        last = list(self._scheduler.submit(request).events(timeout=RESULT_TIMEOUT_S * 5))[-1]
        if isinstance(last, Refused):
            raise DeviceError(f"the LLM {llm} refused the question: {last.reason}")
        assert isinstance(last, Finished)
        return last.text


def _bridge_call(call, where: str):
    """A firmware-bridge call whose errors become edge-os's one-line errors."""
    from firmware_bridge.errors import BridgeError
    from firmware_bridge.errors import InputError as BridgeInputError

    try:
        return call()
    except BridgeInputError as exc:
        raise InputError(f"{where}: {exc}") from None
    except BridgeError as exc:
        raise DeviceError(f"{where}: {exc}") from None


def _open_device(port: str):
    from firmware_bridge.device import Device

    return _bridge_call(lambda: Device.open(port), f"serial port {port}")
