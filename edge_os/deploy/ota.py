"""Over-the-air installs: a device told over MQTT where a package is downloads it itself with
HTTP Range requests (resumable, each file checked, the signed size a hard limit) and installs it
with the same steps as ``flash``, reporting the job on its status topic.

Topics: ``edge-os/{device}/ota/job`` takes ``{"job_id", "url"}``; ``edge-os/{device}/ota/status``
(retained) carries ``{"job_id", "state", ...}`` with state queued, downloading (``progress``,
``total``), installing, succeeded, failed or rolled back (``reason``). A job id already seen is
ignored; a newer job cancels an older one. ``edge-os/{device}/ota/device`` (retained, and the
connection's will) says whether the device takes jobs: ``{"device_id", "state": "online"|"offline",
"models": {name: version}}``; ``rollout --all`` finds devices by it.
"""

from __future__ import annotations

import http.client
import json
import logging
import queue
import random
import threading
import time
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass

from edge_os.deploy import fsutil
from edge_os.deploy.install import Installer, rollback
from edge_os.deploy.signing import SIGNATURE
from edge_os.deploy.store import Store
from edge_os.errors import EdgeOSError
from edge_os.mqtt.config import Backoff, BrokerConfig
from edge_os.mqtt.connection import Connection, Handlers, Inbound, NotConnected, Will
from edge_os.package.manifest import MANIFEST

log = logging.getLogger(__name__)
FINAL = ("succeeded", "failed", "rolled back")
CHUNK = 1 << 20
SEEN_JOBS = 100  # job ids remembered (newest kept), so a redelivered job is not run twice


def job_topic(device_id: str) -> str:
    return f"edge-os/{device_id}/ota/job"


def status_topic(device_id: str) -> str:
    return f"edge-os/{device_id}/ota/status"


def presence_topic(device_id: str) -> str:
    return f"edge-os/{device_id}/ota/device"


PRESENCE_WILDCARD = presence_topic("+")


def remember(seen: list[str], job_id: str, limit: int = SEEN_JOBS) -> list[str]:
    """``seen`` (oldest first) with ``job_id`` appended as the newest, trimmed to the newest ``limit``."""
    return ([seen_id for seen_id in seen if seen_id != job_id] + [job_id])[-limit:]


def presence(device_id: str, store: Store | None) -> bytes:
    """The retained presence message: online with the installed versions, or offline (``store`` None)."""
    body = {"device_id": device_id, "state": "offline" if store is None else "online", "ts": time.time()}
    if store is not None:
        body["models"] = {m["name"]: m["version"] for m in store.status()["models"]}
    return json.dumps(body).encode()


class Cancelled(Exception):
    """A newer job arrived."""


@dataclass
class Job:
    job_id: str
    url: str
    action: str = "install"  # or "rollback" (of model ``name``, as a stopped rollout asks)
    name: str | None = None


