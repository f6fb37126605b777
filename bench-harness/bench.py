#!/usr/bin/env python3
"""ringx vs nginx, side by side, on one machine.

Builds ringx (release), starts one fast backend (nginx: `return` for small bodies,
static files with open_file_cache for 16 KiB and 1 MiB), then nginx and ringx as
proxies on the same http block, each pinned to the proxy CPUs, with wrk and the
backend pinned to the other CPUs. For every scenario it runs rounds that rotate the
order of targets (ringx, nginx, direct), each after a warm-up, and records per run:
requests/s, latency p50/p99/p99.9 (wrk Lua), the proxy's CPU time per request
(utime+stime of all its threads/processes from /proc, before and after), peak RSS,
and socket errors / non-2xx. It reports medians with [min-max] and the median of the
per-round ratios ringx/nginx and ringx/direct, as JSON and as a markdown table.

Method: ../shared/BENCH.md. Nothing here is a test: it measures.

Usage (defaults fit a 2-CPU machine: proxy on CPU 0, wrk and backend on CPU 1):
  bench-harness/bench.py [--rounds 6] [--duration 4] [--scenarios small,16k,...]
      [--workers 1] [--proxy-cpus 0] [--client-cpus 1] [--backend-cpus 1]
      [--nginx /usr/sbin/nginx] [--wrk /usr/bin/wrk] [--ringx target/release/ringx]
      [--no-build] [--fixed-rate] [--write-docs]
  bench-harness/bench.py --idle 10000 [--rounds 3] [--epoll]   # idle keep-alive memory only
On a machine without packages (the 16-core box), copy nginx and wrk as files and
pass their paths; the harness installs nothing and kills what it started.
"""

import argparse
import json
import os
import platform
import random
import re
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import idle_clients  # noqa: E402  (bench-harness/idle_clients.py)
ROOT = os.path.dirname(HERE)
CLK = os.sysconf("SC_CLK_TCK")

SCENARIOS = {
    # name: (path, wrk lua extra, connections, note)
    "small": ("/small", "", 64, "100 B response, keep-alive"),
    "16k": ("/16k", "", 64, "16 KiB response, keep-alive"),
    "1m": ("/1m", "", 64, "1 MiB response, keep-alive"),
    "post4k": ("/post", "post", 64, "4 KiB POST body, 100 B response"),
    "close": ("/small", "close", 64, "Connection: close, new connection per request"),
    "c1000": ("/small", "", 1000, "100 B response, 1000 connections"),
    "lc3": ("/lc3/small", "", 64, "100 B response, least_conn over three backends"),
    "upnew": ("/direct/small", "", 64, "100 B response, keep-alive client, new upstream connection per request"),
    # TLS (the proxy's `listen ... ssl` port; ECDSA P-256 certificate, TLS 1.3 as wrk
    # negotiates it): keep-alive, and a full handshake per request.
    "tls_small": ("/small", "", 64, "100 B response, keep-alive, TLS"),
    "tls_16k": ("/16k", "", 64, "16 KiB response, keep-alive, TLS"),
    "tls_close": ("/small", "close", 64, "Connection: close, a new TLS connection (full handshake) per request"),
    # HTTP/2 on the same TLS port (ALPN h2), driven by h2load: 16 connections with
    # 10 streams each in flight.
    "h2_small": ("/small", "h2", 16, "100 B response, HTTP/2 over TLS, 16 connections x 10 streams (h2load)"),
    "h2_16k": ("/16k", "h2", 16, "16 KiB response, HTTP/2 over TLS, 16 connections x 10 streams (h2load)"),
    # Static files the proxy serves itself (`root`; nginx with sendfile and
    # open_file_cache, ringx with pread): no backend.
    "static_small": ("/static/small", "", 64, "100 B static file served by the proxy, keep-alive"),
    "static_1m": ("/static/1m", "", 64, "1 MiB static file served by the proxy, keep-alive"),
    # The traffic modules (issue 10): their cost on top of the proxied request.
    "gzip64k": ("/gz/json64k", "gzip", 64, "64 KiB JSON from the backend, compressed (gzip on, level 1), keep-alive"),
    "limreq": ("/lim/small", "", 64, "100 B response through limit_req (one zone by client address, never refusing)"),
    "auth": ("/auth/small", "auth", 64, "100 B response behind auth_basic (a {PLAIN} user, the file read per request)"),
    # L4: `stream {}` relaying the same HTTP traffic to the backend (issue 11).
    "l4_16k": ("/16k", "l4", 64, "16 KiB response through a stream {} TCP relay, keep-alive"),
    "l4_1m": ("/1m", "l4", 64, "1 MiB response through a stream {} TCP relay, keep-alive"),
}
# Paths a target without the proxy's locations (`direct`) is asked without their prefix.
PROXY_ONLY_PREFIXES = ("/lc3/", "/gz/", "/lim/", "/auth/")
# Any scenario name with the suffix `_log` runs with the access log on (combined
# format, to a file): `small_log`, `16k_log`, ...


def base(scen):
    return scen[:-4] if scen.endswith("_log") else scen


def note(scen):
    n = SCENARIOS[base(scen)][3]
    return n + (", access log on (combined, to a file)" if scen.endswith("_log") else "")

PROCS = []


def log(*a):
    print(*a, file=sys.stderr, flush=True)


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def wait_port(port, timeout=10):
    end = time.time() + timeout
    while time.time() < end:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise SystemExit(f"nothing listens on {port}")


def spawn(cmd, cpus, env=None, **kw):
    full = ["taskset", "-c", cpus] + cmd
    p = subprocess.Popen(full, env=env, stdout=subprocess.DEVNULL, stderr=kw.pop("stderr", subprocess.DEVNULL), **kw)
    PROCS.append(p)
    return p


