"""Thermal and power governor: temperature and battery in, a ``Throttle`` for the loop out.

The thermal side is a multi-stage thermostat. Levels step up as the hottest watched zone nears
the setpoint and step back down one at a time once it is ``hysteresis`` below the level's entry
temperature:

    NORMAL            full speed
    SLOW_1..SLOW_3    pauses between decode steps (75 %, 50 %, 25 % duty), fewer threads for
                      new loads, smaller batches
    PAUSE_BACKGROUND  BACKGROUND requests stop stepping
    FALLBACK          new requests are handed to the fallback path (too_hot, fallback=True)
    REFUSE            no local work at all; queued requests are handed off too

The setpoint is the target descriptor's, lowered when needed to stay ``trip_margin_c`` below the
device's own lowest passive/hot/critical trip point, so edge-os slows down before the kernel does.
"""

from __future__ import annotations

import enum
import logging
from dataclasses import dataclass, replace

from edge_os.scheduler.probes.power import PowerReading
from edge_os.scheduler.probes.thermal import ThermalReading

log = logging.getLogger(__name__)


class Level(enum.IntEnum):
    NORMAL = 0
    SLOW_1 = 1
    SLOW_2 = 2
    SLOW_3 = 3
    PAUSE_BACKGROUND = 4
    FALLBACK = 5
    REFUSE = 6


@dataclass(frozen=True)
class Throttle:
    """What the loop may do right now."""

    duty: float = 1.0  # share of wall time spent in engine steps; pauses fill the rest
    thread_fraction: float = 1.0  # of the configured threads, for engines loaded now
    max_batch: int | None = None  # sequences per engine step (None: all)
    pause_background: bool = False
    refuse_new: str | None = None  # Refused code for new requests (they go to the fallback path)
    stop: bool = False  # no engine steps; queued requests are handed off

    def strictest(self, other: Throttle) -> Throttle:
        """The field-by-field stricter of two throttles."""
        batches = [b for b in (self.max_batch, other.max_batch) if b is not None]
        return Throttle(
            duty=min(self.duty, other.duty),
            thread_fraction=min(self.thread_fraction, other.thread_fraction),
            max_batch=min(batches) if batches else None,
            pause_background=self.pause_background or other.pause_background,
            refuse_new=self.refuse_new or other.refuse_new,
            stop=self.stop or other.stop,
        )


_SLOW_3 = Throttle(duty=0.25, thread_fraction=0.25, max_batch=1)
LEVEL_THROTTLE: dict[Level, Throttle] = {
    Level.NORMAL: Throttle(),
    Level.SLOW_1: Throttle(duty=0.75),
    Level.SLOW_2: Throttle(duty=0.5, thread_fraction=0.5, max_batch=4),
    Level.SLOW_3: _SLOW_3,
    Level.PAUSE_BACKGROUND: replace(_SLOW_3, pause_background=True),
    Level.FALLBACK: replace(_SLOW_3, pause_background=True, refuse_new="too_hot"),
    Level.REFUSE: replace(_SLOW_3, pause_background=True, refuse_new="too_hot", stop=True),
}


@dataclass(frozen=True)
class GovernorConfig:
    setpoint_c: float = 75.0
    hysteresis_c: float = 5.0
    trip_margin_c: float = 5.0  # keep the setpoint at least this far below the device's trip points
    enabled: bool = True


@dataclass(frozen=True)
class PowerConfig:
    low_battery_pct: int = 20  # on battery at or below: background paused, half duty
    critical_battery_pct: int = 10  # and at or below this: new requests go to the fallback path


def effective_setpoint(config: GovernorConfig, lowest_trip_c: float | None) -> float:
    """The configured setpoint, lowered to stay ``trip_margin_c`` below the device's own trip."""
    if lowest_trip_c is None:
        return config.setpoint_c
    return min(config.setpoint_c, lowest_trip_c - config.trip_margin_c)


def entry_temps(setpoint_c: float, hysteresis_c: float) -> tuple[float, ...]:
    """Temperature at which each level above NORMAL is entered, evenly from S-H up to S-H/6.

    REFUSE is entered before the setpoint itself, so work stops while still below it.
    """
    top = len(Level) - 1
    span = hysteresis_c * 5 / 6
    return tuple(setpoint_c - hysteresis_c + span * k / (top - 1) for k in range(top))


