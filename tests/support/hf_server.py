#!/usr/bin/env python3
"""A local stand-in for huggingface.co and GitHub archives, speaking their URL layout over real HTTP.

The CI hosts cannot reach Hugging Face or GitHub. The roles' download code is the production
code; only the endpoint changes. Served from ROOT (prepare_artifacts.py fills it):

  GET|HEAD /<org>/<repo>/resolve/<revision>/<path>   file bytes, with Range (206) support,
                                                      ETag and X-Linked-Etag = sha256 as HF does
  GET /api/models/<org>/<repo>/tree/<revision>[/<path>][?recursive=true]
                                                      JSON listing with lfs.oid (sha256) and size
  GET|HEAD /<anything else>                           static file (GitHub /archive/<commit>.tar.gz)

Every request is appended to the request log as one JSON line (client address, method, path,
range, status, bytes sent), so tests can prove a download resumed instead of restarting, and
which host fetched what.

Fault injection (all off by default), for what the real Hub and its CDN do:
  --max-bytes-per-request N     cut every file transfer after N bytes (a dropped link)
  --corrupt SUBSTRING           flip one byte mid-file (a bad proxy)
  --rate-limit-first N          the first N GETs under /resolve/ answer 429 (or --rate-limit-status 503)
                                with Retry-After: --retry-after SECONDS
  --redirect-expiring BYTES     /resolve/ GETs answer 302 to /cdn/<token>/<path> (as HF sends LFS files to
                                its CDN); a token that has served BYTES bytes (or is --redirect-ttl seconds
                                old) answers --redirect-expired-status (403) to new requests; 0 = never
  --ignore-range                answer 200 with the whole file to ranged GETs
  --per-connection-rate B/S     send each response's body at most at B bytes per second

Usage: hf_server.py --root DIR [--port 18080] [--bind 127.0.0.1] [--daemon --pidfile F --log F] | --stop --pidfile F
"""

import argparse
import hashlib
import json
import os
import signal
import socket
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

LFS_POINTER_SIZE = 134  # size of a git-lfs pointer file, reported by HF as lfs.pointerSize


class Sha256Cache:
    """sha256 of files by (path, size, mtime): large models are hashed once per change.

    A header-only test file (a published model's GGUF header, its data left sparse: hundreds of GB
    of zeros that no test downloads) declares its listing checksum in a sidecar `<file>.sha256`
    instead of being hashed.
    """

    def __init__(self):
        self._lock = threading.Lock()
        self._sums = {}
        self._busy = {}  # one hashing per file: concurrent first requests wait for it instead of re-hashing

    def get(self, path):
        declared = path.with_name(path.name + ".sha256")
        if declared.is_file():
            return declared.read_text().split()[0]
        stat = path.stat()
        key = (str(path), stat.st_size, stat.st_mtime_ns)
        with self._lock:
            if key in self._sums:
                return self._sums[key]
            busy = self._busy.setdefault(key, threading.Lock())
        with busy:
            with self._lock:
                if key in self._sums:
                    return self._sums[key]
            digest = hashlib.sha256()
            with open(path, "rb") as handle:
                for block in iter(lambda: handle.read(1 << 20), b""):
                    digest.update(block)
            with self._lock:
                self._sums[key] = digest.hexdigest()
            return self._sums[key]


def parse_range(header, size):
    """Return (start, end) inclusive for a single 'bytes=a-b' range, or None if absent/invalid."""
    if not header or not header.startswith("bytes=") or "," in header:
        return None
    first, _, last = header[len("bytes=") :].partition("-")
    try:
        if first == "":
            start, end = max(size - int(last), 0), size - 1
        else:
            start = int(first)
            end = int(last) if last else size - 1
    except ValueError:
        return None
    if start >= size or start > end:
        return "unsatisfiable"
    return start, min(end, size - 1)


