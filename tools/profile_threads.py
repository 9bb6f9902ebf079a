#!/usr/bin/env python3
"""Where each thread's time goes in decode steps: kernels (their parallel bodies apart from the
serial part on the calling thread), waiting at forks and joins, the VM, Python.

``profile_step.py`` times VM calls on the calling thread, so a kernel's time there includes its
join, and TVM's worker threads are not seen at all. This samples every thread with ``perf``
(software clock, no PMU needed) while a child process runs ``--batch`` sequences of decode steps,
and attributes the samples in the package's ``model.so``, whose kernel bodies have no symbols, by
function ranges (``readelf``'s ``.eh_frame``) and by which exported kernel hands each parallel
body to ``TVMBackendParallelLaunch`` (``objdump``; x86-64 code, where the body's address is
loaded into the launch's first argument: elsewhere a body is named by the nearest symbol before
it). Samples in the kernel's scheduler and in
``sched_yield`` are a thread waiting: for work (a worker while the caller runs serial code) or at a
join (the caller while a worker finishes its share).

Needs ``perf``, ``readelf`` and ``objdump`` (Debian: ``linux-perf``, ``binutils``) and the rights to
profile one's own child (``kernel.perf_event_paranoid`` <= 2, or root).

    .venv/bin/python tools/profile_threads.py PACKAGE [--batch 4] [--context 100] [--threads 2] [--seconds 6]
"""

from __future__ import annotations

import argparse
import bisect
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

WAITING = "waiting (sched_yield, scheduler)"
# perf report --sort pid,dso,sym lines: "  12.34%  4242:python  model.so  [.] 0x000000000003efe0"
REPORT_LINE = re.compile(r"\s*([\d.]+)%\s+(\d+):\S+\s+(\S+)\s+\[(.)\]\s+(.*)")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("package", type=Path)
    parser.add_argument("--batch", type=int, default=1, help="sequences decoded in each step")
    parser.add_argument("--context", type=int, default=100, help="tokens in the KV cache before each step")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seconds", type=float, default=6.0, help="how long to sample")
    parser.add_argument("--frequency", type=int, default=4000, help="samples a second per thread")
    parser.add_argument("--decode-loop", action="store_true", help=argparse.SUPPRESS)  # the child
    args = parser.parse_args()
    if args.batch < 1 or args.context < 1 or args.threads < 1 or args.frequency < 1:
        parser.error("--batch, --context, --threads and --frequency must be 1 or more")
    if args.seconds <= 0:
        parser.error("--seconds must be more than 0")
    if args.decode_loop:
        return _decode_loop(args)
    missing = [tool for tool in ("perf", "readelf", "objdump") if shutil.which(tool) is None]
    if missing:
        parser.error(f"{', '.join(missing)} not found: install linux-perf and binutils")
    library = args.package / "model.so"
    if not library.is_file():
        parser.error(f"{args.package} is not a package directory (no model.so): pack one with `edge-os pack`")
    with tempfile.TemporaryDirectory(prefix="eos-threads-") as tmp:
        step_ms, report, caller = _record(args, Path(tmp))
    per_thread = _attribute(report, KernelNames(library))
    _print(args, step_ms, per_thread, caller)
    return 0


def _decode_loop(args: argparse.Namespace) -> int:
    """The child: decode steps until SIGTERM, printing "ready" once warm and the mean step time
    (ms) of the steps after that when it stops."""
    os.environ["TVM_NUM_THREADS"] = str(args.threads)
    from edge_os.errors import EdgeOSError
    from edge_os.package.reader import open_package, read_params
    from edge_os.runtime.runner import CacheShape, ModelRunner

    try:
        manifest = open_package(args.package)
        runner = ModelRunner(args.package / manifest.library, read_params(args.package, manifest),
                             CacheShape(max_batch_size=args.batch, max_total_tokens=(args.context + 16) * args.batch),
                             args.threads)
    except EdgeOSError as exc:
        print(f"error: {exc}", flush=True)
        return 2
    sequences = list(range(args.batch))
    ids = [(7 + i) % 1000 for i in range(args.context)]
    for seq in sequences:
        runner.add_sequence(seq)
        runner.prefill(seq, ids)
    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(True))

    def step() -> None:
        runner.decode(sequences, [ids[-1]] * args.batch)
        for seq in sequences:
            runner.truncate(seq, 1)

    for _ in range(20):
        step()
    print("ready", flush=True)
    steps, started = 0, time.perf_counter()
    while not stop:
        step()
        steps += 1
    print(f"{(time.perf_counter() - started) / max(steps, 1) * 1e3:.3f}", flush=True)
    return 0


