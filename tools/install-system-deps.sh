#!/usr/bin/env bash
# Installs the Debian packages edge-os's tests and tools need, only those missing.
# Runs as root (CI) or through sudo; does nothing when everything is present.
set -euo pipefail
packages=(gcc make clang gcc-arm-none-eabi gcc-avr avr-libc arduino-core-avr mosquitto mosquitto-clients openssh-server openssh-client)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
echo "installing Debian packages: ${missing[*]}"
sudo_cmd=()
[ "$(id -u)" -eq 0 ] || sudo_cmd=(sudo)
"${sudo_cmd[@]}" apt-get update -qq
DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq "${missing[@]}"
