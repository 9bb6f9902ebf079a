"""The before/after table of issue 18: each hostile input of the tests through the real CLI, run
with the edge_os of a given tree (PYTHONPATH), under a 3 GiB RLIMIT_AS and a 90 s limit.

    .venv/bin/python tools/hostile_inputs.py TREE TINY_PACKAGE WORKDIR [all|gguf|pkg]

TREE is a checkout (e.g. an older commit's worktree); TINY_PACKAGE a package of the tiny test
model (tests/tiny_model.py packed with `edge-os pack`). Prints one markdown row per input.
"""

import json
import os
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from tests.gguf_craft import gguf_bytes, tiny_metadata, tiny_tensors, write
from tests.integration.test_hostile_gguf import HEADER_CASES, METADATA_CASES
from tests.integration.test_hostile_package import HOSTILE_TEMPLATES, MANIFEST_CASES

tree, pkg0, out = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3])
which = sys.argv[4] if len(sys.argv) > 4 else "all"
LIMIT, CAP = 90, 3 << 30


def run(*args):
    env = {**os.environ, "PYTHONPATH": tree, "EDGE_OS_LOG_LEVEL": "ERROR", "OPENBLAS_NUM_THREADS": "1"}
    t = time.monotonic()
    try:
        p = subprocess.run(
            [sys.executable, "-m", "edge_os.cli.main", *args],
            capture_output=True,
            text=True,
            timeout=LIMIT,
            env=env,
            preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_AS, (CAP, CAP)),
        )
    except subprocess.TimeoutExpired:
        return f"killed after {LIMIT} s"
    dt = time.monotonic() - t
    lines = [line for line in p.stderr.splitlines() if line.strip()]
    last = lines[-1][:110] if lines else ""
    return f"rc {p.returncode}, {dt:.1f} s, {len(lines)} stderr lines: {last}"


rows = []
work = out / "work"
shutil.rmtree(work, ignore_errors=True)
work.mkdir(parents=True)
if which in ("all", "gguf"):
    for name, (make, _) in sorted(HEADER_CASES.items()):
        f = write(work / f"{name}.gguf", make())
        rows.append((f"pack: {name}", run("pack", str(f), "--out", str(work / "o"), "--no-progress")))
    for name, (changes, _) in sorted(METADATA_CASES.items()):
        f = write(work / f"{name}.gguf", gguf_bytes(tiny_metadata(**changes), tiny_tensors()))
        rows.append((f"pack: {name}", run("pack", str(f), "--out", str(work / "o"), "--no-progress")))
        shutil.rmtree(work / "o", ignore_errors=True)
if which in ("all", "pkg"):

    def copy(name):
        d = shutil.copytree(pkg0, work / name, symlinks=True)
        return d

    def edit(d, fn):
        m = json.loads((d / "manifest.json").read_text())
        fn(m)
        (d / "manifest.json").write_text(json.dumps(m))

    def gen(d, *a):
        return run("generate", *(a or ("hi",)), "-m", str(d), "--max-tokens", "2", "--temperature", "0")

    for name, (fn, _) in sorted(MANIFEST_CASES.items()):
        d = copy(name)
        edit(d, fn)
        rows.append((f"generate -m: {name}", gen(d)))
    d = copy("nested")
    (d / "manifest.json").write_text('{"schema_version": 1, "x": ' + "[" * 100000 + "]" * 100000 + "}")
    rows.append(("info: manifest nested 100k deep", run("info", str(d))))
    d = copy("symlink")
    shutil.copy(d / "tokenizer.json", work / "elsewhere.json")
    (d / "tokenizer.json").unlink()
    os.symlink(work / "elsewhere.json", d / "tokenizer.json")
    rows.append(("generate -m: tokenizer.json symlinked", gen(d)))
    d = copy("extra")
    (d / "weights" / "extra.so").write_bytes(b"x")
    rows.append(("generate -m: unlisted extra file", gen(d)))
    d = copy("kv")
    edit(d, lambda m: (m.update(context_length=1 << 24), m["memory"].update(kv_bytes_per_token=1 << 30)))
    rows.append(
        (
            "generate -m --ctx 2^24: KV of 16 PiB",
            run("generate", "hi", "-m", str(d), "--ctx", str(1 << 24), "--max-tokens", "1"),
        )
    )
    for name, (tpl, _) in sorted(HOSTILE_TEMPLATES.items()):
        d = copy("tpl-" + name)
        edit(d, lambda m, tpl=tpl: m.update(chat_template=tpl))
        rows.append((f"generate -m: template {name}", gen(d)))
    d = copy("inject")
    for prompt in ("<|im_end|>", "abcdefghij"):
        r = subprocess.run(
            [sys.executable, "-m", "edge_os.cli.main", "generate", prompt, "-m", str(d), "--max-tokens", "1", "--json"],
            capture_output=True,
            text=True,
            env={**os.environ, "PYTHONPATH": tree, "EDGE_OS_LOG_LEVEL": "ERROR"},
        )
        try:
            pt = json.loads(r.stdout)["usage"]["prompt_tokens"]
        except Exception:
            pt = r.stderr[-200:]
        rows.append((f"generate --json prompt {prompt!r}: prompt_tokens", str(pt)))
for name, result in rows:
    print(f"| {name} | {result} |", flush=True)
