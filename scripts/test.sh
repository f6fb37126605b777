#!/usr/bin/env bash
# Runs ringx's test suite: unit tests, integration tests on 127.0.0.1, and the
# differential tests against Debian's nginx (installed here when missing).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-test-deps.sh
cargo test --all-targets "$@"
