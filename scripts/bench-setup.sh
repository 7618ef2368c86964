#!/usr/bin/env bash
# What `cargo bench --bench lifecycle` compares ncsh with, installed on Debian (run as root):
# LXC (`lxc-start`, `lxc-stop`, `lxc-attach`, `lxc-wait`), with everything setup-debian.sh
# installs, and the unreachable routes over the container ranges. The benchmark boots the
# same root with LXC; where LXC is missing it prints "skipped: lxc-start not found" rows.
set -euo pipefail
if [ "$(id -u)" != 0 ]; then
  echo "bench-setup.sh: run it as root (it installs packages)" >&2
  exit 1
fi
exec "$(dirname "$0")/setup-debian.sh" --for-bench