def next_level(current: Level, temp_c: float, entries: tuple[float, ...], hysteresis_c: float) -> Level:
    """Jump up to the highest level whose entry ``temp_c`` reached; else step down one level
    once ``temp_c`` is ``hysteresis_c`` below the current level's entry; else stay."""
    up = max((k for k, entry in enumerate(entries, start=1) if temp_c >= entry), default=0)
    if up > current:
        return Level(up)
    if current > Level.NORMAL and temp_c < entries[current - 1] - hysteresis_c:
        return Level(current - 1)
    return current


def power_throttle(reading: PowerReading, config: PowerConfig) -> tuple[Throttle, str]:
    """The low-battery policy: a throttle and its reason (empty when it does not apply)."""
    battery = reading.battery
    if not reading.on_battery or battery is None or battery.capacity is None:
        return Throttle(), ""
    if battery.capacity <= config.critical_battery_pct:
        return (
            Throttle(duty=0.5, pause_background=True, refuse_new="low_battery"),
            f"battery {battery.capacity}% <= {config.critical_battery_pct}%: new requests go to the fallback path",
        )
    if battery.capacity <= config.low_battery_pct:
        return (
            Throttle(duty=0.5, pause_background=True),
            f"battery {battery.capacity}% <= {config.low_battery_pct}%: background paused, half duty",
        )
    return Throttle(), ""


class Governor:
    """Holds the current level and logs every change with its reason; the decisions are the
    pure functions above."""

    def __init__(self, config: GovernorConfig, power: PowerConfig):
        self.config = config
        self.power = power
        self.level = Level.NORMAL
        self.reason = "no reading yet"
        self.setpoint_c = config.setpoint_c
        self.temp_c: float | None = None
        self.zone: str | None = None
        self.power_reason = ""
        self.throttle = Throttle()

    def update(self, thermal: ThermalReading, power: PowerReading) -> Throttle:
        """Take new readings and return the throttle to apply until the next ones."""
        setpoint = effective_setpoint(self.config, thermal.lowest_trip_c())
        if setpoint != self.setpoint_c:
            log.info("thermal setpoint %.1f C (configured %.1f C, device trip %s C)",
                     setpoint, self.config.setpoint_c, thermal.lowest_trip_c())
            self.setpoint_c = setpoint
        hottest = thermal.hottest
        self.temp_c, self.zone = (hottest.temp_c, hottest.name) if hottest else (None, None)
        if not self.config.enabled:
            level, reason = Level.NORMAL, "governor disabled"
        elif hottest is None:
            level, reason = Level.NORMAL, "no readable thermal zone"
        else:
            entries = entry_temps(setpoint, self.config.hysteresis_c)
            level = next_level(self.level, hottest.temp_c, entries, self.config.hysteresis_c)
            reason = self.reason
            if level != self.level:
                verb = "above" if level > self.level else "below"
                edge = entries[max(level, self.level) - 1] - (0 if level > self.level else self.config.hysteresis_c)
                reason = f"{hottest.name} {hottest.temp_c:.1f} C {verb} {edge:.1f} C (setpoint {setpoint:.1f} C)"
        if level != self.level:
            log.warning("governor %s -> %s: %s", self.level.name, level.name, reason)
        self.level, self.reason = level, reason
        battery_throttle, power_reason = power_throttle(power, self.power)
        if power_reason != self.power_reason and power_reason:
            log.warning("power policy: %s", power_reason)
        self.power_reason = power_reason
        self.throttle = LEVEL_THROTTLE[level].strictest(battery_throttle)
        return self.throttle

    def status(self) -> dict:
        return {
            "level": self.level.name,
            "reason": self.reason,
            "power": self.power_reason or "ok",
            "setpoint_c": self.setpoint_c,
            "hottest_zone": self.zone,
            "temp_c": self.temp_c,
            "duty": self.throttle.duty,
            "max_batch": self.throttle.max_batch,
            "pause_background": self.throttle.pause_background,
            "refuse_new": self.throttle.refuse_new,
            "stop": self.throttle.stop,
        }
