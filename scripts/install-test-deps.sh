#!/usr/bin/env bash
# Installs what the tests need from Debian packages: nginx and its stream module
# (for the differential tests), curl and openssl (real TLS clients in tests/tls.rs). Idempotent; needs root
# (or sudo) only when something is missing. systemd-analyze checks packaging/ringx.service.
set -euo pipefail
missing=()
[ -x /usr/sbin/nginx ] || missing+=(nginx-light)
[ -f /usr/lib/nginx/modules/ngx_stream_module.so ] || missing+=(libnginx-mod-stream)
command -v curl >/dev/null || missing+=(curl)
command -v openssl >/dev/null || missing+=(openssl)
command -v systemd-analyze >/dev/null || missing+=(systemd)
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
# Debian may start the packaged service; the tests start their own nginx on
# loopback ports, so stop it to leave the machine as it was.
$SUDO service nginx stop >/dev/null 2>&1 || true
