#!/usr/bin/env bash
# Runs the GPU path for real on a machine with an NVIDIA GPU: packs the bundled SmolLM2 for the
# visible GPU (a copy of targets/cuda.toml with its compute capability) and for this CPU, compares
# their greedy tokens (float32 activations on both), and prints decode/prefill tok/s and memory of both.
# Needs: nvidia-smi, nvcc or NVRTC, and a TVM runtime built with USE_CUDA=ON (PyPI's apache-tvm
# wheel is CPU-only; build apache/tvm from source and put it first on PYTHONPATH).
# Usage: bash tools/gpu_check.sh [TOKENS]   (run from the repository root after `make install`)
set -euo pipefail
tokens=${1:-32}
py=.venv/bin/python
edge_os=.venv/bin/edge-os
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

command -v nvidia-smi >/dev/null || { echo "gpu_check: no nvidia-smi: this machine has no NVIDIA GPU" >&2; exit 1; }
cap=$(nvidia-smi --query-gpu=compute_cap --format=csv,noheader | head -1 | tr -d ' .')
gpu=$(nvidia-smi --query-gpu=name,memory.total --format=csv,noheader | head -1)
echo "GPU: $gpu (sm_$cap)"
"$py" -c 'import tvm, sys; sys.exit(0 if tvm.runtime.enabled("cuda") else 1)' || {
  echo "gpu_check: this TVM has no CUDA runtime (PyPI's wheel is CPU-only); build TVM with USE_CUDA=ON" >&2; exit 1; }

sed -e "s/arch = \"sm_80\"/arch = \"sm_$cap\"/" -e 's/^name = "cuda"/name = "cuda-local"/' targets/cuda.toml > "$work/cuda-local.toml"
gguf=$("$py" -c 'from edge_os.default_model import bundled_gguf; print(bundled_gguf())')
prompt="What is the capital of France?"
for target in "$work/cuda-local.toml" host; do
  out="$work/pkg-$(basename "$target" .toml)"
  start=$SECONDS
  # float32 decode activations on the CPU too: the GPU kernels do not round activations
  "$edge_os" pack "$gguf" --target "$target" --out "$out" --no-progress --activations float32
  echo "packed for $target in $((SECONDS - start)) s: $(du -sh "$out" | cut -f1)"
  "$edge_os" generate -m "$out" --json --temperature 0 --ignore-eos --max-tokens "$tokens" "$prompt" > "$out.json"
  "$py" -c 'import json,sys; r=json.load(open(sys.argv[1])); t=r["timings"]; print(sys.argv[2], "decode %.1f tok/s, prefill %.1f tok/s, load %.2f s" % (t["decode_tok_s"], t["prefill_tok_s"], t["load_s"]))' "$out.json" "$target"
done
nvidia-smi --query-gpu=memory.used --format=csv,noheader | sed 's/^/GPU memory in use now: /'
"$py" - "$work/pkg-cuda-local.json" "$work/pkg-host.json" <<'PY'
import json, sys
gpu, cpu = (json.load(open(p))["token_ids"] for p in sys.argv[1:])
same = next((i for i, (a, b) in enumerate(zip(gpu, cpu)) if a != b), len(gpu))
print(f"greedy tokens equal for {same} of {len(gpu)}")
sys.exit(0 if same == len(gpu) else 1)
PY
