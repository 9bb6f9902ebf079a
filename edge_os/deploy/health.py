"""The health check after a switch: load the package and generate a few greedy tokens, in a child
process that is killed when it outgrows the memory budget, hangs past the time limit, or its
parent dies (so a killed installer never leaves a checker behind).

``python -m edge_os.deploy.health PACKAGE CONTEXT PROMPT TOKENS`` is the child.
"""

from __future__ import annotations

import ctypes
import json
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

_PR_SET_PDEATHSIG = 1


@dataclass(frozen=True)
class HealthResult:
    ok: bool
    reason: str  # why it failed, or what it answered
    peak_rss: int  # bytes
    seconds: float


def _die_with_parent() -> None:
    ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


def _rss(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def check(package: Path, memory_budget: int, timeout: float, context: int = 256, prompt: str = "Hello",
          tokens: int = 4) -> HealthResult:
    """Run the health check of ``package`` in a child process and judge it."""
    started = time.monotonic()
    child = subprocess.Popen(
        [sys.executable, "-m", "edge_os.deploy.health", str(package), str(context), prompt, str(tokens)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, preexec_fn=_die_with_parent)  # noqa: PLW1509 (no threads here)
    peak, reason = 0, None
    while child.poll() is None:
        peak = max(peak, _rss(child.pid))
        if peak > memory_budget:
            reason = f"used {peak >> 20} MiB, over the device's memory budget of {memory_budget >> 20} MiB"
        elif time.monotonic() - started > timeout:
            reason = f"did not answer within {timeout:g} s (hung)"
        if reason:
            child.kill()
            child.communicate()
            return HealthResult(False, reason, peak, time.monotonic() - started)
        time.sleep(0.02)
    out, err = child.communicate()
    seconds = time.monotonic() - started
    if child.returncode != 0:
        lines = err.decode(errors="replace").strip().splitlines()
        why = lines[-1] if lines else f"exit status {child.returncode}"
        return HealthResult(False, f"the model failed to load or answer: {why}", peak, seconds)
    answer = json.loads(out.decode().strip().splitlines()[-1])
    if answer["completion_tokens"] < 1:
        return HealthResult(False, "the model produced no tokens", peak, seconds)
    return HealthResult(True, f"answered {answer['text']!r}", peak, seconds)


def _child(package: str, context: str, prompt: str, tokens: str) -> None:
    from edge_os.runtime.tvm_runtime import use_runtime_only_tvm

    use_runtime_only_tvm()
    from edge_os.runtime.engine import Engine
    from edge_os.runtime.request import Finished, GenerationRequest, SamplingParams

    engine = Engine.load(package, context_tokens=int(context), verify=False, max_batch=1)
    request = GenerationRequest(prompt=prompt, sampling=SamplingParams(temperature=0), max_tokens=int(tokens),
                                ignore_eos=True)
    final = next(e for e in engine.generate(request) if isinstance(e, Finished))
    print(json.dumps({"text": final.text, "completion_tokens": final.usage.completion_tokens}))


if __name__ == "__main__":
    try:
        _child(*sys.argv[1:])
    except Exception as exc:  # noqa: BLE001 (the parent shows this one line as the reason for the rollback)
        print(f"{type(exc).__name__}: {exc}", file=sys.stderr)
        sys.exit(1)
