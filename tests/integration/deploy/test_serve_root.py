"""`edge-os serve --root ROOT`: one running process serves a device store's installed package and
follows each flash and rollback without a restart; a store it cannot serve is one line."""

from __future__ import annotations

from tests.integration.deploy.helpers import edge_os, one_error_line, release
from tests.integration.deploy.serve_root import ask, start_devices
from tests.waiting import wait_until

PROMPT = "Once upon a time"


def test_a_running_serve_follows_a_flash_and_a_rollback(tmp_path, mosquitto, device, signer, tiny_pair):
    v1 = release(tiny_pair[0], tmp_path / "v1", signer[0], 1)
    v2 = release(tiny_pair[1], tmp_path / "v2", signer[0], 2)
    assert edge_os("flash", v1, f"file://{device}", "--no-progress").returncode == 0
    served = start_devices(mosquitto, {"dev1": device}, tmp_path)["dev1"]
    try:
        assert served.ps()["tiny"]["version"] == 1
        first = ask(mosquitto, "dev1", PROMPT)
        assert first["type"] == "final", first
        assert served.ps()["tiny"]["loaded"]

        run = edge_os("flash", v2, f"file://{device}", "--no-progress")
        assert run.returncode == 0, run.stderr
        row = wait_until(lambda: (m := served.ps()["tiny"])["version"] == 2 and m, 60, interval=0.2,
                         what="serve following the flash to version 2")
        assert row["package"].endswith("/b")
        second = ask(mosquitto, "dev1", PROMPT)
        assert second["type"] == "final", second
        assert second["text"] != first["text"]  # other weights, same greedy prompt: the new version answers

        assert edge_os("device", "rollback", device, "tiny").returncode == 0
        wait_until(lambda: served.ps()["tiny"]["version"] == 1, 60, interval=0.2, what="serve following a rollback")
        assert ask(mosquitto, "dev1", PROMPT)["text"] == first["text"]
        assert served.proc.poll() is None  # the same process all along
        log = served.log.read_text()
        assert "serving tiny version 2" in log and "serving tiny version 1" in log
    finally:
        served.stop()


def test_serve_root_refuses_an_uninitialised_or_empty_store(tmp_path, device):
    line = one_error_line(edge_os("serve", "--root", tmp_path / "nothing"))
    assert "is not a device store" in line and "edge-os device init" in line
    line = one_error_line(edge_os("serve", "--root", device))
    assert "has no installed model to serve" in line and "edge-os flash" in line and "--mqtt" in line
