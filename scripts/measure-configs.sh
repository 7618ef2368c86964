#!/usr/bin/env bash
# How many NixOS configurations of a directory (each FILE.nix a module, as published for
# containers) the native builder realizes as written: each is created with --config-file,
# started when the create succeeds, checked for failed units, and destroyed. Prints one line
# per file and the counts. Run as root, after scripts/setup-debian.sh. The state lives in a
# temporary NCSH_PREFIX, removed at the end; container addresses are in 10.233.0.0/16, which
# setup-debian.sh routes nowhere.
#
#   scripts/measure-configs.sh DIR [NCSH]     (NCSH: the binary, default target/release/ncsh)
set -uo pipefail
dir=${1:?usage: measure-configs.sh DIR [NCSH]}
ncsh=${2:-$(dirname "$0")/../target/release/ncsh}
if [ "$(id -u)" != 0 ]; then
  echo "measure-configs.sh: run it as root (it boots containers)" >&2
  exit 1
fi
NCSH_PREFIX=$(mktemp -d /tmp/ncsh-measure.XXXXXX)
export NCSH_PREFIX NCSH_BUILDER=native
trap 'rm -rf "$NCSH_PREFIX"' EXIT

built=0 booted=0 clean=0 refused=0 i=0
for file in "$dir"/*.nix; do
  i=$((i + 1))
  name=m$i
  if out=$(timeout 120 "$ncsh" create "$name" --config-file "$file" </dev/null 2>&1); then
    built=$((built + 1))
    if timeout 120 "$ncsh" start "$name" </dev/null >/dev/null 2>&1; then
      booted=$((booted + 1))
      sleep 3 # a unit that fails soon after the boot (a restart loop) has failed by then
      failed=$(timeout 30 "$ncsh" run "$name" -- systemctl --failed --no-legend --plain \
        </dev/null 2>/dev/null | awk '{ printf "%s ", $1 }')
      if [ -z "$failed" ]; then
        clean=$((clean + 1))
        echo "booted        $(basename "$file")"
      else
        echo "failed units  $(basename "$file"): $failed"
      fi
    else
      echo "no start      $(basename "$file")"
    fi
  else
    refused=$((refused + 1))
    echo "refused       $(basename "$file"): $(grep -v '^ncsh: note' <<<"$out" | head -1)"
  fi
  "$ncsh" destroy "$name" </dev/null >/dev/null 2>&1
done
echo "$i configurations: $built built ($booted started, $clean with no failed unit), $refused refused"
