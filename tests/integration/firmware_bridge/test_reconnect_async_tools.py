"""Reconnection, the asyncio API, discovery and agent tools against the real simulator."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest

from firmware_bridge import AsyncDevice, Device, device_tools, discover
from firmware_bridge.errors import InputError
from tests.waiting import wait_until

from .sim import Simulator, pty_pair


def test_reconnects_and_resumes_the_stream(sim_binary: Path, tmp_path) -> None:
    """The board is unplugged (the simulator dies, its pty vanishes) and comes back."""
    link = tmp_path / "ttyEDGE"
    first = Simulator.start(sim_binary, tmp_path / "journal.jsonl", link=link)
    readings = []
    with Device.open(str(link)) as dev:
        dev.subscribe("light", 0.02, readings.append)
        wait_until(lambda: len(readings) >= 3, 2, what="three readings")
        first.stop()
        wait_until(lambda: not dev.link.connected, 2, what="the link down")
        second = Simulator.start(sim_binary, tmp_path / "journal.jsonl", link=link)
        try:
            wait_until(lambda: dev.link.connected, 5, what="the link back")
            before = len(readings)
            wait_until(lambda: len(readings) >= before + 3, 5, what="the stream resumed")
            dev.command("relay", 1)  # requests work on the new session
            assert dev.stats.reconnects == 1
        finally:
            second.stop()
    assert [c["actuator"] for c in second.commands()] == ["relay"]


def test_asyncio_api(sim: Simulator) -> None:
    async def main() -> tuple[float, list[float], float]:
        async with AsyncDevice(sim.path) as dev:
            reading = await dev.read("temperature")
            await dev.command("fan", 10)
            async with dev.subscribe("light", period_s=0.02) as stream:
                values = []
                async for r in stream:
                    values.append(r.value)
                    if len(values) == 5:
                        break
            rtt = await dev.ping()
            return reading.value, values, rtt

    temperature, light, rtt = asyncio.run(asyncio.wait_for(main(), 10))
    assert -40 <= temperature <= 85 and len(light) == 5 and rtt > 0
    assert [(c["actuator"], c["value"]) for c in sim.commands()] == [("fan", 10)]


def test_discovery_finds_only_the_device(sim: Simulator) -> None:
    master, silent = pty_pair()  # a port where nothing answers
    try:
        devices = discover([silent, sim.path, "/dev/does-not-exist"])
        try:
            assert [d.link.url for d in devices] == [sim.path]
            assert devices[0].capabilities.firmware == "edge-bridge-sim"
        finally:
            for d in devices:
                d.close()
    finally:
        os.close(master)


def test_tools_from_capabilities(sim: Simulator) -> None:
    with Device.open(sim.path) as dev:
        tools = {t.name: t for t in device_tools(dev, prefix="bench_")}
        assert sorted(tools) == sorted(
            f"bench_{n}"
            for n in [
                "read_temperature",
                "read_humidity",
                "read_light",
                "read_button",
                "set_led",
                "set_relay",
                "set_fan",
            ]
        )
        fan, led = tools["bench_set_fan"], tools["bench_set_led"]
        assert fan.parameters["properties"]["value"] == {"type": "integer", "minimum": 0, "maximum": 255}
        assert led.parameters["properties"]["value"] == {"type": "integer", "enum": [0, 1]}
        assert fan.parameters["required"] == ["value"] and "0 to 255" in fan.description
        assert "°C" in tools["bench_read_temperature"].description

        result = tools["bench_read_temperature"].call({})
        assert result["unit"] == "°C" and -40 <= result["value"] <= 85
        assert fan.call({"value": 128.0}) == {"actuator": "fan", "value": 128, "ok": True}
        for bad in [{"value": 256}, {"value": "high"}, {"value": 1.5}, {}, {"value": 1, "speed": 2}]:
            with pytest.raises(InputError):
                fan.call(bad)
        with pytest.raises(InputError):
            tools["bench_read_light"].call({"now": True})
    assert [(c["actuator"], c["value"]) for c in sim.commands()] == [("fan", 128)]
