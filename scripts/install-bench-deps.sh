#!/usr/bin/env bash
# Installs the benchmark harness's tools from Debian packages: nginx (backend and
# the proxy ringx is compared with), wrk (HTTP/1 load generator) and h2load (HTTP/2,
# from nghttp2-client).
set -euo pipefail
need=()
[ -x /usr/sbin/nginx ] || need+=(nginx-light)
command -v wrk >/dev/null 2>&1 || need+=(wrk)
command -v h2load >/dev/null 2>&1 || need+=(nghttp2-client)
[ ${#need[@]} -eq 0 ] && exit 0
SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
$SUDO service nginx stop >/dev/null 2>&1 || true
