"""asyncio face of :class:`firmware_bridge.device.Device`.

    async with AsyncDevice("/dev/ttyUSB0") as dev:
        reading = await dev.read("temperature")
        await dev.command("fan", 128)
        async with dev.subscribe("light", period_s=0.5) as readings:
            async for reading in readings:
                ...

Requests run on worker threads (the link is stop-and-wait, so they queue up in order); stream
readings hop from the reader thread onto the event loop.
"""

from __future__ import annotations

import asyncio

from firmware_bridge.device import Device, Subscription
from firmware_bridge.link import LinkConfig, LinkStats
from firmware_bridge.messages import Capabilities, Reading


class AsyncReadingStream:
    """``async with`` starts the stream on the device and stops it on exit; iterate in between."""

    def __init__(self, device: Device, sensor: str, period_s: float) -> None:
        self._device, self._sensor, self._period_s = device, sensor, period_s
        self._queue: asyncio.Queue[Reading] = asyncio.Queue()
        self._subscription: Subscription | None = None

    async def __aenter__(self) -> AsyncReadingStream:
        loop = asyncio.get_running_loop()

        def put(reading: Reading) -> None:  # on the link's reader thread
            loop.call_soon_threadsafe(self._queue.put_nowait, reading)

        self._subscription = await asyncio.to_thread(self._device.subscribe, self._sensor, self._period_s, put)
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._subscription is not None:
            await asyncio.to_thread(self._subscription.close)

    def __aiter__(self) -> AsyncReadingStream:
        return self

    async def __anext__(self) -> Reading:
        return await self._queue.get()


class AsyncDevice:
    """Opens ``url`` and does the HELLO handshake on ``async with``."""

    def __init__(self, url: str, config: LinkConfig | None = None) -> None:
        self._url, self._config = url, config
        self._device: Device | None = None

    async def __aenter__(self) -> AsyncDevice:
        self._device = await asyncio.to_thread(Device.open, self._url, self._config)
        return self

    async def __aexit__(self, *exc: object) -> None:
        await asyncio.to_thread(self.device.close)

    @property
    def device(self) -> Device:
        if self._device is None:
            raise RuntimeError("use `async with AsyncDevice(...)` first")
        return self._device

    @property
    def capabilities(self) -> Capabilities | None:
        return self.device.capabilities

    @property
    def stats(self) -> LinkStats:
        return self.device.stats

    async def read(self, sensor: str) -> Reading:
        return await asyncio.to_thread(self.device.read, sensor)

    async def command(self, actuator: str, value: int) -> None:
        await asyncio.to_thread(self.device.command, actuator, value)

    async def ping(self, data: bytes = b"edge-os") -> float:
        return await asyncio.to_thread(self.device.ping, data)

    def subscribe(self, sensor: str, period_s: float) -> AsyncReadingStream:
        return AsyncReadingStream(self.device, sensor, period_s)
