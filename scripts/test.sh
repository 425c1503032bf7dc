#!/usr/bin/env bash
# The whole test suite: installs the external clients the tests drive, builds
# every test binary and the lakewave binary once, and runs them with nextest.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/test-deps.sh

# One target directory shared by every test binary (and across clones on the
# same machine, so a second run rebuilds only what changed).
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/lakewave/target}"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"

cargo build --workspace --bins --tests --locked
export LAKEWAVE_BIN="$CARGO_TARGET_DIR/debug/lakewave"
cargo nextest run --workspace --locked --no-fail-fast "$@"