class Handler(BaseHTTPRequestHandler):
    server_version = "llm-test-hub/1"
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):  # quiet stderr; the JSON request log says what happened
        pass

    def _record(self, status, sent, rng=None):
        entry = {"time": round(time.time(), 3), "client": self.client_address[0], "method": self.command,
                 "path": self.path,
                 "range": self.headers.get("Range"), "status": status, "bytes": sent,
                 "authorized": bool(self.headers.get("Authorization"))}
        if rng:
            entry["served_range"] = list(rng)
        if self.server.request_log:
            with self.server.log_lock, open(self.server.request_log, "a") as log:
                log.write(json.dumps(entry) + "\n")

    def _send_json(self, status, payload):
        body = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)
        self._record(status, len(body))

    def _resolve_path(self, url_path):
        target = (self.server.root / unquote(url_path).lstrip("/")).resolve()
        if self.server.root not in target.parents and target != self.server.root:
            return None
        return target

    def do_HEAD(self):
        self.do_GET()

    def do_GET(self):
        url = urlsplit(self.path)
        parts = url.path.strip("/").split("/")
        if len(parts) >= 6 and parts[:2] == ["api", "models"] and parts[4] == "tree":
            recursive = parse_qs(url.query).get("recursive", ["false"])[0] in ("1", "true", "True")
            return self._tree(parts[2] + "/" + parts[3], parts[5], "/".join(parts[6:]), recursive)
        if parts[0] == "cdn" and len(parts) > 2:
            return self._cdn(parts[1], "/" + "/".join(parts[2:]))
        target = self._resolve_path(url.path)
        if target is None or not target.is_file():
            return self._send_json(404, {"error": "Entry not found"})
        if "/resolve/" in url.path and self.command == "GET":
            if self._rate_limited():
                return None
            if self.server.redirect_expiring is not None:
                return self._redirect(url.path)
        return self._file(target, "/resolve/" in url.path)

    def _rate_limited(self):
        with self.server.log_lock:
            limited = self.server.rate_limit_left > 0
            self.server.rate_limit_left -= limited
        if not limited:
            return False
        body = b'{"error": "rate limited"}'
        self.send_response(self.server.rate_limit_status)
        self.send_header("Retry-After", self.server.retry_after)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
        self._record(self.server.rate_limit_status, len(body))
        return True

    def _redirect(self, path):
        """Like HF for LFS files: 302 to a signed CDN URL whose token expires."""
        token = os.urandom(8).hex()
        with self.server.log_lock:
            self.server.tokens[token] = {"issued": time.monotonic(), "served": 0}
        self.send_response(302)
        self.send_header("Location", f"/cdn/{token}{path}")
        self.send_header("Content-Length", "0")
        self.end_headers()
        self._record(302, 0)

    def _cdn(self, token, path):
        with self.server.log_lock:
            grant = self.server.tokens.get(token)
            limit, ttl = self.server.redirect_expiring, self.server.redirect_ttl
            expired = grant is None or (limit and grant["served"] >= limit) or (
                ttl is not None and time.monotonic() - grant["issued"] > ttl)
        if expired:
            return self._send_json(self.server.redirect_expired_status, {"error": "Request has expired"})
        target = self._resolve_path(path)
        if target is None or not target.is_file():
            return self._send_json(404, {"error": "Entry not found"})
        return self._file(target, True, grant)

    def _file(self, target, is_model_file, grant=None):
        size = target.stat().st_size
        rng = None if self.server.ignore_range else parse_range(self.headers.get("Range"), size)
        if rng == "unsatisfiable":
            self.send_response(416)
            self.send_header("Content-Range", f"bytes */{size}")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return self._record(416, 0)
        start, end = rng if rng else (0, size - 1)
        length = end - start + 1 if size else 0
        self.send_response(206 if rng else 200)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Accept-Ranges", "bytes")
        self.send_header("Content-Length", str(length))
        if rng:
            self.send_header("Content-Range", f"bytes {start}-{end}/{size}")
        if is_model_file:
            digest = self.server.sums.get(target)
            self.send_header("ETag", f'"{digest}"')
            self.send_header("X-Linked-Etag", f'"{digest}"')
            self.send_header("X-Linked-Size", str(size))
        self.end_headers()
        sent = 0
        if self.command != "HEAD":
            limit = self.server.max_bytes_per_request
            rate = self.server.per_connection_rate
            began = time.monotonic()
            with open(target, "rb") as handle:
                handle.seek(start)
                remaining = length
                while remaining > 0:
                    block = handle.read(min(256 << 10 if rate else 1 << 20, remaining))
                    if not block:
                        break
                    at = size // 2 - (start + sent)  # the middle of the file, relative to this block
                    if self.server.corrupt and self.server.corrupt in str(target) and 0 <= at < len(block):
                        # Fault injection: one flipped byte mid-file, as a bad link or proxy would do.
                        block = block[:at] + bytes([block[at] ^ 0xFF]) + block[at + 1 :]
                    if rate:  # throttle: a block leaves when rate x elapsed covers it (256 KiB steps keep it smooth)
                        ahead = (sent + len(block)) / rate - (time.monotonic() - began)
                        if ahead > 0:
                            time.sleep(ahead)
                    if limit is not None and sent + len(block) > limit:
                        # Fault injection: cut the connection mid-transfer, like a dropped link.
                        block = block[: max(limit - sent, 0)]
                        self.wfile.write(block)
                        sent += len(block)
                        self._record(206 if rng else 200, sent, (start, end))
                        self.close_connection = True
                        self.connection.shutdown(socket.SHUT_RDWR)
                        return None
                    self.wfile.write(block)
                    sent += len(block)
                    remaining -= len(block)
                    if grant is not None:
                        with self.server.log_lock:
                            grant["served"] += len(block)
        return self._record(206 if rng else 200, sent, (start, end) if rng else None)

    def _tree(self, repo, revision, sub, recursive):
        base = self.server.root / repo / "resolve" / revision
        folder = (base / sub) if sub else base
        if not folder.is_dir():
            return self._send_json(404, {"error": f"{repo}@{revision}/{sub} not found"})
        entries = []
        walker = folder.rglob("*") if recursive else folder.iterdir()
        for path in sorted(walker):
            rel = str(path.relative_to(base))
            if path.is_dir():
                entries.append({"type": "directory", "oid": git_oid(rel),
                                "size": 0, "path": rel})
            elif path.suffix != ".part":
                digest = self.server.sums.get(path)
                size = path.stat().st_size
                entries.append({"type": "file", "oid": git_oid(digest), "size": size,
                                "path": rel, "lfs": {"oid": digest, "size": size, "pointerSize": LFS_POINTER_SIZE}})
        return self._send_json(200, entries)


