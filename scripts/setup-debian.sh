#!/usr/bin/env bash
# Install what ncsh and its tests need on Debian (run as root), and make sure traffic to container
# addresses can never leave the machine: an unreachable route covers the ranges (ARCHITECTURE.md, "Traffic from tests").
#
# The services (sshd, Apache, nftables) run inside containers from the host's /usr; installing
# them must not start them on the host, so a policy-rc.d refuses service starts meanwhile.
set -euo pipefail
packages=(systemd systemd-container iproute2 util-linux procps dbus dbus-daemon python3 login nix-bin
          openssh-server openssh-client apache2 nftables openssl
          nginx redis-server redis-tools sudo
          postgresql mariadb-server mariadb-client dnsmasq-base mosquitto mosquitto-clients caddy
          bash-completion)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  export DEBIAN_FRONTEND=noninteractive
  policy=/usr/sbin/policy-rc.d
  added_policy=
  if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' > "$policy" && chmod +x "$policy" && added_policy=1
    trap '[ -n "$added_policy" ] && rm -f "$policy"' EXIT
  fi
  apt-get update -qq || true
  apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
for range in 10.233.0.0/16 10.235.0.0/16; do
  [ -n "$(ip route show type unreachable "$range")" ] || ip route add unreachable "$range"
done
