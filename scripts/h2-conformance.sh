#!/usr/bin/env bash
# HTTP/2 conformance of ringx, measured with httpwg-cli (a Rust port of h2spec)
# against a prior-knowledge (h2c) server proxying to a local backend. Installs
# httpwg-cli into target/httpwg when missing. Prints the score and the failures;
# docs/http2.md explains each. Usage: scripts/h2-conformance.sh [ringx binary]
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${1:-target/release/ringx}
[ -x "$bin" ] || cargo build --release
hw=target/httpwg/bin/httpwg
[ -x "$hw" ] || cargo install --locked httpwg-cli --version 0.2.5 --root target/httpwg
dir=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null; rm -rf "$dir"' EXIT
python3 -m http.server 18981 --bind 127.0.0.1 --directory "$dir" >/dev/null 2>&1 &
cat > "$dir/nginx.conf" <<CONF
daemon off; worker_processes 1; error_log $dir/error.log info; pid $dir/pid;
events {}
http { access_log off;
  server { listen 127.0.0.1:18980; http2 on;
    location / { proxy_pass http://127.0.0.1:18981; } } }
CONF
"$bin" -c "$dir/nginx.conf" &
sleep 1
"$hw" -a 127.0.0.1:18980 2>&1 | sed "s/\x1b\[[0-9;]*m//g" > "$dir/out.txt" || true
cp "$dir/out.txt" target/h2-conformance.txt
grep -E "^(❌|🚄)|^[^ ].*(panicked|Timed out|timed out)" "$dir/out.txt" || true
