#!/usr/bin/env bash
# Install what the tests need (test-only packages included: nix-bin) and run the whole test
# suite (unit and integration, real containers included). As root: the integration tests boot
# containers with systemd-nspawn.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup-debian.sh --for-tests
cargo test --locked "$@"
