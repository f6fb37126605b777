"""Idle keep-alive clients for bench.py's `--idle N` mode.

`IdleClients(port, n).open()` opens n TCP connections to 127.0.0.1:port, at most
`concurrency` of them between connect and a complete response at a time, sends one
small keep-alive GET on each, reads each response fully (Content-Length or chunked)
and then leaves the connection open and idle. `watch(seconds)` waits while noting any
connection the server closes; `close()` closes them all. One thread, non-blocking
sockets and a selector (epoll), bounded in time.
"""

import errno
import os
import resource
import selectors
import socket
import time

CONNECTING, READING, IDLE, FAILED = range(4)


def raise_nofile(want):
    """Raises this process's RLIMIT_NOFILE: the soft limit to the hard one, and the
    hard one too where allowed (root). Returns the soft limit now in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < want:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (want, want))
            return want
        except (ValueError, OSError):
            pass
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        soft = hard
    except (ValueError, OSError):
        pass
    return soft


def response_done(buf):
    """(complete, status, keep_alive) for the bytes read so far of one response."""
    end = buf.find(b"\r\n\r\n")
    if end < 0:
        return False, None, None
    head = buf[:end].decode("latin-1").split("\r\n")
    try:
        status = int(head[0].split()[1])
    except (IndexError, ValueError):
        return True, None, False
    fields = {}
    for line in head[1:]:
        k, _, v = line.partition(":")
        fields[k.strip().lower()] = v.strip().lower()
    keep = fields.get("connection") != "close" and head[0].startswith("HTTP/1.1")
    body = buf[end + 4:]
    if "content-length" in fields:
        return len(body) >= int(fields["content-length"]), status, keep
    if "chunked" in fields.get("transfer-encoding", ""):
        return body.endswith(b"0\r\n\r\n"), status, keep
    return False, status, False  # body until close: not a keep-alive response


class IdleClients:
    def __init__(self, port, n, path="/small", concurrency=64, timeout=60.0):
        self.port, self.n, self.concurrency, self.timeout = port, n, concurrency, timeout
        self.req = f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: ringx-bench-idle\r\n\r\n".encode()
        self.socks = []  # every socket opened, in order
        self.state = {}
        self.buf = {}
        self.errors = {}  # reason -> count
        self.closed_by_server = 0
        self.sel = selectors.DefaultSelector()

    def _fail(self, s, why):
        self.errors[why] = self.errors.get(why, 0) + 1
        self.state[s] = FAILED
        try:
            self.sel.unregister(s)
        except (KeyError, ValueError):
            pass
        s.close()

    def open(self):
        """Opens the connections; returns the number now idle after one good response."""
        started = inflight = idle = 0
        deadline = time.monotonic() + self.timeout
        while (started < self.n or inflight) and time.monotonic() < deadline:
            while started < self.n and inflight < self.concurrency:
                s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                s.setblocking(False)
                s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                started += 1
                rc = s.connect_ex(("127.0.0.1", self.port))
                if rc not in (0, errno.EINPROGRESS):
                    self.errors[os.strerror(rc)] = self.errors.get(os.strerror(rc), 0) + 1
                    s.close()
                    continue
                self.socks.append(s)
                self.state[s] = CONNECTING
                self.buf[s] = b""
                self.sel.register(s, selectors.EVENT_WRITE)
                inflight += 1
            for key, _ in self.sel.select(timeout=0.5):
                s = key.fileobj
                if self.state[s] == CONNECTING:
                    err = s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                    if err:
                        self._fail(s, "connect: " + os.strerror(err))
                        inflight -= 1
                        continue
                    try:
                        s.send(self.req)  # ~70 bytes: one send into an empty socket buffer
                    except OSError as e:
                        self._fail(s, f"send: {e.strerror}")
                        inflight -= 1
                        continue
                    self.state[s] = READING
                    self.sel.modify(s, selectors.EVENT_READ)
                    continue
                try:
                    chunk = s.recv(65536)
                except BlockingIOError:
                    continue
                except OSError as e:
                    self._fail(s, f"recv: {e.strerror}")
                    inflight -= 1
                    continue
                if not chunk:
                    self._fail(s, "closed before a full response")
                    inflight -= 1
                    continue
                self.buf[s] += chunk
                done, status, keep = response_done(self.buf[s])
                if not done:
                    continue
                inflight -= 1
                if status != 200:
                    self._fail(s, f"status {status}")
                elif not keep:
                    self._fail(s, "response not keep-alive")
                else:
                    self.sel.unregister(s)
                    self.state[s] = IDLE
                    self.buf[s] = b""
                    idle += 1
        if started < self.n or inflight:
            self.errors["harness timeout"] = self.errors.get("harness timeout", 0) + (self.n - started) + inflight
        return idle

    def idle_count(self):
        return sum(1 for s in self.socks if self.state[s] == IDLE)

    def watch(self, seconds):
        """Waits `seconds` while watching the idle connections; any the server closes
        (or sends bytes on) is counted and dropped. Returns the number still idle."""
        idle = [s for s in self.socks if self.state[s] == IDLE]
        for s in idle:
            self.sel.register(s, selectors.EVENT_READ)
        end = time.monotonic() + seconds
        while True:
            left = end - time.monotonic()
            if left <= 0:
                break
            for key, _ in self.sel.select(timeout=left):
                s = key.fileobj
                self.closed_by_server += 1
                self._fail(s, "closed by the server while idle")
        for s in self.socks:
            if self.state[s] == IDLE:
                self.sel.unregister(s)
        return self.idle_count()

    def close(self):
        for s in self.socks:
            if self.state[s] != FAILED:
                s.close()
        self.sel.close()
        self.socks = []
