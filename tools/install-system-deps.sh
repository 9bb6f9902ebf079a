#!/usr/bin/env bash
# Installs the Debian packages edge-os's tests and tools need, only those missing.
# Runs as root (CI) or through sudo; does nothing when everything is present.
# gcc-aarch64-linux-gnu links packages for aarch64 boards (pack --target rpi5); qemu-user-static
# runs them here (edge-os emulate), which fetches arm64 .debs, so apt also learns that architecture.
# cmake and g++ build llama.cpp's own tools (tools/build_llamacpp.sh), the reference of the K-quant test.
# binutils' readelf and objdump name the kernels in a package's library (tools/profile_threads.py).
set -euo pipefail
packages=(gcc make clang gcc-arm-none-eabi gcc-avr avr-libc arduino-core-avr mosquitto mosquitto-clients
          gcc-aarch64-linux-gnu qemu-user-static openssh-server openssh-client
          cmake g++ binutils)
sudo_cmd=()
[ "$(id -u)" -eq 0 ] || sudo_cmd=(sudo)
added_arch=0
if ! dpkg --print-foreign-architectures | grep -qx arm64; then
  "${sudo_cmd[@]}" dpkg --add-architecture arm64
  added_arch=1
fi
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  [ "$added_arch" -eq 0 ] || "${sudo_cmd[@]}" apt-get update -qq
  exit 0
fi
echo "installing Debian packages: ${missing[*]}"
"${sudo_cmd[@]}" apt-get update -qq
DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq "${missing[@]}"
