#!/usr/bin/env bash
# Install what is needed, build ncsh, and run the demo walkthrough (scripts/demo.rhai). As root.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup-debian.sh
echo "demo.sh: building ncsh (cargo build --release)" >&2
cargo build --release --locked --quiet
./target/release/ncsh scripts/demo.rhai "$@"
