#!/usr/bin/env bash
# Build llama-cpp-python from its PyPI sdist into the project's venv, for tools/bench_llamacpp.py.
#
# Benchmark-only: never a runtime dependency of edge-os. The build is a native CPU build
# (GGML_NATIVE: -march=native, so it uses AVX2/FMA here and AVX-512/VNNI where the CPU has them),
# OpenMP threading, no BLAS, no GPU back-end: the same CPU the edge-os kernels run on.
#
#   bash tools/build_llamacpp.sh            # into .venv
#   LLAMACPP_NO_AMX=1 bash tools/build_llamacpp.sh   # where the native build crashes on AMX code
#   LLAMACPP_VERSION=0.3.36 ...             # pin another version
#   bash tools/build_llamacpp.sh --tools [DIR]   # llama-quantize and llama-perplexity from the same
#       llama.cpp source (the sdist's vendor/llama.cpp), built in DIR (default
#       ~/.cache/edge-os/llama.cpp-VERSION), never in this tree; prints the directory of the binaries.
#       tools/perplexity_table.py uses them.
#   bash tools/build_llamacpp.sh --server [DIR]  # llama.cpp's llama-server (continuous batching) from the
#       same sdist source, built in DIR (default ~/.cache/edge-os/llama-server-VERSION); prints the path
#       of the binary. tools/bench_serve_many.py --llama-server PATH compares against it.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
VERSION=${LLAMACPP_VERSION:-0.3.36}
FLAGS=""
if [[ "${LLAMACPP_NO_AMX:-0}" == "1" ]]; then
    FLAGS="-mno-amx-tile -mno-amx-int8 -mno-amx-bf16"
fi
# Download and unpack the sdist (its vendor/llama.cpp is the llama.cpp source) into $1 once.
unpack_sdist() {
    mkdir -p "$1"
    if [[ ! -d "$1/llama_cpp_python-$VERSION" ]]; then
        "$VENV/bin/pip" download --no-deps --no-binary :all: "llama-cpp-python==${VERSION}" -d "$1"
        tar -xzf "$1/llama_cpp_python-$VERSION.tar.gz" -C "$1"
    fi
}
# Configure a static native CPU build of the vendored llama.cpp in $1/build; $2 is ON to build the server.
configure() {
    cmake -S "$1/llama_cpp_python-$VERSION/vendor/llama.cpp" -B "$1/build" -DGGML_NATIVE=ON -DGGML_OPENMP=ON \
        -DGGML_BLAS=OFF -DLLAMA_CURL=OFF -DLLAMA_OPENSSL=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_SERVER="$2" \
        -DBUILD_SHARED_LIBS=OFF -DCMAKE_BUILD_TYPE=Release -DCMAKE_C_FLAGS="${FLAGS}" -DCMAKE_CXX_FLAGS="${FLAGS}" >/dev/null
}
if [[ "${1:-}" == "--tools" ]]; then
    DIR=${2:-$HOME/.cache/edge-os/llama.cpp-$VERSION}
    unpack_sdist "$DIR"
    configure "$DIR" OFF
    nice cmake --build "$DIR/build" -j "${CMAKE_BUILD_PARALLEL_LEVEL:-$(nproc)}" --target llama-quantize llama-perplexity
    echo "$DIR/build/bin"
    exit 0
fi
if [[ "${1:-}" == "--server" ]]; then
    DIR=${2:-$HOME/.cache/edge-os/llama-server-$VERSION}
    unpack_sdist "$DIR"
    configure "$DIR" ON
    nice cmake --build "$DIR/build" -j "${CMAKE_BUILD_PARALLEL_LEVEL:-$(nproc)}" --target llama-server
    echo "$DIR/build/bin/llama-server"
    exit 0
fi
export CMAKE_ARGS="-DGGML_NATIVE=ON -DGGML_OPENMP=ON -DGGML_BLAS=OFF -DLLAMA_CURL=OFF \
-DCMAKE_BUILD_TYPE=Release -DCMAKE_C_FLAGS='${FLAGS}' -DCMAKE_CXX_FLAGS='${FLAGS}'"
export CMAKE_BUILD_PARALLEL_LEVEL=${CMAKE_BUILD_PARALLEL_LEVEL:-$(nproc)}
"$VENV/bin/pip" install --no-binary llama-cpp-python --no-cache-dir "llama-cpp-python==${VERSION}"
"$VENV/bin/python" -c "import llama_cpp; print('llama-cpp-python', llama_cpp.__version__, 'built')"
