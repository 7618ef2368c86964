#!/usr/bin/env bash
# Install what ncsh and its tests need on Debian (run as root), and make sure traffic to container
# addresses can never leave the machine: an unreachable route covers the ranges (DESIGN §6).
set -euo pipefail
packages=(systemd-container iproute2 util-linux procps dbus python3)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq || true
  apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
for range in 10.233.0.0/16 10.235.0.0/16; do
  [ -n "$(ip route show type unreachable "$range")" ] || ip route add unreachable "$range"
done