def renice(pid):
    """nice -20 for every thread of a process (ignored without privileges)."""
    try:
        for tid in os.listdir(f"/proc/{pid}/task"):
            subprocess.run(["renice", "-n", "-20", "-p", tid], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    except OSError:
        pass


def stat_fields(pid):
    """Fields of /proc/PID/stat after the command name (field 3 onward), or None."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()
    except OSError:
        return None


def children(pid):
    out = []
    for d in os.listdir("/proc"):
        if d.isdigit():
            f = stat_fields(d)
            if f and int(f[1]) == pid:
                out.append(int(d))
    return out


def cpu_ticks(pids):
    t = 0
    for p in pids:
        f = stat_fields(p)
        if f:
            t += int(f[11]) + int(f[12])  # utime, stime (fields 14, 15)
    return t


def peak_rss_kib(pids):
    total = 0
    for p in pids:
        try:
            with open(f"/proc/{p}/status") as f:
                for line in f:
                    if line.startswith("VmHWM:"):
                        total += int(line.split()[1])
        except OSError:
            pass
    return total


def proc_stat():
    with open("/proc/stat") as f:
        rows = {}
        for line in f:
            if line.startswith("cpu") and line[3].isdigit():
                p = line.split()
                v = list(map(int, p[1:]))
                rows[p[0]] = (sum(v) - v[3] - v[4], v[6], sum(v))  # busy, softirq, total
        return rows


def wait_quiet(exclude, limit=0.10, max_wait=30):
    """Waits until processes other than ours use under `limit` of the machine."""
    ncpu = os.cpu_count() or 1
    end = time.time() + max_wait
    while time.time() < end:
        ours = sum(cpu_ticks([p]) for p in exclude)
        a = proc_stat()
        time.sleep(1)
        b = proc_stat()
        ours2 = sum(cpu_ticks([p]) for p in exclude)
        busy = sum(b[k][0] - a[k][0] for k in b)
        total = sum(b[k][2] - a[k][2] for k in b) or 1
        other = (busy - (ours2 - ours)) / total
        if other < limit:
            return other
    log(f"warning: machine not quiet (other load {other:.0%} of {ncpu} CPUs)")
    return other


LUA = r"""
local mode = "%(mode)s"
-- A static request (no per-request Lua on the hot path of wrk).
if mode == "post" then
  wrk.method = "POST"
  wrk.body = string.rep("x", 4096)
  wrk.headers["Content-Type"] = "application/octet-stream"
elseif mode == "close" then
  wrk.headers["Connection"] = "close"
elseif mode == "gzip" then
  wrk.headers["Accept-Encoding"] = "gzip"
elseif mode == "auth" then
  wrk.headers["Authorization"] = "Basic YmVuY2g6YmVuY2g="
end
function done(summary, latency, requests)
  io.write(string.format('RESULT {"requests": %%d, "duration_us": %%d, "errors": %%d, "non2xx": %%d, "p50_us": %%d, "p99_us": %%d, "p999_us": %%d, "max_us": %%d}\n',
    summary.requests, summary.duration,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout,
    summary.errors.status, latency:percentile(50), latency:percentile(99), latency:percentile(99.9), latency.max))
end
"""


def run_wrk(args, url, mode, conns, duration):
    script = os.path.join(args.tmp, f"s-{mode}.lua")
    with open(script, "w") as f:
        f.write(LUA % {"mode": mode or "get"})
    threads = max(1, min(conns, len(args.client_cpus.split(","))))
    cmd = ["taskset", "-c", args.client_cpus, args.wrk, f"-t{threads}", f"-c{conns}", f"-d{duration}s", "--latency", "-s", script, url]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=duration + 60).stdout
    for line in out.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[7:])
    raise SystemExit("wrk gave no result:\n" + out)


def run_h2load(args, url, conns, duration):
    """h2load for `duration` seconds: the wrk result's fields (p50 is h2load's mean
    time per request; it gives no percentiles)."""
    threads = max(1, len(args.client_cpus.split(",")))
    cmd = ["taskset", "-c", args.client_cpus, args.h2load, f"-c{conns}", "-m10", f"-t{threads}", f"-D{duration}", url]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=duration + 60).stdout
    fin = re.search(r"finished in ([\d.]+)(m?s)", out)
    req = re.search(r"requests: \d+ total, \d+ started, (\d+) done, (\d+) succeeded, (\d+) failed, (\d+) errored, (\d+) timeout", out)
    codes = re.search(r"status codes: (\d+) 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx", out)
    mean = re.search(r"time for request:\s+\S+\s+\S+\s+([\d.]+)(us|ms|s)", out)
    if not (fin and req and codes):
        raise SystemExit("h2load gave no result:\n" + out)
    secs = float(fin.group(1)) / (1000 if fin.group(2) == "ms" else 1)
    unit = {"us": 1, "ms": 1000, "s": 1e6}
    mean_us = float(mean.group(1)) * unit[mean.group(2)] if mean else 0
    return {
        "requests": int(req.group(2)),
        "duration_us": secs * 1e6,
        "errors": int(req.group(3)) + int(req.group(4)) + int(req.group(5)),
        "non2xx": int(codes.group(2)) + int(codes.group(3)) + int(codes.group(4)),
        "p50_us": mean_us,
        "p99_us": 0,
        "p999_us": 0,
    }


def run_loadgen(args, url, rate, duration, conns):
    cmd = ["taskset", "-c", args.client_cpus, args.loadgen, url, str(int(rate)), str(duration), str(conns)]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=duration + 60).stdout
    for line in out.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[7:])
    raise SystemExit("loadgen gave no result:\n" + out)


def measure(args, target, scen, duration, rate=0):
    path, mode, conns, _ = SCENARIOS[base(scen)]
    if rate:
        conns = 16  # the open-loop generator uses a thread per connection
    if target["name"] == "direct" and path.startswith(PROXY_ONLY_PREFIXES):
        path = path[path.index("/", 1):]
    if base(scen).startswith(("tls_", "h2_")):
        url = f"https://127.0.0.1:{target['tls_port']}{path}"
    elif mode == "l4" and target["name"] != "direct":
        url = f"http://127.0.0.1:{target['l4_port']}{path}"
    else:
        url = f"http://127.0.0.1:{target['port']}{path}"
    pids = target["pids"]()
    load = (lambda d: run_h2load(args, url, conns, d)) if mode == "h2" else (lambda d: run_wrk(args, url, mode, conns, d))
    load(1)  # warm-up
    t0 = cpu_ticks(pids)
    s0 = proc_stat()
    if rate:
        r = run_loadgen(args, url, rate, duration, conns)
    else:
        r = load(duration)
    s1 = proc_stat()
    t1 = cpu_ticks(pids)
    n = max(r["requests"], 1)
    secs = r["duration_us"] / 1e6
    cpus = {k: round((s1[k][0] - s0[k][0]) / max(s1[k][2] - s0[k][2], 1), 3) for k in s1}
    softirq = {k: round((s1[k][1] - s0[k][1]) / max(s1[k][2] - s0[k][2], 1), 3) for k in s1}
    return {
        "rps": r["requests"] / secs,
        "p50_ms": r["p50_us"] / 1000,
        "p99_ms": r["p99_us"] / 1000,
        "p999_ms": r["p999_us"] / 1000,
        "cpu_us_per_req": (t1 - t0) / CLK / n * 1e6 if target["name"] != "direct" else None,
        "rss_kib": peak_rss_kib(pids) if target["name"] != "direct" else None,
        "errors": r["errors"],
        "non2xx": r["non2xx"],
        "cpu_busy": cpus,
        "cpu_softirq": softirq,
    }


def backend_conf(tmp, port, extra_ports):
    with open(os.path.join(tmp, "16k"), "wb") as f:
        f.write(b"a" * 16384)
    with open(os.path.join(tmp, "1m"), "wb") as f:
        f.write(b"b" * 1048576)
    # 64 KiB of JSON records (text/plain from the backend, which has no types).
    rec = b'{"id":%d,"name":"user-%d","email":"user%d@example.com","active":true,"score":%d},'
    body, i = b"[", 0
    while len(body) < 65536 - 128:
        body += rec % (i, i, i, (i * 7919) % 1000)
        i += 1
    with open(os.path.join(tmp, "json64k"), "wb") as f:
        f.write(body.rstrip(b",") + b"]")
    with open(os.path.join(tmp, "htpasswd"), "w") as f:
        f.write("bench:{PLAIN}bench\n")
    os.makedirs(os.path.join(tmp, "static"), exist_ok=True)
    with open(os.path.join(tmp, "static", "small"), "wb") as f:
        f.write(b"s" * 100)
    with open(os.path.join(tmp, "static", "1m"), "wb") as f:
        f.write(b"m" * 1048576)
    return f"""daemon off; master_process on; worker_processes 1; user root;
