"""Driving the real mosquitto_pub / mosquitto_sub clients (MQTT v5) from tests."""

from __future__ import annotations

import json
import shutil
import subprocess

MOSQUITTO_SUB = shutil.which("mosquitto_sub") or "mosquitto_sub"
MOSQUITTO_PUB = shutil.which("mosquitto_pub") or "mosquitto_pub"


def ask_with_mosquitto_clients(
    port: int, topic: str, body: dict, correlation: str, count: int = 1, timeout: int = 30
) -> list[tuple[str, dict]]:
    """Ask with mosquitto_pub (response topic and correlation data as MQTT v5 properties) and
    read ``count`` answers with mosquitto_sub, as (correlation data, JSON body).

    mosquitto_sub first opens a persistent session (``-c -x``) and exits once subscribed
    (``-E``), so the answer is queued for it even if it arrives before the second run connects.
    """
    response_topic = f"cli/answers/{correlation}"
    sub = [MOSQUITTO_SUB, "-V", "mqttv5", "-h", "127.0.0.1", "-p", str(port), "-i", f"cli-{correlation}",
           "-c", "-x", "600", "-q", "1", "-t", response_topic]  # fmt: skip
    subprocess.run([*sub, "-E"], check=True, timeout=10)
    subprocess.run(
        [MOSQUITTO_PUB, "-V", "mqttv5", "-h", "127.0.0.1", "-p", str(port), "-t", topic, "-q", "1",
         "-m", json.dumps(body),
         "-D", "publish", "response-topic", response_topic,
         "-D", "publish", "correlation-data", correlation],
        check=True, timeout=10,
    )  # fmt: skip
    done = subprocess.run(
        [*sub, "-C", str(count), "-W", str(timeout), "-F", "%D %p"],
        capture_output=True, text=True, timeout=timeout + 5,
    )  # fmt: skip
    assert done.returncode == 0, f"mosquitto_sub exited {done.returncode}: {done.stdout} {done.stderr}"
    answers = []
    for line in done.stdout.splitlines():
        corr, payload = line.split(" ", 1)
        answers.append((corr, json.loads(payload)))
    return answers