def _record(args: argparse.Namespace, tmp: Path) -> tuple[float, str, str]:
    """Run the decode loop in a child, sample it with perf for ``--seconds``; (mean step ms, the
    text of ``perf report``, the thread id of the child's calling thread)."""
    child = subprocess.Popen(
        [sys.executable, __file__, str(args.package), "--decode-loop", "--batch", str(args.batch),
         "--context", str(args.context), "--threads", str(args.threads)],
        stdout=subprocess.PIPE, text=True)
    try:
        first = child.stdout.readline().strip()
        if first != "ready":
            raise SystemExit(first or f"the decode loop stopped (exit {child.wait()})")
        data = tmp / "perf.data"
        perf = subprocess.Popen(["perf", "record", "-q", "-F", str(args.frequency), "-e", "cpu-clock",
                                 "-p", str(child.pid), "-o", str(data)],
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        time.sleep(args.seconds)  # the sampling window itself, not a wait for an event
        perf.send_signal(signal.SIGINT)
        _, perf_err = perf.communicate(timeout=60)
        child.send_signal(signal.SIGTERM)
        step_ms = float(child.stdout.readline().strip() or "nan")
        child.wait(60)
    finally:
        if child.poll() is None:
            child.kill()
    if not data.exists():
        raise SystemExit(f"perf record failed: {perf_err.strip().splitlines()[-1] if perf_err.strip() else 'no data'}")
    report = subprocess.run(["perf", "report", "-i", str(data), "--stdio", "--no-children", "-g", "none",
                             "--sort", "pid,dso,sym"], capture_output=True, text=True, check=True).stdout
    return step_ms, report, str(child.pid)


class KernelNames:
    """Names offsets in a package's ``model.so``: an exported kernel by its symbol, a parallel
    body by the kernel that launches it (``name*``)."""

    def __init__(self, library: Path):
        frames = subprocess.run(["readelf", "--debug-dump=frames", str(library)], capture_output=True,
                                text=True, check=True).stdout
        self.ranges = sorted((int(a, 16), int(b, 16)) for a, b in re.findall(r"pc=([0-9a-f]+)\.\.([0-9a-f]+)", frames))
        self.starts = [start for start, _ in self.ranges]
        listing = subprocess.run(["objdump", "-d", "--no-show-raw-insn", str(library)], capture_output=True,
                                 text=True, check=True).stdout
        self.functions: list[tuple[int, str]] = []
        self.bodies: dict[int, str] = {}
        range_starts = set(self.starts)
        current = None
        for line in listing.splitlines():
            header = re.match(r"^([0-9a-f]+) <(.+)>:", line)
            if header:  # an exported kernel, or its body where TVM left it a function of its own
                current = header.group(2).removeprefix("__tvm_ffi_").removesuffix("_compute_")
                self.functions.append((int(header.group(1), 16), current))
                continue
            # the parallel body's address is loaded into the first argument of the launch
            body = re.search(r"lea\s+0x[0-9a-f]+\(%rip\),%rdi\s+# ([0-9a-f]+) <", line)
            if body and current and int(body.group(1), 16) in range_starts:
                self.bodies.setdefault(int(body.group(1), 16), current)
        self.function_starts = [start for start, _ in self.functions]

    def name(self, offset: int) -> str:
        i = bisect.bisect_right(self.starts, offset) - 1
        if i >= 0 and self.ranges[i][0] <= offset < self.ranges[i][1] and self.ranges[i][0] in self.bodies:
            return self.bodies[self.ranges[i][0]] + "*"
        j = bisect.bisect_right(self.function_starts, offset) - 1
        return self.functions[j][1] if j >= 0 else hex(offset)


def _attribute(report: str, names: KernelNames) -> dict[str, dict[str, float]]:
    """Per thread id: percent of all samples by what it was doing."""
    per_thread: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    for line in report.splitlines():
        match = REPORT_LINE.match(line)
        if not match:
            continue
        percent, tid, dso, _, symbol = match.groups()
        symbol = symbol.strip()
        if dso == "model.so":
            what = names.name(int(symbol, 16)) if symbol.startswith("0x") else symbol.removeprefix("__tvm_ffi_")
        elif "sched_yield" in symbol or dso == "[kernel.kallsyms]":
            what = WAITING
        elif dso.startswith("libpython"):
            what = "Python"
        elif dso.startswith(("libtvm", "libc.so", "libstdc++")):
            what = "TVM runtime (VM, launches, builtins)"
        else:
            what = dso
        per_thread[tid][what] += float(percent)
    return per_thread


def _print(args: argparse.Namespace, step_ms: float, per_thread: dict[str, dict[str, float]], caller: str) -> None:
    """One column per thread of TVM's pool, the calling thread first."""
    workers = sorted((tid for tid in per_thread if tid != caller), key=lambda tid: -sum(per_thread[tid].values()))
    busiest = [caller, *workers][:args.threads]
    print(f"decode of {args.batch} at {args.context} tokens of context, {args.threads} threads: "
          f"{step_ms:.2f} ms a step while sampled")
    print("  share of each thread's samples (* = a kernel's parallel body; ms = share x step time)")
    rows = sorted({what for tid in busiest for what in per_thread[tid]},
                  key=lambda what: -sum(per_thread[tid][what] for tid in busiest))
    totals = {tid: sum(per_thread[tid].values()) or 1.0 for tid in busiest}
    header = "".join(f"{'caller' if n == 0 else 'worker ' + str(n):>18s}" for n in range(len(busiest)))
    print(f"  {'':38s}{header}")
    for what in rows:
        shares = [per_thread[tid][what] / totals[tid] for tid in busiest]
        if max(shares) < 0.003:
            continue
        cells = "".join(f"{share:8.1%} {share * step_ms:6.3f} ms " for share in shares)
        print(f"  {what[:38]:38s}{cells}")


if __name__ == "__main__":
    sys.exit(main())
