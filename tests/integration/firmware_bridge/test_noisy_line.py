"""The whole stack across a corrupting line: nothing corrupted is accepted, no command runs twice.

Figures are printed (run with -s) so that they can be quoted; the assertions hold them exact:
the host accepts exactly the frames the line delivered clean (so it resynchronises within one
frame), and the simulator's journal holds each acknowledged command exactly once.
"""

from __future__ import annotations

import json
from dataclasses import asdict

import pytest

from firmware_bridge import Device, DeviceError, NotAnswering
from firmware_bridge.framing import Frame
from firmware_bridge.link import LinkConfig
from firmware_bridge.messages import COMMAND, MsgType
from tests.waiting import wait_until

from .proxy import CorruptingProxy, Noise
from .sim import Simulator

NOISY = LinkConfig(timeout=0.05, retries=12)


def run_noisy_session(sim: Simulator, operations: int, seed: int) -> dict:
    proxy = CorruptingProxy(sim.path, Noise(), seed=seed)
    accepted: list[Frame] = []
    outcomes: list[bool] = []  # per command: acknowledged?
    try:
        dev = Device.open(proxy.host_path, NOISY, hello_retries=60)  # ~180-byte answer: often hit
        dev.link.trace = accepted.append
        stream = dev.stream("temperature", 0.02)
        for i in range(operations):
            try:
                if i % 3 == 0:
                    dev.read("light")
                else:
                    dev.command("fan", i % 256)
                    outcomes.append(True)
            except DeviceError:
                if i % 3:
                    outcomes.append(False)
        stream.close()
        # Nothing more reaches the host, so it has read the line once it accepted every intact
        # frame the proxy passed it.
        proxy.cut_to_host.set()
        wait_until(lambda: dev.stats.frames_ok == proxy.to_host.clean, 5, what="every intact frame accepted")
        host = dev.stats
        dev.close()
    finally:
        proxy.close()  # every byte relayed to the simulator is on its line now
    device = sim.stop()  # the simulator reads its line dry before it reports

    # 0 corrupted frames accepted, and resynchronisation within one frame, in both directions.
    sent_to_host = set(proxy.to_host.sent)
    assert all(frame in sent_to_host for frame in accepted)
    assert host.frames_ok == proxy.to_host.clean, (host, proxy.to_host)
    assert device["frames_ok"] == proxy.to_device.clean, (device, proxy.to_device)

    # Every command ran exactly once if acknowledged, at most once if reported failed.
    commands: dict[int, int] = {}  # seq -> value, in the order the host first sent them
    for frame in proxy.to_device.sent:
        if frame.type == MsgType.COMMAND:
            commands.setdefault(frame.seq, COMMAND.unpack(frame.payload)[1])
    assert len(commands) == len(outcomes)
    executed: dict[int, int] = {}
    for entry in sim.commands():
        assert entry["actuator"] == "fan" and commands.get(entry["seq"]) == entry["value"], entry
        executed[entry["seq"]] = executed.get(entry["seq"], 0) + 1
    for seq, acknowledged in zip(commands, outcomes, strict=True):
        assert executed.get(seq, 0) == 1 if acknowledged else executed.get(seq, 0) <= 1

    figures = {
        "noise": asdict(proxy.noise),
        "to_device": {k: v for k, v in vars(proxy.to_device).items() if not k.startswith("_") and k != "sent"},
        "to_host": {k: v for k, v in vars(proxy.to_host).items() if not k.startswith("_") and k != "sent"},
        "host": asdict(host),
        "device": device,
        "commands": {
            "sent": len(outcomes),
            "acknowledged": outcomes.count(True),
            "failed": outcomes.count(False),
            "executed_once": sum(1 for n in executed.values() if n == 1),
            "executed_twice_or_more": sum(1 for n in executed.values() if n > 1),
        },
    }
    print(json.dumps(figures, indent=1))
    return figures


def test_failed_command_ran_at_most_once(sim: Simulator) -> None:
    """Every answer is lost: the command is reported failed, and the device, which received every
    retransmission, ran it once."""
    proxy = CorruptingProxy(sim.path, Noise(ber=0, drop=0, insert=0, burst=0), seed=1)
    try:
        with Device.open(proxy.host_path, LinkConfig(timeout=0.05, retries=5)) as dev:
            proxy.cut_to_host.set()
            with pytest.raises(NotAnswering):
                dev.command("fan", 42)
            proxy.cut_to_host.clear()
            dev.command("fan", 43)
            assert (dev.stats.retries, dev.stats.failures) == (5, 1)
    finally:
        proxy.close()
    assert sim.stop()["duplicates"] == 5
    assert [c["value"] for c in sim.commands()] == [42, 43]


def test_noisy_line(sim: Simulator) -> None:
    figures = run_noisy_session(sim, operations=150, seed=6)
    assert figures["to_host"]["damaged"] > 0 and figures["to_device"]["damaged"] > 0  # the noise bit
    assert figures["host"]["retries"] > 0


@pytest.mark.slow
def test_noisy_line_long(sim: Simulator) -> None:
    figures = run_noisy_session(sim, operations=3000, seed=7)
    assert figures["commands"]["acknowledged"] >= 0.99 * figures["commands"]["sent"]
