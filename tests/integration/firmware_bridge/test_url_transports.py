"""Ports by URL: the simulator reached over socket:// and rfc2217:// (pyserial's own server side)."""

from __future__ import annotations

import select
import socket
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import SimpleNamespace

import serial
import serial.rfc2217

from firmware_bridge import Device

from .sim import Simulator


class PtyPort(serial.Serial):
    """A pty has no modem lines (their ioctls fail): report them low and ignore DTR/RTS."""

    cts = dsr = ri = cd = property(lambda self: False)

    def _update_dtr_state(self) -> None:
        pass

    def _update_rts_state(self) -> None:
        pass


@contextmanager
def tcp_server(pty_path: str, rfc2217: bool) -> Iterator[int]:
    """Serve the pty on a loopback port to one client; yields the port number."""
    listener = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()

    def serve() -> None:
        conn, _ = listener.accept()
        with conn, PtyPort(pty_path, timeout=0) as port:
            # PortManager answers telnet negotiation through anything with write().
            manager = serial.rfc2217.PortManager(port, SimpleNamespace(write=conn.sendall)) if rfc2217 else None
            to_port: Callable[[bytes], bytes] = (lambda d: b"".join(manager.filter(d))) if manager else (lambda d: d)
            to_net: Callable[[bytes], bytes] = (lambda d: b"".join(manager.escape(d))) if manager else (lambda d: d)
            while not stop.is_set():
                ready, _, _ = select.select([conn, port.fileno()], [], [], 0.02)
                if conn in ready:
                    data = conn.recv(4096)
                    if not data:
                        return
                    port.write(to_port(data))
                if port.fileno() in ready:
                    conn.sendall(to_net(port.read(4096)))

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1]
    finally:
        stop.set()
        thread.join(2)
        listener.close()


def test_socket_url(sim: Simulator) -> None:
    with tcp_server(sim.path, rfc2217=False) as port:
        with Device.open(f"socket://127.0.0.1:{port}") as dev:
            assert dev.capabilities.firmware == "edge-bridge-sim"
            dev.command("relay", 1)
            assert 0 <= dev.read("humidity").value <= 100
    assert [c["actuator"] for c in sim.commands()] == ["relay"]


def test_rfc2217_url(sim: Simulator) -> None:
    with tcp_server(sim.path, rfc2217=True) as port:
        with Device.open(f"rfc2217://127.0.0.1:{port}") as dev:
            assert dev.capabilities.firmware == "edge-bridge-sim"
            dev.command("led", 1)
            assert dev.read("button").value in (0.0, 1.0)
    assert [c["actuator"] for c in sim.commands()] == ["led"]
