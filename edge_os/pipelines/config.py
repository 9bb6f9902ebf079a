"""Pipelines from a TOML file (`edge-os serve --pipeline FILE`), checked before anything starts.

```toml
[[pipeline]]
name = "warm-room"                 # events go to edge-os/{device_id}/events/{name}
port = "/dev/ttyACM0"              # the firmware bridge's serial port
sensor = "temperature"
period_ms = 100                    # the firmware streams a reading this often
model = "anomaly"                  # a TFLite model served by the same serve
window = 16                        # readings per inference (the model's input holds this many values)
when = { output = 0, index = 0, above = 0.8 }   # optional: act only then (below = ... also works)
event = true                       # publish an MQTT event (needs --mqtt)
ask = "Sensor {sensor} looks anomalous (score {score:.2f}) over {values}. What should I check?"
llm = "smollm2-135m"               # optional: which LLM gets `ask` (default: the first LLM served)
cooldown_s = 30                    # act at most this often
```
"""

from __future__ import annotations

import math
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path

from edge_os.errors import InputError

_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")
FIELDS = frozenset({"name", "port", "sensor", "period_ms", "model", "window", "when", "event", "ask", "llm",
                    "cooldown_s"})


@dataclass(frozen=True)
class Condition:
    """Act when output ``output`` (index or name), element ``index`` (flat, dequantized) is above
    ``above`` or below ``below``."""

    output: int | str = 0
    index: int = 0
    above: float | None = None
    below: float | None = None

    def holds(self, value: float) -> bool:
        return (self.above is None or value > self.above) and (self.below is None or value < self.below)


@dataclass(frozen=True)
class Pipeline:
    name: str
    port: str
    sensor: str
    period_ms: int
    model: str
    window: int = 1
    when: Condition | None = None
    event: bool = True
    ask: str | None = None
    llm: str | None = None
    cooldown_s: float = 0.0


def _fail(where: str, what: str) -> None:
    raise InputError(f"{where}: {what}")


def _condition(where: str, data: object) -> Condition:
    if not isinstance(data, dict) or not set(data) <= {"output", "index", "above", "below"}:
        _fail(where, "when must be a table of output, index, above and/or below")
    output = data.get("output", 0)
    index = data.get("index", 0)
    if isinstance(output, bool) or not isinstance(output, int | str) or isinstance(index, bool) \
            or not isinstance(index, int) or index < 0:
        _fail(where, "when.output is an output index or name and when.index an element index >= 0")
    bounds = {k: data.get(k) for k in ("above", "below")}
    for key, value in bounds.items():
        if value is not None and (isinstance(value, bool) or not isinstance(value, int | float)
                                  or not math.isfinite(value)):
            _fail(where, f"when.{key} must be a number")
    if bounds["above"] is None and bounds["below"] is None:
        _fail(where, "when needs above or below")
    return Condition(output, index, bounds["above"], bounds["below"])


def parse_pipelines(text: str, where: str) -> tuple[Pipeline, ...]:
    """The pipelines of a TOML document; ``InputError`` (one line) for anything malformed."""
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise InputError(f"{where} is not valid TOML ({exc})") from None
    items = doc.get("pipeline")
    if set(doc) != {"pipeline"} or not isinstance(items, list) or not items:
        raise InputError(f"{where} must hold one or more [[pipeline]] tables and nothing else")
    pipelines, names = [], set()
    for i, item in enumerate(items):
        here = f"{where}: pipeline {i + 1}"
        unknown = sorted(set(item) - FIELDS)
        if unknown:
            _fail(here, f"unknown field(s) {unknown}; allowed: {sorted(FIELDS)}")
        for key in ("name", "port", "sensor", "model"):
            if not isinstance(item.get(key), str) or not item[key]:
                _fail(here, f"{key} must be given as text")
        if not _NAME.fullmatch(item["name"]) or item["name"] in names:
            _fail(here, f"name {item['name']!r} must be unique, 1-64 letters, digits, _ or -")
        names.add(item["name"])
        period = item.get("period_ms")
        window = item.get("window", 1)
        cooldown = item.get("cooldown_s", 0)
        if isinstance(period, bool) or not isinstance(period, int) or not 10 <= period <= 3_600_000:
            _fail(here, "period_ms must be a whole number of milliseconds from 10 to 3600000")
        if isinstance(window, bool) or not isinstance(window, int) or not 1 <= window <= 65536:
            _fail(here, "window must be a whole number of readings from 1 to 65536")
        if isinstance(cooldown, bool) or not isinstance(cooldown, int | float) or not 0 <= cooldown < math.inf:
            _fail(here, "cooldown_s must be a number of seconds >= 0")
        for key in ("ask", "llm"):
            if item.get(key) is not None and not isinstance(item[key], str):
                _fail(here, f"{key} must be text")
        if not isinstance(item.get("event", True), bool):
            _fail(here, "event must be true or false")
        if item.get("ask"):
            try:
                item["ask"].format(sensor="s", score=0.0, values=[0.0], model="m", pipeline="p")
            except (KeyError, IndexError, ValueError) as exc:
                _fail(here, f"ask may use {{sensor}}, {{score}}, {{values}}, {{model}} and {{pipeline}} ({exc})")
        pipelines.append(Pipeline(
            name=item["name"], port=item["port"], sensor=item["sensor"], period_ms=period, model=item["model"],
            window=window, when=_condition(here, item["when"]) if "when" in item else None,
            event=item.get("event", True), ask=item.get("ask"), llm=item.get("llm"), cooldown_s=float(cooldown),
        ))
    return tuple(pipelines)


def load_pipelines(path: Path) -> tuple[Pipeline, ...]:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InputError(f"--pipeline {path} does not exist; give a TOML file of [[pipeline]] tables") from None
    except UnicodeDecodeError:
        raise InputError(f"--pipeline {path} is not UTF-8 text") from None
    return parse_pipelines(text, str(path))
