"""Over-the-air installs: `edge-os device ota` on a real mosquitto broker downloads a package
served over HTTP (Range requests), resumes a cut download and installs it like `flash`."""

from __future__ import annotations

import json
import subprocess
import threading

import pytest

from edge_os.deploy.publish import PackageServer, _Handler
from tests.integration.deploy.helpers import EDGE_OS, edge_os, one_error_line, release, status


@pytest.fixture
def ota_device(mosquitto, device):
    """`edge-os device ota` running for ``device`` as dev1, subscribed when this returns."""
    proc = subprocess.Popen([EDGE_OS, "device", "ota", str(device), "--mqtt", mosquitto.url, "--device-id", "dev1"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    line = proc.stdout.readline()
    assert "waiting for jobs on edge-os/dev1/ota/job" in line, proc.stderr.read()
    yield device
    proc.terminate()
    proc.wait(timeout=30)


class _CutOnce(_Handler):
    """Serves like `edge-os publish`, but the first download of ``model.so`` stops halfway (a web
    server that goes away mid-transfer)."""

    def do_GET(self):
        if self.path.endswith("/model.so") and not self.server.cut:
            self.server.cut = True
            path = self.server.package / "model.so"
            size = path.stat().st_size
            self.send_response(200)
            self.send_header("Content-Length", str(size))
            self.end_headers()
            half = path.read_bytes()[: size // 2]
            self.wfile.write(half)
            self.server.count(len(half))
            self.close_connection = True
            return
        super().do_GET()


def _serve(package, handler=None):
    server = PackageServer(package, ("127.0.0.1", 0))
    server.cut = False
    if handler:
        server.RequestHandlerClass = handler
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}"


def ota_flash(mosquitto, package, url, *extra):
    return edge_os("flash", package, f"{mosquitto.url}/dev1", "--url", url, "--json", "--wait", "120", *extra)


def test_an_ota_job_downloads_installs_and_reports_each_state(tmp_path, mosquitto, ota_device, signer, tiny_pair):
    package = release(tiny_pair[0], tmp_path / "v1", signer[0], 1)
    server, url = _serve(package)
    try:
        run = ota_flash(mosquitto, package, url)
    finally:
        server.shutdown()
    assert run.returncode == 0, run.stderr
    states = [json.loads(line)["event"] for line in run.stdout.splitlines()]
    assert states[0] == "queued" and "downloading" in states and "installing" in states
    assert states[-2:] == ["succeeded", "result"]
    assert status(ota_device)["tiny"]["version"] == 1


def test_a_cut_download_resumes_and_fetches_little_more_than_the_package(tmp_path, mosquitto, ota_device, signer,
                                                                         tiny_pair):
    package = release(tiny_pair[0], tmp_path / "v1", signer[0], 1)
    server, url = _serve(package, _CutOnce)
    try:
        run = ota_flash(mosquitto, package, url)
    finally:
        server.shutdown()
    assert run.returncode == 0, run.stderr
    assert server.cut
    result = json.loads(run.stdout.splitlines()[-1])
    events = [json.loads(line) for line in run.stdout.splitlines()]
    assert any("retrying" in e.get("waiting", "") for e in events)
    print(f"\nserved {server.bytes_sent} bytes for a {result['package_bytes']}-byte package "
          f"({server.bytes_sent / result['package_bytes']:.3f}x)")
    assert server.bytes_sent <= 1.05 * result["package_bytes"]
    assert status(ota_device)["tiny"]["version"] == 1


def test_a_refused_ota_package_fails_the_job_with_the_reason(tmp_path, mosquitto, ota_device, signer, tiny_pair):
    from edge_os.deploy import keys

    package = release(tiny_pair[0], tmp_path / "evil", keys.generate(tmp_path / "evil-key")[0], 1)
    server, url = _serve(package)
    try:
        line = one_error_line(ota_flash(mosquitto, package, url))
    finally:
        server.shutdown()
    assert "job failed" in line and "not trusted" in line
    assert "tiny" not in status(ota_device)