def git_oid(text):
    """Stand-in for a git object id (HF reports one per entry); not used for security."""
    return hashlib.sha1(text.encode(), usedforsecurity=False).hexdigest()


def port_open(port, host="127.0.0.1"):
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) == 0


def pid_alive(pidfile):
    try:
        pid = int(Path(pidfile).read_text())
        os.kill(pid, 0)
        return pid
    except (OSError, ValueError):
        return None


def serve(args):
    server = ThreadingHTTPServer((args.bind, args.port), Handler)
    server.daemon_threads = True
    server.root = Path(args.root).resolve()
    server.sums = Sha256Cache()
    server.request_log = args.request_log
    server.log_lock = threading.Lock()
    server.max_bytes_per_request = args.max_bytes_per_request
    server.corrupt = args.corrupt
    server.rate_limit_left = args.rate_limit_first
    server.rate_limit_status = args.rate_limit_status
    server.retry_after = args.retry_after
    server.redirect_expiring = args.redirect_expiring
    server.redirect_ttl = args.redirect_ttl
    server.redirect_expired_status = args.redirect_expired_status
    server.tokens = {}
    server.ignore_range = args.ignore_range
    server.per_connection_rate = args.per_connection_rate
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    server.serve_forever()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", help="directory to serve (prepare_artifacts.py's www/)")
    parser.add_argument("--port", type=int, default=18080)
    parser.add_argument("--bind", default="127.0.0.1",
                        help="IPv4 address to listen on (0.0.0.0: all, e.g. for the hosts of a test network)")
    parser.add_argument("--request-log", help="append one JSON line per request to this file")
    parser.add_argument("--max-bytes-per-request", type=int, default=None,
                        help="cut every file transfer after this many bytes (fault injection)")
    parser.add_argument("--corrupt", metavar="SUBSTRING",
                        help="flip one byte in the middle of files whose path contains this (fault injection)")
    parser.add_argument("--rate-limit-first", type=int, default=0, metavar="N",
                        help="answer the first N GETs under /resolve/ with --rate-limit-status and Retry-After")
    parser.add_argument("--rate-limit-status", type=int, default=429, choices=[429, 503])
    parser.add_argument("--retry-after", default="1", metavar="SECONDS", help="Retry-After value sent with them")
    parser.add_argument("--redirect-expiring", type=int, default=None, metavar="BYTES",
                        help="redirect /resolve/ GETs to /cdn/<token>/...; a token expires after BYTES (0: never)")
    parser.add_argument("--redirect-ttl", type=float, default=None, metavar="SECONDS",
                        help="with --redirect-expiring: a token also expires this many seconds after it was issued")
    parser.add_argument("--redirect-expired-status", type=int, default=403, choices=[403, 410])
    parser.add_argument("--ignore-range", action="store_true", help="answer ranged GETs with 200 and the whole file")
    parser.add_argument("--per-connection-rate", type=float, default=None, metavar="BYTES_PER_S",
                        help="send each response body at most this fast")
    parser.add_argument("--daemon", action="store_true", help="detach; return once the port answers")
    parser.add_argument("--pidfile", default="/run/llm-test-hub.pid")
    parser.add_argument("--stop", action="store_true", help="stop the daemon named by --pidfile")
    args = parser.parse_args()

    if args.stop:
        pid = pid_alive(args.pidfile)
        if pid:
            os.kill(pid, signal.SIGTERM)
            print(f"stopped {pid}")
        return
    if not args.root:
        parser.error("--root is required")
    if not args.daemon:
        return serve(args)
    probe = "127.0.0.1" if args.bind == "0.0.0.0" else args.bind  # noqa: S104 (compared, not bound)
    if pid_alive(args.pidfile) and port_open(args.port, probe):
        print(f"already running on {args.bind}:{args.port}")
        return
    if port_open(args.port, probe):
        sys.exit(f"port {args.port} is in use by another process (not the one in {args.pidfile}); "
                 "stop it or choose another port with LLM_TEST_HUB_PORT")
    Path(args.pidfile).unlink(missing_ok=True)
    if os.fork() == 0:
        os.setsid()
        if os.fork() != 0:
            os._exit(0)
        devnull = os.open(os.devnull, os.O_RDWR)
        for fd in (0, 1, 2):
            os.dup2(devnull, fd)
        Path(args.pidfile).write_text(str(os.getpid()))
        serve(args)
        os._exit(0)
    for _ in range(100):
        if pid_alive(args.pidfile) and port_open(args.port, probe):
            print(f"serving {args.root} on {args.bind}:{args.port}")
            return
        time.sleep(0.1)
    sys.exit(f"server did not start on port {args.port}")


if __name__ == "__main__":
    main()