class OtaAgent:
    """Runs OTA jobs for one device store; ``start()``, then ``stop()``."""

    def __init__(self, store: Store, broker: BrokerConfig, device_id: str, backoff: Backoff | None = None,
                 give_up_s: float = 3600.0):
        self.store = store
        self.device_id = device_id
        self.backoff = backoff or Backoff(initial_s=0.2, max_s=5.0)
        self.give_up_s = give_up_s
        self._jobs: queue.Queue[Job] = queue.Queue()
        self._newest: str | None = None
        self._stop = threading.Event()
        self._state_path = store.root / "ota.json"
        self._rng = random.Random()
        self.conn = Connection(broker, f"edge-os-ota-{device_id}", (job_topic(device_id),),
                               Handlers(message=self._on_message, connected=self._announce),
                               will=Will(presence_topic(device_id), presence(device_id, None)),
                               backoff=Backoff(initial_s=0.1, max_s=2.0))
        self._worker = threading.Thread(target=self._work, name="ota", daemon=True)

    def start(self) -> OtaAgent:
        self.conn.start()
        self._worker.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self.conn.stop(farewell=(presence_topic(self.device_id), presence(self.device_id, None)))

    def _announce(self) -> None:
        """Say (retained) that this device takes jobs, and which versions it runs."""
        try:
            self.conn.publish(presence_topic(self.device_id), presence(self.device_id, self.store), retain=True)
        except (NotConnected, OSError, ValueError) as exc:
            log.warning("cannot announce the device: %s", exc)

    # --- jobs in ---------------------------------------------------------------------------------
    def _seen(self) -> list[str]:
        """Ids of the jobs already run, oldest first (at most ``SEEN_JOBS``)."""
        return list(fsutil.read_json(self._state_path, {"seen": []})["seen"])

    def _on_message(self, message: Inbound) -> None:
        try:
            data = json.loads(message.payload)
            job = Job(str(data["job_id"]), str(data.get("url", "")).rstrip("/"), str(data.get("action", "install")),
                      data.get("name"))
        except (ValueError, KeyError, TypeError):
            log.warning("ignoring a malformed OTA job: %r", message.payload[:200])
            return
        if job.job_id in self._seen() or job.job_id == self._newest:
            return  # a repeated job id (a redelivery, or sent twice) is harmless
        self._newest = job.job_id
        self._report(job, "queued")
        self._jobs.put(job)

    # --- the worker ------------------------------------------------------------------------------
    def _report(self, job: Job, state: str, **details) -> None:
        payload = json.dumps({"job_id": job.job_id, "state": state, "at": time.time(), **details}).encode()
        deadline = time.monotonic() + 30
        while not self._stop.is_set():
            try:
                self.conn.publish(status_topic(self.device_id), payload, retain=True)
                return
            except NotConnected:
                if state not in FINAL or time.monotonic() > deadline:
                    return  # progress may be dropped while offline; a final state is retried
                time.sleep(0.2)

    def _work(self) -> None:
        while not self._stop.is_set():
            try:
                job = self._jobs.get(timeout=0.2)
            except queue.Empty:
                continue
            if job.job_id != self._newest:
                continue  # superseded while it waited
            try:
                self._run(job)
            except Cancelled:
                self._report(job, "failed", reason="cancelled by a newer job")
            except EdgeOSError as exc:
                self._report(job, "failed", reason=str(exc))
            except Exception as exc:
                log.exception("OTA job %s", job.job_id)
                self._report(job, "failed", reason=f"internal error: {exc}")
            fsutil.write_json(self._state_path, {"seen": remember(self._seen(), job.job_id)})
            self._announce()

    def _check(self, job: Job) -> None:
        if self._stop.is_set() or job.job_id != self._newest:
            raise Cancelled()

    def _fetch(self, job: Job, rel: str, start: int = 0, limit: int | None = None):
        """Yield the bytes of ``rel`` from ``start`` (at most ``limit``), retrying with backoff while
        the server is away, until the job is cancelled or ``give_up_s`` passes."""
        attempt, began = 0, time.monotonic()
        while True:
            self._check(job)
            request = urllib.request.Request(f"{job.url}/{rel}", headers={"Range": f"bytes={start}-"} if start else {})
            try:
                with urllib.request.urlopen(request, timeout=30) as response:
                    if start and response.status != 206:
                        raise EdgeOSError(f"{job.url} ignores Range requests; serve it with `edge-os publish`")
                    attempt = 0
                    while limit is None or limit > 0:
                        block = response.read(CHUNK if limit is None else min(CHUNK, limit))
                        if not block:
                            break
                        start += len(block)
                        limit = None if limit is None else limit - len(block)
                        yield block
                        self._check(job)
                    if limit is None or limit == 0:
                        return
                    why = "the server closed the connection mid-file"
            except urllib.error.HTTPError as exc:
                if exc.code == 404:
                    raise EdgeOSError(f"{job.url}/{rel} does not exist (HTTP 404); check the job's URL") from None
                why = f"HTTP {exc.code}"
            except (OSError, http.client.HTTPException) as exc:  # refused, reset, cut mid-body
                why = str(exc) or type(exc).__name__
            if time.monotonic() - began > self.give_up_s:
                raise EdgeOSError(f"{job.url} unreachable for {self.give_up_s:g} s ({why}); send the job again")
            self._report(job, "downloading", waiting=f"server unreachable ({why}); retrying")
            self._stop.wait(self.backoff.delay(attempt, self._rng))
            attempt += 1

    def _run(self, job: Job) -> None:
        if job.action == "rollback":
            result = rollback(self.store, str(job.name))
            self._report(job, "succeeded", **{k: v for k, v in result.items() if k != "result"})
            return
        manifest = b"".join(self._fetch(job, MANIFEST, limit=None))
        sig = b"".join(self._fetch(job, SIGNATURE, limit=None))
        with self.store.locked():
            installer = Installer(self.store)
            plan = installer.preflight(manifest, sig)
            total = sum(m["size"] for m in plan.missing.values())
            done = sum(m["have"] for m in plan.missing.values())
            downloaded, last = 0, 0.0
            self._report(job, "downloading", progress=done, total=total, name=plan.name, version=plan.version)
            for rel, info in plan.files.items():
                sha = info["sha256"]
                if sha not in plan.missing or self.store.has_object(sha):
                    continue
                have = self.store.partial_size(sha)
                if info["size"] == 0:
                    installer.receive(sha, 0, b"")  # an empty file: nothing to download, but it must be recorded
                for block in self._fetch(job, rel, have, limit=info["size"] - have):
                    have = installer.receive(sha, have, block)
                    done += len(block)
                    downloaded += len(block)
                    if time.monotonic() - last > 0.5:
                        last = time.monotonic()
                        self._report(job, "downloading", progress=done, total=total, downloaded=downloaded)
            self._report(job, "installing", name=plan.name, version=plan.version)
            result = installer.install(manifest, sig)
        state = {"installed": "succeeded", "unchanged": "succeeded"}.get(result["result"], result["result"])
        package_bytes = len(manifest) + len(sig) + sum(i["size"] for i in plan.files.values())
        self._report(job, state, downloaded=downloaded, package_bytes=package_bytes,
                     **{k: v for k, v in result.items() if k != "result"})


def send_job(broker: BrokerConfig, device_id: str, url: str, timeout: float, on_status=lambda s: None,
             **extra) -> dict:
    """Send an OTA job (``extra``: ``action="rollback", name=...``) and wait for its final status
    (the device may be offline: the broker keeps the job for its session)."""
    job_id = uuid.uuid4().hex
    final: queue.Queue[dict] = queue.Queue()

    def on_message(message: Inbound) -> None:
        status = json.loads(message.payload)
        if status.get("job_id") == job_id:
            on_status(status)
            if status.get("state") in FINAL:
                final.put(status)

    conn = Connection(broker, f"edge-os-flash-{job_id[:8]}", (status_topic(device_id),),
                      Handlers(message=on_message), session_expiry_s=0)
    conn.start()
    try:
        if not conn.wait_connected(30):
            raise EdgeOSError(f"cannot reach the MQTT broker {broker.url}; check it is running")
        conn.publish(job_topic(device_id), json.dumps({"job_id": job_id, "url": url, **extra}).encode())
        try:
            return final.get(timeout=timeout)
        except queue.Empty:
            raise EdgeOSError(f"device {device_id} did not finish job {job_id} within {timeout:g} s; "
                              f"watch {status_topic(device_id)}") from None
    finally:
        conn.stop()
