#!/usr/bin/env bash
# What `cargo bench --bench lifecycle` compares ncsh with, installed on Debian (run as root):
# LXC (`lxc-start`, `lxc-stop`, `lxc-attach`, `lxc-wait`). The benchmark boots the same root
# with it; where LXC is missing it prints "skipped: lxc-start not found" rows instead.
#
# Usage: bench-setup.sh
#
# LXC's packages ship lxc-net (a bridge `lxcbr0` with dnsmasq on the host) and lxc.service
# (autostart). The benchmark's LXC containers have no network of their own, so neither may
# run: installing must not start them (a policy-rc.d refuses service starts meanwhile), and
# lxc-net is told to make no bridge should it ever start. Then the unreachable routes over the
# container ranges (ARCHITECTURE.md, "Traffic from tests"), as setup-debian.sh makes them.
set -euo pipefail
if [ "$(id -u)" != 0 ]; then
  echo "bench-setup.sh: run it as root (it installs packages)" >&2
  exit 1
fi
if ! command -v lxc-start >/dev/null; then
  export DEBIAN_FRONTEND=noninteractive
  policy=${POLICY_RC_D:-/usr/sbin/policy-rc.d}
  added_policy=
  log=$(mktemp)
  trap 'rm -f "$log"; [ -z "$added_policy" ] || rm -f "$policy"' EXIT
  if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' > "$policy" && chmod +x "$policy" && added_policy=1
  fi
  [ -e /etc/default/lxc-net ] || printf 'USE_LXC_BRIDGE="false"\n' > /etc/default/lxc-net
  echo "bench-setup.sh: installing lxc" >&2
  apt-get update -qq >"$log" 2>&1 || true
  if ! apt-get install -y -qq --no-install-recommends -o Dpkg::Options::=--force-confold lxc >>"$log" 2>&1; then
    cat "$log" >&2
    echo "bench-setup.sh: installing lxc failed (apt's output above)" >&2
    exit 1
  fi
fi
for range in 10.233.0.0/16 10.235.0.0/16; do
  [ -n "$(ip route show type unreachable "$range")" ] || ip route add unreachable "$range"
done
