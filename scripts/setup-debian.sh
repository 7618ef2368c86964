#!/usr/bin/env bash
# Install what ncsh needs on Debian (run as root), and make sure traffic to container addresses
# can never leave the machine: an unreachable route covers the ranges (ARCHITECTURE.md,
# "Traffic from tests").
#
# Usage: setup-debian.sh [--for-tests]
#   --for-tests  also what only the test suite needs (nix-bin, for the tests against Nix;
#                zsh, fish, man-db and groff-base, for the completion and man page tests);
#                scripts/test.sh, and so CI, passes it.
#
# The services (sshd, Apache, nftables) run inside containers from the host's /usr; installing
# them must not start them on the host, so a policy-rc.d refuses service starts meanwhile.
# apt's and dpkg's output goes to a log that is shown only when the installation fails.
set -euo pipefail
for_tests=
for arg in "$@"; do
  case "$arg" in
    --for-tests) for_tests=1 ;;
    *) echo "setup-debian.sh: unknown argument ‘$arg’ (usage: setup-debian.sh [--for-tests])" >&2; exit 2 ;;
  esac
done
packages=(systemd systemd-container iproute2 util-linux procps dbus dbus-daemon python3 login
          openssh-server openssh-client apache2 nftables openssl
          nginx redis-server redis-tools sudo
          postgresql mariadb-server mariadb-client dnsmasq-base mosquitto mosquitto-clients caddy
          bash-completion)
test_packages=(nix-bin zsh fish man-db groff-base)
[ -z "$for_tests" ] || packages+=("${test_packages[@]}")
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  export DEBIAN_FRONTEND=noninteractive
  policy=${POLICY_RC_D:-/usr/sbin/policy-rc.d}
  added_policy=
  log=$(mktemp)
  trap 'rm -f "$log"; [ -z "$added_policy" ] || rm -f "$policy"' EXIT
  if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' > "$policy" && chmod +x "$policy" && added_policy=1
  fi
  echo "setup-debian.sh: installing ${missing[*]}" >&2
  apt-get update -qq >"$log" 2>&1 || true
  if ! apt-get install -y -qq --no-install-recommends "${missing[@]}" >>"$log" 2>&1; then
    cat "$log" >&2
    echo "setup-debian.sh: installing the packages failed (apt's output above)" >&2
    exit 1
  fi
fi
for range in 10.233.0.0/16 10.235.0.0/16; do
  [ -n "$(ip route show type unreachable "$range")" ] || ip route add unreachable "$range"
done
# The unique-local range ncsh's automatic IPv6 pairs come from, on a host with IPv6.
if [ -s /proc/net/if_inet6 ] && [ -z "$(ip -6 route show type unreachable fc00::/7)" ]; then
  ip -6 route add unreachable fc00::/7
fi
