"""`edge-os serve` stopped by SIGTERM while requests whose chat template hangs are in flight (issue
18 item 2): the process exits within a few seconds and cleanly, the request being rendered is
answered with an error and never run again, and the requests that had not started yet are resumed
after a restart on the same state. A real serve process, a real mosquitto broker."""

from __future__ import annotations

import json
import re
import shutil
import signal
import time

from edge_os.mqtt.dedup import request_key
from edge_os.runtime.chat_template import RENDER_SECONDS
from tests.integration.mqtt_harness import Requester
from tests.integration.test_cli_serve import start_serve
from tests.waiting import wait_until

# 10^12 iterations of loops the sandbox allows (each range is within its bound), with no output:
# only the render time bound stops it.
HANGS = ("{% for i in range(10000) %}{% for j in range(10000) %}{% for k in range(10000) %}"
         "{% endfor %}{% endfor %}{% endfor %}")
QUEUED = 7  # with the first one, serve's default MQTT concurrency (8): all are in the scheduler
STOP_BOUND_S = 10.0  # the render in progress ends at its bound (2 s), then serve shuts down
ANSWERED = re.compile(r"request (\w+) answered with error invalid_request: the model's chat template took longer")


def _hostile_package(tmp_path, tiny_package):
    pkg = shutil.copytree(tiny_package, tmp_path / "hostile", symlinks=True)
    manifest = json.loads((pkg / "manifest.json").read_text())
    (pkg / "manifest.json").write_text(json.dumps({**manifest, "name": "hostile", "chat_template": HANGS}))
    return pkg


def test_sigterm_stops_serve_during_hanging_renders_and_the_rendering_request_is_answered_once(
    tmp_path, mosquitto, tiny_package
):
    pkg = _hostile_package(tmp_path, tiny_package)
    log_path = tmp_path / "serve.log"
    requester = Requester(mosquitto.port, "asker")
    correlations = [b"first", *(b"queued-%d" % i for i in range(QUEUED))]
    keys = {request_key(requester.response_topic, c): c for c in correlations}
    try:
        proc, log = start_serve(tmp_path, mosquitto, "--models", str(pkg))
        try:
            requester.ask({"prompt": "hi", "max_tokens": 4}, b"first", topic="edge-os/kitchen/req")
            # The model is loaded for the first request; its render starts right after, on the same tick.
            wait_until(lambda: "loaded hostile" in log_path.read_text(), 120, what="serve loading the model")
            for correlation in correlations[1:]:  # they wait in the scheduler while the first renders
                requester.ask({"prompt": "hi", "max_tokens": 4}, correlation, topic="edge-os/kitchen/req")
            assert requester.final(b"first", timeout=60)["code"] == "invalid_request"
            # The queued ones reached the scheduler while the first rendered; the loop starts them one
            # after the other in one pass, each rendering until its bound. The first answer can come
            # before that pass begins (the loop reads its probes first), the second only from inside
            # it: once one of them is answered, the next is rendering.
            wait_until(lambda: any(requester.answers(c) for c in correlations[1:]), 60,
                       what="a queued request answered")
            proc.send_signal(signal.SIGTERM)
            signalled = time.monotonic()
            code = proc.wait(60)
            stopped_s = time.monotonic() - signalled
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait(10)
            log.close()
        first_log = log_path.read_text()
        assert code == 0, first_log[-3000:]
        assert stopped_s < STOP_BOUND_S, f"serve took {stopped_s:.1f} s to stop\n{first_log[-3000:]}"
        stopping = first_log.index("INFO edge_os.scheduler.service: stopping")
        answered_first = [m.group(1) for m in ANSWERED.finditer(first_log)]
        rendering = [m.group(1) for m in ANSWERED.finditer(first_log, stopping)]
        # The signal came while a template was rendering: that request was answered with an error.
        assert len(rendering) == 1 and rendering[0] in keys, first_log[-3000:]
        assert "Traceback" not in first_log, first_log[-3000:]

        # Restarted on the same state: the answered requests are not run again, the others resume.
        watcher = Requester(mosquitto.port, "telemetry", subscribe=("edge-os/kitchen/telemetry",))
        proc, log = start_serve(tmp_path, mosquitto, "--models", str(pkg), "--telemetry-interval", "3600")
        try:
            answers = {c: requester.final(c, timeout=120) for c in correlations}
            telemetry = wait_until(lambda: watcher.on_topic("edge-os/kitchen/telemetry"), 60,
                                   what="telemetry from the restarted serve")[0]
        finally:
            watcher.close()
            proc.terminate()
            assert proc.wait(60) == 0
            log.close()
        second_log = log_path.read_text()
        for correlation, answer in answers.items():
            assert answer["type"] == "error" and answer["code"] == "invalid_request", (correlation, answer)
            assert f"took longer than {RENDER_SECONDS:g} s" in answer["message"], answer
            assert all(a == answer for a in requester.answers(correlation)), correlation  # QoS 1 copies only
        assert telemetry["bridge"]["requests"]["resumed"] == len(correlations) - len(answered_first), telemetry
        answered_again = [m.group(1) for m in ANSWERED.finditer(second_log)]
        assert sorted(answered_first + answered_again) == sorted(keys), second_log[-3000:]
    finally:
        requester.close()
