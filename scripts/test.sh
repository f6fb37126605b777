#!/usr/bin/env bash
# Runs ringx's test suite: unit tests, integration tests on 127.0.0.1, and the
# differential tests against Debian's nginx (installed here when missing); then the
# integration tests once more with every ringx they start on the epoll driver
# (RINGX_EVENTS=epoll), the driver used where io_uring is refused.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-test-deps.sh
cargo test --no-fail-fast --all-targets "$@"
echo "== integration tests on the epoll driver =="
RINGX_EVENTS=epoll cargo test --no-fail-fast --tests "$@"