pid {tmp}/backend.pid; error_log {tmp}/backend-error.log;
events {{ worker_connections 8192; }}
http {{
    access_log off; keepalive_requests 10000000; keepalive_timeout 75s;
    open_file_cache max=100; sendfile on; tcp_nopush on;
    client_body_temp_path {tmp}/bb; proxy_temp_path {tmp}/bp; fastcgi_temp_path {tmp}/bf; uwsgi_temp_path {tmp}/bu; scgi_temp_path {tmp}/bs;
    server {{
        listen 127.0.0.1:{port} reuseport backlog=4096;
        {"".join(f"listen 127.0.0.1:{p} reuseport backlog=4096; " for p in extra_ports)}
        location = /small {{ return 200 "{'x' * 100}"; }}
        location = /post {{ client_max_body_size 1m; return 200 "{'y' * 100}"; }}
        location = /direct/small {{ return 200 "{'x' * 100}"; }}
        location / {{ root {tmp}; }}
    }}
}}
"""


def make_cert(tmp):
    """An ECDSA P-256 certificate for the TLS scenarios (both proxies use it)."""
    crt, key = os.path.join(tmp, "bench.crt"), os.path.join(tmp, "bench.key")
    if not os.path.exists(crt):
        subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                        "-keyout", key, "-out", crt, "-days", "2", "-subj", "/CN=localhost"],
                       check=True, capture_output=True)
    return crt, key


def proxy_http(port, backend, extra, workers, access_log, keepalive_timeout="75s", tls=None, static_root="/nonexistent"):
    """`tls`: (port, certificate, key) adds a TLS listener to the same server."""
    tls_listen = f"listen 127.0.0.1:{tls[0]} ssl http2 reuseport backlog=4096; ssl_certificate {tls[1]}; ssl_certificate_key {tls[2]};" if tls else ""
    alog = f"access_log {access_log};" if access_log else "access_log off;"
    return f"""
    {alog}
    keepalive_requests 10000000;
    keepalive_timeout {keepalive_timeout};
    upstream be {{ server 127.0.0.1:{backend}; keepalive 64; keepalive_requests 10000000; }}
    upstream be3 {{ least_conn; server 127.0.0.1:{backend}; server 127.0.0.1:{extra[0]}; server 127.0.0.1:{extra[1]}; keepalive 64; keepalive_requests 10000000; }}
    server {{
        listen 127.0.0.1:{port} reuseport backlog=4096; {tls_listen}
        location / {{ proxy_pass http://be; proxy_http_version 1.1; proxy_set_header Connection ""; client_max_body_size 1m; }}
        location /lc3/ {{ proxy_pass http://be3/; proxy_http_version 1.1; proxy_set_header Connection ""; }}
        location /direct/ {{ proxy_pass http://127.0.0.1:{backend}/; }}
        location /static/ {{ root {static_root}; sendfile on; open_file_cache max=100; }}
        location /gz/ {{ proxy_pass http://be/; proxy_http_version 1.1; proxy_set_header Connection "";
                        gzip on; gzip_comp_level 1; gzip_proxied any; gzip_types text/plain application/json; }}
        location /lim/ {{ limit_req zone=bench burst=1000000 nodelay; proxy_pass http://be/; proxy_http_version 1.1; proxy_set_header Connection ""; }}
        location /auth/ {{ auth_basic "bench"; auth_basic_user_file {static_root}/htpasswd;
                          proxy_pass http://be/; proxy_http_version 1.1; proxy_set_header Connection ""; }}
    }}
    limit_req_zone $binary_remote_addr zone=bench:1m rate=10000000r/s;
"""


def proxy_stream(l4_port, backend):
    """The `stream {}` block of the L4 scenarios (the same for both proxies)."""
    return f"stream {{ server {{ listen 127.0.0.1:{l4_port} reuseport backlog=4096; proxy_pass 127.0.0.1:{backend}; }} }}"


NGINX_STREAM_MODULE = "/usr/lib/nginx/modules/ngx_stream_module.so"


def proxy_names(args):
    return ("nginx", "ringx") + (("ringx-epoll",) if args.epoll else ()) + (("ringx-b",) if args.ringx_b else ())


def start_proxies(args, backend_port, extra, log_on, names=None, worker_connections=8192, nofile=None,
                  keepalive_timeout="75s", tag=""):
    """Starts nginx and ringx on the same http block; returns the target list.

    The keyword arguments are for the idle mode: a subset of the targets, more
    worker_connections, `worker_rlimit_nofile`, a longer keepalive_timeout, and a tag
    that keeps each start's directory apart."""
    workers = args.workers
    t = {}
    rlimit = f"worker_rlimit_nofile {nofile}; " if nofile else ""
    for name in names or proxy_names(args):
        port, tls_port, l4_port = free_port(), free_port(), free_port()
        stream = proxy_stream(l4_port, backend_port)
        d = os.path.join(args.tmp, f"{name}-{'log' if log_on else 'nolog'}{tag}")
        os.makedirs(d, exist_ok=True)
        crt, key = make_cert(args.tmp)
        http = proxy_http(port, backend_port, extra, workers, os.path.join(d, "access.log") if log_on else None,
                          keepalive_timeout, (tls_port, crt, key), args.tmp)
        if name == "nginx":
            load = f"load_module {NGINX_STREAM_MODULE};\n" if os.path.exists(NGINX_STREAM_MODULE) else ""
            stream_n = stream if load else ""
            conf = f"""{load}daemon off; master_process on; worker_processes {workers}; worker_cpu_affinity auto; user root; {rlimit}
pid {d}/nginx.pid; error_log {d}/error.log;
events {{ worker_connections {worker_connections}; }}
http {{ client_body_temp_path {d}/b; proxy_temp_path {d}/p; fastcgi_temp_path {d}/f; uwsgi_temp_path {d}/u; scgi_temp_path {d}/s;
{http}
}}
{stream_n}
"""
            path = os.path.join(d, "nginx.conf")
            open(path, "w").write(conf)
            p = spawn([args.nginx, "-p", d, "-c", path], args.proxy_cpus, env=args.env)
            wait_port(port)
            time.sleep(0.2)
            pids = lambda p=p: [p.pid] + children(p.pid)
        else:
            conf = f"""daemon off; pid off; user root; worker_processes {workers}; worker_cpu_affinity auto; {rlimit}error_log {d}/error.log;
events {{ worker_connections {worker_connections}; }}
http {{
{http}
}}
{stream}
"""
            path = os.path.join(d, "ringx.conf")
            open(path, "w").write(conf)
            env = dict(os.environ, RINGX_EVENTS="epoll" if name == "ringx-epoll" else "io_uring")
            binary = args.ringx_b if name == "ringx-b" else args.ringx
            p = spawn([binary, "-c", path], args.proxy_cpus, env=env)
            wait_port(port)
            pids = lambda p=p: [p.pid]
        for pid in pids():
            renice(pid)
        t[name] = {"name": name, "port": port, "tls_port": tls_port, "l4_port": l4_port, "pids": pids, "proc": p}
    return t


def rss_kib(pids):
    """(VmRSS, Pss) summed over the processes, in KiB. VmRSS counts the pages an nginx
    master shares with its workers once per process; Pss (smaps_rollup) splits them."""
    rss = pss = 0
    for p in pids:
        try:
            with open(f"/proc/{p}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        rss += int(line.split()[1])
        except OSError:
            pass
        try:
            with open(f"/proc/{p}/smaps_rollup") as f:
                for line in f:
                    if line.startswith("Pss:"):
                        pss += int(line.split()[1])
        except OSError:
            pass
    return rss, pss


def stop_target(t):
    p = t["proc"]
    try:
        p.send_signal(signal.SIGTERM)
        p.wait(timeout=5)
    except subprocess.TimeoutExpired:
        p.kill()
        p.wait(timeout=5)
    except OSError:
        pass
    if p in PROCS:
        PROCS.remove(p)


def cpu_list(spec):
    out = set()
    for part in spec.split(","):
        a, _, b = part.partition("-")
        out.update(range(int(a), int(b or a) + 1))
    return out


def idle_plan(args):
    """Connections, worker_connections and worker_rlimit_nofile for --idle, after raising
    this process's own RLIMIT_NOFILE (the client holds every connection)."""
    n = args.idle
    wc = max(4096, 2 * n)  # nginx counts upstream connections in worker_connections too
    limit = idle_clients.raise_nofile(wc + 1024)
    if limit != resource.RLIM_INFINITY and limit < n + 512:
        n = max(limit - 512, 1)
        log(f"--idle {args.idle}: RLIMIT_NOFILE is {limit} here (ulimit -Hn), too low for the client to hold "
            f"{args.idle} connections; measuring {n} instead (raise the hard limit to run {args.idle})")
        wc = max(4096, 2 * n)
    nofile = wc + 1024 if limit == resource.RLIM_INFINITY else min(wc + 1024, limit)
    try:
        lo, hi = map(int, open("/proc/sys/net/ipv4/ip_local_port_range").read().split())
        if hi - lo + 1 < n + 100:
            n2 = hi - lo + 1 - 100
            log(f"--idle {n}: only {hi - lo + 1} local ports (net.ipv4.ip_local_port_range); measuring {n2} instead")
            n = n2
    except (OSError, ValueError):
        pass
    return n, wc, nofile


def run_idle(args, bport, extra, backend_pids):
    """The idle keep-alive memory scenario: for each target, a fresh proxy per round;
    RSS before, N connections that each served one GET and sit idle, RSS after."""
    n, wc, nofile = idle_plan(args)
    order = ["ringx", "nginx"] + (["ringx-epoll"] if args.epoll else []) + (["ringx-b"] if args.ringx_b else [])
    runs = {k: [] for k in order}
    own_cpus = os.sched_getaffinity(0)
    os.sched_setaffinity(0, cpu_list(args.client_cpus))  # the client runs in this process
    try:
        for rnd in range(args.rounds):
            rot = order[rnd % len(order):] + order[:rnd % len(order)]
            for name in rot:
                wait_quiet(backend_pids(), max_wait=10)
                t = start_proxies(args, bport, extra, False, names=(name,), worker_connections=wc, nofile=nofile,
                                  keepalive_timeout=f"{args.idle_keepalive}s", tag=f"-idle{rnd}")[name]
                try:
                    warm = idle_clients.IdleClients(t["port"], 64, concurrency=args.idle_concurrency)
                    warm.open()  # first upstream connections, lazy allocations: not counted
                    warm.close()
                    time.sleep(args.idle_settle)
                    rss0, pss0 = rss_kib(t["pids"]())
                    cl = idle_clients.IdleClients(t["port"], n, concurrency=args.idle_concurrency,
                                                  timeout=max(30.0, n / 200))
                    t0 = time.monotonic()
                    cl.open()
                    open_s = time.monotonic() - t0
                    alive = cl.watch(args.idle_settle)
                    rss1, pss1 = rss_kib(t["pids"]())
                    nfds = sum(len(os.listdir(f"/proc/{p}/fd")) for p in t["pids"]() if os.path.isdir(f"/proc/{p}/fd"))
                    cl.close()
                    time.sleep(args.idle_settle)
                    rss2, pss2 = rss_kib(t["pids"]())
                finally:
                    stop_target(t)
                m = {
                    "requested": n, "idle": alive, "errors": cl.errors, "open_s": round(open_s, 2),
                    "rss_before_kib": rss0, "rss_after_kib": rss1, "rss_closed_kib": rss2,
                    "pss_before_kib": pss0, "pss_after_kib": pss1, "pss_closed_kib": pss2,
                    "growth_kib": rss1 - rss0, "pss_growth_kib": pss1 - pss0,
                    "bytes_per_conn": (rss1 - rss0) * 1024 / alive if alive else None,
                    "pss_bytes_per_conn": (pss1 - pss0) * 1024 / alive if alive else None,
                    "proxy_fds": nfds,
                }
                runs[name].append(m)
                err = f"  errors {cl.errors}" if cl.errors else ""
                log(f"idle round {rnd + 1} {name:11} {alive:6} idle in {open_s:5.1f} s  RSS {rss0 / 1024:7.1f} -> {rss1 / 1024:7.1f} MiB"
                    f"  {m['bytes_per_conn'] or 0:8.0f} B/conn  closed {rss2 / 1024:7.1f} MiB{err}")
    finally:
        os.sched_setaffinity(0, own_cpus)
    out = {"connections": n, "requested": args.idle, "worker_connections": wc, "worker_rlimit_nofile": nofile,
           "keepalive_timeout_s": args.idle_keepalive, "settle_s": args.idle_settle, "concurrency": args.idle_concurrency,
           "path": "/small", "runs": runs, "summary": {}, "ratios": {}}
    keys = ("idle", "rss_before_kib", "rss_after_kib", "rss_closed_kib", "growth_kib", "bytes_per_conn",
            "pss_growth_kib", "pss_bytes_per_conn")
    for name in order:
        out["summary"][name] = {k: summarize([r[k] for r in runs[name]]) for k in keys}
        out["summary"][name]["failed"] = sum(sum(r["errors"].values()) for r in runs[name])
    for name in order:
        pairs = [(x["bytes_per_conn"], y["bytes_per_conn"]) for x, y in zip(runs[name], runs["nginx"])]
        vals = [a / b for a, b in pairs if a is not None and b]
        out["ratios"][f"{name}_nginx"] = statistics.median(vals) if vals else None
    return out


def summarize(vals):
    vals = [v for v in vals if v is not None]
    if not vals:
        return None
    return {"median": statistics.median(vals), "min": min(vals), "max": max(vals)}


def machine():
    model = "unknown"
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    commit = subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    dirty = subprocess.run(["git", "-C", ROOT, "status", "--porcelain", "--untracked-files=no"], capture_output=True, text=True).stdout.strip()
    return {"cpu": model, "cpus": os.cpu_count(), "kernel": platform.release(), "ringx_commit": commit + ("-dirty" if dirty else "")}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=6)
    ap.add_argument("--duration", type=int, default=4)
    ap.add_argument("--scenarios", default=None, help="comma-separated (default: small,16k,1m,post4k,close,c1000,lc3,small_log; none with --idle)")
    ap.add_argument("--with-logs", action="store_true", help="add an access-log variant (NAME_log) of every scenario")
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--proxy-cpus", default="0")
    ap.add_argument("--client-cpus", default="1")
    ap.add_argument("--backend-cpus", default="1")
    ap.add_argument("--nginx", default=shutil.which("nginx") or "/usr/sbin/nginx")
    ap.add_argument("--wrk", default=shutil.which("wrk") or "/usr/bin/wrk")
    ap.add_argument("--h2load", default=shutil.which("h2load") or "/usr/bin/h2load")
    ap.add_argument("--ringx", default=os.path.join(ROOT, "target/release/ringx"))
    ap.add_argument("--loadgen", default=os.path.join(ROOT, "target/release/examples/loadgen"), help="the open-loop generator for --fixed-rate")
    ap.add_argument("--lib-path", default="", help="LD_LIBRARY_PATH for nginx/wrk copied as files")
    ap.add_argument("--no-build", action="store_true")
    ap.add_argument("--ringx-b", default="", help="a second ringx binary (another commit) as a target in the same rotation, for A/B")
    ap.add_argument("--epoll", action="store_true", help="add ringx on the epoll driver (RINGX_EVENTS=epoll) as a target in the same rotation")
    ap.add_argument("--fixed-rate", action="store_true", help="also measure latency at a fixed rate of 50%% and 80%% of nginx's max (small), open loop")
    ap.add_argument("--idle", type=int, default=0, metavar="N",
                    help="idle keep-alive memory: RSS growth of each proxy holding N idle client connections (each after one GET)")
    ap.add_argument("--idle-concurrency", type=int, default=64, help="--idle: connections between connect and response at a time")
    ap.add_argument("--idle-settle", type=float, default=2.0, help="--idle: seconds to wait before each RSS reading")
    ap.add_argument("--idle-keepalive", type=int, default=120, help="--idle: keepalive_timeout (s) in the proxies' config")
    ap.add_argument("--write-docs", action="store_true", help="write the table into docs/benchmarks.md")
    ap.add_argument("--out", default=os.path.join(HERE, "out"))
    args = ap.parse_args()
    if args.scenarios is None:
        args.scenarios = "" if args.idle else "small,16k,1m,post4k,close,c1000,lc3,small_log"
    args.env = dict(os.environ)
    if args.lib_path:
        args.env["LD_LIBRARY_PATH"] = args.lib_path
        os.environ["LD_LIBRARY_PATH"] = args.lib_path
    for tool in (args.nginx, args.wrk) + ((args.loadgen,) if args.fixed_rate and args.no_build else ()):
        if not os.path.exists(tool):
            raise SystemExit(f"{tool} not found: run scripts/install-bench-deps.sh or pass --nginx/--wrk")
    if not args.no_build:
        subprocess.run(["cargo", "build", "--release", "--quiet", "--bin", "ringx", "--example", "loadgen"], cwd=ROOT, check=True)
    args.tmp = tempfile.mkdtemp(prefix="ringx-bench-")
    results = {"machine": machine(), "nginx": subprocess.run([args.nginx, "-v"], capture_output=True, text=True, env=args.env).stderr.strip(),
               "layout": {"workers": args.workers, "proxy_cpus": args.proxy_cpus, "client_cpus": args.client_cpus, "backend_cpus": args.backend_cpus},
               "rounds": args.rounds, "duration_s": args.duration, "scenarios": {}}
    if args.ringx_b:
        results["ringx_b"] = args.ringx_b
    try:
        bport = free_port()
        extra = [free_port(), free_port()]
        bconf = os.path.join(args.tmp, "backend.conf")
        open(bconf, "w").write(backend_conf(args.tmp, bport, extra))
        os.makedirs(os.path.join(args.tmp, "bb"), exist_ok=True)
        b = spawn([args.nginx, "-p", args.tmp, "-c", bconf], args.backend_cpus, env=args.env)
        wait_port(bport)
        time.sleep(0.2)
        backend_pids = lambda: [b.pid] + children(b.pid)
        for pid in backend_pids():
            renice(pid)
        scen_list = [s for s in args.scenarios.split(",") if s]
        if args.with_logs:
            scen_list += [s + "_log" for s in scen_list if not s.endswith("_log") and s + "_log" not in scen_list]
        for s_ in scen_list:
            if base(s_) not in SCENARIOS:
                raise SystemExit(f"unknown scenario {s_}")
        proxies = {}
        for scen in scen_list:
            log_on = scen.endswith("_log")
            if log_on not in proxies:
                proxies[log_on] = start_proxies(args, bport, extra, log_on)
            t = dict(proxies[log_on])
            t["direct"] = {"name": "direct", "port": bport, "pids": backend_pids}
            # The backend has no TLS port: the TLS scenarios compare the proxies only.
            direct = [] if base(scen).startswith(("tls_", "h2_")) else ["direct"]
            order = ["ringx", "nginx"] + direct + (["ringx-epoll"] if args.epoll else []) + (["ringx-b"] if args.ringx_b else [])
            runs = {k: [] for k in order}
            for rnd in range(args.rounds):
                rot = order[rnd % len(order):] + order[:rnd % len(order)]
                for name in rot:
                    wait_quiet([p for x in t.values() for p in x["pids"]()])
                    m = measure(args, t[name], scen, args.duration)
                    runs[name].append(m)
                    log(f"{scen:10} round {rnd + 1} {name:6} {m['rps']:10.0f} req/s  p99 {m['p99_ms']:7.2f} ms  "
                        + (f"cpu {m['cpu_us_per_req']:6.1f} us/req" if m["cpu_us_per_req"] is not None else ""))
            out = {"note": note(scen), "runs": runs, "summary": {}}
            for name in order:
                out["summary"][name] = {k: summarize([r[k] for r in runs[name]]) for k in ("rps", "p50_ms", "p99_ms", "p999_ms", "cpu_us_per_req", "rss_kib")}
                out["summary"][name]["errors"] = sum(r["errors"] + r["non2xx"] for r in runs[name])
            def ratio(k, a, b):
                # None where a figure is missing (h2load gives no p99).
                rs = [x[k] / y[k] for x, y in zip(runs[a], runs[b]) if x[k] and y[k]]
                return statistics.median(rs) if rs else None
            out["ratios"] = {
                "rps_ringx_nginx": ratio("rps", "ringx", "nginx"),
                "cpu_ringx_nginx": ratio("cpu_us_per_req", "ringx", "nginx"),
                "p99_ringx_nginx": ratio("p99_ms", "ringx", "nginx"),
                "rps_ringx_direct": ratio("rps", "ringx", "direct") if direct else None,
            }
            if args.ringx_b:
                out["ratios"].update({
                    "cpu_ringx_b": ratio("cpu_us_per_req", "ringx", "ringx-b"),
                    "rps_ringx_b": ratio("rps", "ringx", "ringx-b"),
                })
            if args.epoll:
                out["ratios"].update({
                    "rps_epoll_nginx": ratio("rps", "ringx-epoll", "nginx"),
                    "cpu_epoll_nginx": ratio("cpu_us_per_req", "ringx-epoll", "nginx"),
                    "cpu_ringx_epoll": ratio("cpu_us_per_req", "ringx", "ringx-epoll"),
                })
            results["scenarios"][scen] = out
        if args.fixed_rate:
            t = dict(proxies.get(False) or start_proxies(args, bport, extra, False))
            nginx_max = results["scenarios"].get("small", {}).get("summary", {}).get("nginx", {}).get("rps", {}) or {}
            nmax = nginx_max.get("median") or measure(args, t["nginx"], "small", args.duration)["rps"]
            fixed = {}
            for frac in (0.5, 0.8):
                rate = nmax * frac
                runs = {"ringx": [], "nginx": []}
                for rnd in range(args.rounds):
                    for name in (["ringx", "nginx"] if rnd % 2 == 0 else ["nginx", "ringx"]):
                        wait_quiet([p for x in t.values() for p in x["pids"]()])
                        m = measure(args, t[name], "small", args.duration, rate)
                        runs[name].append(m)
                        log(f"fixed {frac:.0%} round {rnd + 1} {name:6} {m['rps']:9.0f} req/s  p99 {m['p99_ms']:6.2f} ms  cpu {m['cpu_us_per_req']:6.1f} us/req")
                fixed[f"{int(frac * 100)}%"] = {
                    "target_rps": rate,
                    "summary": {n: {k: summarize([r[k] for r in runs[n]]) for k in ("rps", "p50_ms", "p99_ms", "p999_ms", "cpu_us_per_req")} for n in runs},
                    "runs": runs,
                }
            results["fixed_rate"] = fixed
        if args.idle:
            for ts in proxies.values():  # the idle mode starts a fresh proxy per run
                for x in ts.values():
                    stop_target(x)
            results["idle"] = run_idle(args, bport, extra, backend_pids)
    finally:
        for p in PROCS:
            try:
                p.send_signal(signal.SIGTERM)
            except OSError:
                pass
        # SIGTERM lets an nginx master stop its workers; SIGKILL only after 5 s
        # (killing the master outright would orphan its workers).
        for p in PROCS:
            try:
                p.wait(timeout=5)
            except subprocess.TimeoutExpired:
                p.kill()
                try:
                    p.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    pass
        shutil.rmtree(args.tmp, ignore_errors=True)
    os.makedirs(args.out, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    jpath = os.path.join(args.out, f"results-{stamp}.json")
    json.dump(results, open(jpath, "w"), indent=1)
    table = markdown(results)
    idle_table = markdown_idle(results) if "idle" in results else ""
    print(table + ("\n" if table and idle_table else "") + idle_table, end="")
    log(f"results: {jpath}")
    if args.write_docs:
        if table:
            write_docs(table)
        if idle_table:
            write_docs(idle_table, "<!-- bench-idle:start -->", "<!-- bench-idle:end -->")


def fmt(s, digits=1, scale=1.0):
    if not s:
        return "-"
    return f"{s['median'] * scale:.{digits}f} [{s['min'] * scale:.{digits}f}-{s['max'] * scale:.{digits}f}]"


def machine_line(r):
    m = r["machine"]
    return (f"Machine: {m['cpu']}, {m['cpus']} CPUs, Linux {m['kernel']}; ringx {m['ringx_commit']}; {r['nginx']}; "
            f"{r['layout']['workers']} worker(s), proxy on CPU {r['layout']['proxy_cpus']}, client on {r['layout']['client_cpus']}, "
            f"backend on {r['layout']['backend_cpus']}")


def markdown_idle(r):
    i = r["idle"]
    lines = [
        machine_line(r) + f"; {r['rounds']} rounds, a fresh proxy per run, medians [min-max].",
        "",
        f"Idle keep-alive memory: {i['connections']} client connections, each after one keep-alive GET {i['path']} "
        f"(100 B, proxied), at most {i['concurrency']} in flight at a time; RSS read {i['settle_s']:g} s after the last response. "
        f"RSS = VmRSS summed over the proxy's processes (nginx: master + workers; ringx: one process). "
        f"worker_connections {i['worker_connections']}, worker_rlimit_nofile {i['worker_rlimit_nofile']}, "
        f"keepalive_timeout {i['keepalive_timeout_s']}s.",
        "",
        "| target | connections | RSS before MiB | RSS after MiB | growth KiB | bytes/connection | ratio to nginx | RSS after close MiB | failed |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for t in [t for t in ("ringx", "ringx-epoll", "ringx-b", "nginx") if t in i["summary"]]:
        x = i["summary"][t]
        q = i["ratios"].get(f"{t}_nginx")
        lines.append(
            f"| {t} | {fmt(x['idle'], 0)} | {fmt(x['rss_before_kib'], 1, 1 / 1024)} | {fmt(x['rss_after_kib'], 1, 1 / 1024)} | "
            f"{fmt(x['growth_kib'], 0)} | {fmt(x['bytes_per_conn'], 0)} | {f'{q:.2f}' if q is not None else '-'} | "
            f"{fmt(x['rss_closed_kib'], 1, 1 / 1024)} | {x['failed']} |"
        )
    return "\n".join(lines) + "\n"


def markdown(r):
    if not r["scenarios"] and "fixed_rate" not in r:
        return ""
    m = r["machine"]
    lines = [
        f"Machine: {m['cpu']}, {m['cpus']} CPUs, Linux {m['kernel']}; ringx {m['ringx_commit']}; {r['nginx']}; "
        f"{r['layout']['workers']} worker(s), proxy on CPU {r['layout']['proxy_cpus']}, wrk on {r['layout']['client_cpus']}, "
        f"backend on {r['layout']['backend_cpus']}; {r['rounds']} rounds x {r['duration_s']} s, medians [min-max].",
        "",
        "| scenario | target | req/s | p50 ms | p99 ms | p99.9 ms | CPU µs/req | peak RSS MiB | errors |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name, s in r["scenarios"].items():
        for t in [t for t in ("ringx", "ringx-epoll", "ringx-b", "nginx", "direct") if t in s["summary"]]:
            x = s["summary"][t]
            lines.append(
                f"| {name} | {t} | {fmt(x['rps'], 0)} | {fmt(x['p50_ms'], 2)} | {fmt(x['p99_ms'], 2)} | {fmt(x['p999_ms'], 2)} | "
                f"{fmt(x['cpu_us_per_req'], 1)} | {fmt(x['rss_kib'], 1, 1 / 1024)} | {x['errors']} |"
            )
    lines += ["", "| scenario | req/s ringx/nginx | CPU/req ringx/nginx | p99 ringx/nginx | req/s ringx/direct |", "|---|---|---|---|---|"]
    for name, s in r["scenarios"].items():
        q = s["ratios"]
        lines.append(f"| {name} ({s['note']}) | {q['rps_ringx_nginx']:.2f} | {q['cpu_ringx_nginx']:.2f} | {'-' if q['p99_ringx_nginx'] is None else round(q['p99_ringx_nginx'], 2)} | {'-' if q['rps_ringx_direct'] is None else round(q['rps_ringx_direct'], 2)} |")
    if any("cpu_epoll_nginx" in s["ratios"] for s in r["scenarios"].values()):
        lines += ["", "| scenario | req/s epoll/nginx | CPU/req epoll/nginx | CPU/req io_uring/epoll |", "|---|---|---|---|"]
        for name, s in r["scenarios"].items():
            q = s["ratios"]
            lines.append(f"| {name} | {q['rps_epoll_nginx']:.2f} | {q['cpu_epoll_nginx']:.2f} | {q['cpu_ringx_epoll']:.2f} |")
    if any("cpu_ringx_b" in s["ratios"] for s in r["scenarios"].values()):
        lines += ["", f"A/B against {r.get('ringx_b', 'ringx-b')}:", "", "| scenario | CPU/req ringx/ringx-b | req/s ringx/ringx-b |", "|---|---|---|"]
        for name, s in r["scenarios"].items():
            q = s["ratios"]
            lines.append(f"| {name} | {q['cpu_ringx_b']:.2f} | {q['rps_ringx_b']:.2f} |")
    if "fixed_rate" in r:
        lines += ["", "Fixed offered load (small, 16 connections, open loop: latency from each request's scheduled send time):", "",
                  "| load | target | req/s | p50 ms | p99 ms | p99.9 ms | CPU µs/req |", "|---|---|---|---|---|---|---|"]
        for load, f in r["fixed_rate"].items():
            for t in ("ringx", "nginx"):
                x = f["summary"][t]
                lines.append(f"| {load} of nginx max | {t} | {fmt(x['rps'], 0)} | {fmt(x['p50_ms'], 2)} | {fmt(x['p99_ms'], 2)} | {fmt(x['p999_ms'], 2)} | {fmt(x['cpu_us_per_req'], 1)} |")
    return "\n".join(lines) + "\n"


def write_docs(table, start="<!-- bench:start -->", end="<!-- bench:end -->"):
    path = os.path.join(ROOT, "docs", "benchmarks.md")
    text = open(path).read() if os.path.exists(path) else ""
    block = f"{start}\n{table}{end}"
    if start in text and end in text:
        text = text[: text.index(start)] + block + text[text.index(end) + len(end):]
    else:
        text += "\n" + block + "\n"
    open(path, "w").write(text)


if __name__ == "__main__":
    main()
