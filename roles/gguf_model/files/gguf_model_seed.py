#!/usr/bin/python3
"""gguf-model-seed: serve one model's verified files to the other hosts of a fleet, read-only.

The gguf_model role runs this on the fleet source (gguf_model_fleet_source) after the source has
downloaded the model from the hub and verified every file, for as long as the other hosts take to
fetch the files from it with the same download code they would use against the hub
(tasks/fleet_source.yml): the model crosses the WAN once per fleet. It speaks the Hugging Face URL
layout that download code already uses, so only the base URL differs:

  GET|HEAD /<repo>/resolve/<revision>/<path>   one of the manifest's files: 200 with the whole file,
                                               206 for one Range (bytes=a-b, a-, -n), 416 past the end
  anything else                                404: no listing, no other file, nothing outside the model

A file is served only when the sidecar the download wrote after checking its sha256
(.<name>.verified: "sha256 size mtime_ns") still matches it and names the manifest's sha256; a file
changed since, a symlink, or a name the manifest does not list answers 404. Paths from the URL are
never joined to the file system: the URL is looked up in the manifest, and the file is opened by
its plain name in the model directory without following symlinks.

One JSON line per request on stdout (the journal): client, method, path, range, status, bytes,
seconds, and why a request was refused. No other header and no query string is ever logged.
At most `threads` requests run at once; more wait in the listen backlog. When it stops (SIGTERM,
or `idle_exit_seconds` without a request) it drops the files it served from the page cache:
reading them cached their pages on this host's NUMA node, where the host's own interleaved
llama-server must not find them (the download evicts its files for the same reason).

Standard library only (python3 of Debian 12/13, Ubuntu 22.04/24.04, EL 9).

Usage: gguf_model_seed.py MANIFEST.json
  {"root": "/srv/llm/models/org--name/rev", "repo": "org/name", "revision": "rev",
   "files": [{"path": "Q6_K/name-00001-of-00002.gguf", "name": "name-00001-of-00002.gguf",
              "sha256": "<64 hex>", "size": 123}],
   "bind": "" (all addresses) or an IP address, "port": 8089, "threads": 32, "idle_exit_seconds": 900}
"""

import contextlib
import json
import os
import re
import signal
import socket
import socketserver
import stat
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, HTTPServer
from urllib.parse import unquote, urlsplit

MAX_THREADS = 256
SOCKET_TIMEOUT = 120  # seconds a client may stall before its thread is freed
REPO_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9][A-Za-z0-9._-]*$")
SHA256_RE = re.compile(r"^[0-9a-f]{64}$")
RANGE_RE = re.compile(r"^bytes=(\d*)-(\d*)$")
CONTROL_RE = re.compile(r"[\x00-\x1f\x7f]")
UNSATISFIABLE = "unsatisfiable"


class ManifestError(ValueError):
    """A manifest the server refuses to start with; the message names the field."""


def _relative_path(value, what):
    if not isinstance(value, str) or not value or CONTROL_RE.search(value) or value.startswith("/"):
        raise ManifestError(f"{what} must be a relative path without control characters, got {value!r}")
    if any(part in ("", ".", "..") for part in value.split("/")):
        raise ManifestError(f"{what} must not contain empty, '.' or '..' segments, got {value!r}")
    return value


def load_manifest(data):
    """Check a manifest (a dict, see the module's docstring); returns it with `urls`: {URL path: file entry}."""
    if not isinstance(data, dict):
        raise ManifestError("the manifest must be a JSON object")
    root = data.get("root")
    if not isinstance(root, str) or not root.startswith("/") or CONTROL_RE.search(root):
        raise ManifestError(f"root must be an absolute directory, got {root!r}")
    repo, revision = data.get("repo"), data.get("revision")
    if not isinstance(repo, str) or not REPO_RE.match(repo):
        raise ManifestError(f"repo must be '<org>/<name>', got {repo!r}")
    _relative_path(revision, "revision")
    files = data.get("files")
    if not isinstance(files, list) or not files:
        raise ManifestError("files must list at least one file")
    urls, names = {}, set()
    for entry in files:
        if not isinstance(entry, dict):
            raise ManifestError(f"files: every entry must be an object, got {entry!r}")
        path = _relative_path(entry.get("path"), "files[].path")
        name = entry.get("name") or path.rsplit("/", 1)[-1]
        if "/" in name or name in (".", "..") or CONTROL_RE.search(name):
            raise ManifestError(f"files[].name must be a plain file name, got {name!r}")
        sha = entry.get("sha256") or None
        if sha is not None and not SHA256_RE.match(str(sha)):
            raise ManifestError(f"files[].sha256 of {path} must be 64 lowercase hex digits, got {sha!r}")
        size = entry.get("size")
        if size is not None and (not isinstance(size, int) or isinstance(size, bool) or size < 0):
            raise ManifestError(f"files[].size of {path} must be a number of bytes, got {size!r}")
        url = f"/{repo}/resolve/{revision}/{path}"
        if url in urls or name in names:
            raise ManifestError(f"files: {path} ({name}) is listed twice")
        urls[url] = {"path": path, "name": name, "sha256": sha, "size": size}
        names.add(name)
    port = data.get("port", 0)
    if not isinstance(port, int) or isinstance(port, bool) or not 0 <= port <= 65535:
        raise ManifestError(f"port must be 0..65535, got {port!r}")
    threads = data.get("threads", 16)
    if not isinstance(threads, int) or isinstance(threads, bool) or not 1 <= threads <= MAX_THREADS:
        raise ManifestError(f"threads must be 1..{MAX_THREADS}, got {threads!r}")
    idle = data.get("idle_exit_seconds", 0)
    if not isinstance(idle, (int, float)) or isinstance(idle, bool) or idle < 0:  # a tuple: EL 9's Python is 3.9
        raise ManifestError(f"idle_exit_seconds must be 0 (never) or more, got {idle!r}")
    bind = data.get("bind", "")
    if not isinstance(bind, str) or CONTROL_RE.search(bind):
        raise ManifestError(f"bind must be an IP address or empty (all addresses), got {bind!r}")
    return {"root": root, "repo": repo, "revision": revision, "urls": urls, "port": port, "threads": threads,
            "idle_exit_seconds": idle, "bind": bind}


def parse_range(header, size):
    """(start, end) inclusive for one `bytes=a-b`, `bytes=a-` or `bytes=-n`; UNSATISFIABLE past the end;
    None when absent or not a single byte range (the whole file is sent then, as RFC 9110 allows)."""
    match = RANGE_RE.match((header or "").strip())
    if not match or match.group(1) == match.group(2) == "":
        return None
    first, last = match.groups()
    if first == "":
        suffix = int(last)
        if suffix == 0 or size == 0:
            return UNSATISFIABLE
        return max(size - suffix, 0), size - 1
    start = int(first)
    if last and int(last) < start:
        return None  # syntactically invalid: ignored
    if start >= size:
        return UNSATISFIABLE
    return start, min(int(last), size - 1) if last else size - 1


def read_marker(root_fd, name):
    """The verification sidecar the download wrote (sha256, size, mtime_ns), or None."""
    try:
        fd = os.open(f".{name}.verified", os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=root_fd)
    except OSError:
        return None
    with os.fdopen(fd) as handle:
        try:
            sha, size, mtime = handle.read(256).split()
            return sha, int(size), int(mtime)
        except ValueError:
            return None


def open_verified(root_fd, entry):
    """(fd, stat, None) for a manifest file that is verified now, else (None, None, why)."""
    try:
        fd = os.open(entry["name"], os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=root_fd)
    except OSError as exc:
        return None, None, f"cannot open {entry['name']}: {exc.strerror}"
    info = os.fstat(fd)
    why = None
    marker = read_marker(root_fd, entry["name"])
    if not stat.S_ISREG(info.st_mode):
        why = f"{entry['name']} is not a regular file"
    elif marker is None:
        why = f"{entry['name']} has no verification sidecar (.{entry['name']}.verified)"
    elif marker[1:] != (info.st_size, info.st_mtime_ns):
        why = f"{entry['name']} changed after it was verified"
    elif entry["sha256"] and marker[0] != entry["sha256"]:
        why = f"{entry['name']} was verified with another sha256 than the manifest's"
    elif entry["size"] is not None and info.st_size != entry["size"]:
        why = f"{entry['name']} is {info.st_size} bytes, the manifest says {entry['size']}"
    if why:
        os.close(fd)
        return None, None, why
    return fd, info, None


def _clean_range(value):
    if value is None:
        return None
    return value if re.fullmatch(r"bytes=[0-9, -]{0,64}", value) else "(not a byte range)"


class SeedHandler(BaseHTTPRequestHandler):
    server_version = "gguf-model-seed/1"
    sys_version = ""
    protocol_version = "HTTP/1.1"
    timeout = SOCKET_TIMEOUT

    def log_message(self, format, *args):
        """Silenced: the one line per request comes from _log, without the raw request line."""

    def _log(self, status, sent, started, why=None):
        # A malformed request is refused before its path and headers are parsed: they may be missing.
        headers = getattr(self, "headers", None)
        client = self.client_address[0]
        entry = {"client": client.removeprefix("::ffff:") if "." in client else client,
                 "method": (getattr(self, "command", None) or "")[:16],
                 "path": urlsplit(getattr(self, "path", None) or "").path[:1024],
                 "range": _clean_range(headers.get("Range")) if headers else None, "status": status,
                 "bytes": sent, "seconds": round(time.monotonic() - started, 3)}
        if why:
            entry["why"] = why
        self.server.log(entry)

    def send_error(self, code, message=None, explain=None):
        """The base class's own refusals (a malformed request line, an unknown method): short, logged."""
        self.close_connection = True
        started = getattr(self, "_started", time.monotonic())
        self.send_response(code)
        self.send_header("Content-Length", "0")
        self.send_header("Connection", "close")
        self.end_headers()
        self._log(code, 0, started, message)

    def _refuse(self, status, why, size=None):
        self.send_response(status)
        if status == 416:
            self.send_header("Content-Range", f"bytes */{size}")
        body = b"" if self.command == "HEAD" or status == 416 else b"Not found\n"
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Connection", "close")
        self.end_headers()
        if body:
            self.wfile.write(body)
        self._log(status, len(body), self._started, why)

    def do_HEAD(self):
        self._serve()

    def do_GET(self):
        self._serve()

    def _serve(self):
        self._started = time.monotonic()
        self.close_connection = True  # one request per connection: a thread is never held by an idle client
        entry = self.server.manifest["urls"].get(unquote(urlsplit(self.path).path))
        if entry is None:
            return self._refuse(404, "not a file of this model")
        fd, info, why = open_verified(self.server.root_fd, entry)
        if fd is None:
            return self._refuse(404, why)
        with os.fdopen(fd, "rb") as handle:
            size = info.st_size
            span = parse_range(self.headers.get("Range"), size)
            if span == UNSATISFIABLE:
                return self._refuse(416, "range starts past the end", size)
            start, end = span or (0, size - 1)
            length = end - start + 1 if size else 0
            self.send_response(206 if span else 200)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Content-Length", str(length))
            self.send_header("Accept-Ranges", "bytes")
            if span:
                self.send_header("Content-Range", f"bytes {start}-{end}/{size}")
            if entry["sha256"]:
                self.send_header("ETag", f'"{entry["sha256"]}"')
            self.send_header("Connection", "close")
            self.end_headers()
            sent = 0
            if self.command == "GET" and length:
                self.server.touched(entry["name"])
                sent = self._send_body(handle, start, length)
        self._log(206 if span else 200, sent, self._started, None if sent == length or self.command == "HEAD"
                  else "the client went away")
        return None

    def _send_body(self, handle, start, length):
        """Bytes start..start+length-1 of the file (sendfile: no copy through Python); returns bytes sent."""
        handle.seek(start)
        try:
            self.connection.sendfile(handle, start, length)
        except OSError:
            pass  # the client went away; the file position says how far it got
        return handle.tell() - start


class SeedServer(socketserver.ThreadingMixIn, HTTPServer):
    """The manifest's files over HTTP, at most `threads` requests at once."""

    daemon_threads = True
    block_on_close = False  # stopping does not wait for a stalled client
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(self, manifest, handler=SeedHandler, out=None):
        self.manifest = manifest
        self.out = out or sys.stdout
        self.root_fd = os.open(manifest["root"], os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        self.slots = threading.BoundedSemaphore(manifest["threads"])
        self.lock = threading.Lock()
        self.active = 0
        self.last_request = time.monotonic()
        self.served = set()
        self.stopping = threading.Event()
        try:
            self._listen(handler)
        except BaseException:
            os.close(self.root_fd)
            raise

    def _listen(self, handler):
        error = None
        for family, address, dual in _bind_candidates(self.manifest["bind"], self.manifest["port"]):
            self.address_family = family
            try:
                HTTPServer.__init__(self, address, handler, bind_and_activate=False)
            except OSError as exc:  # no socket of this family (IPv6 off): try the next
                error = exc
                continue
            try:
                if dual:
                    self.socket.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
                self.server_bind()
                self.server_activate()
                return
            except OSError as exc:
                self.socket.close()
                error = exc
        raise error

    def server_bind(self):
        # Not HTTPServer's: it looks the address up (socket.getfqdn), and the unit lets no DNS answer through.
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = str(self.server_address[0]), self.server_address[1]

    def log(self, entry):
        with self.lock:
            self.out.write(json.dumps(entry, sort_keys=True) + "\n")
            self.out.flush()

    def touched(self, name):
        with self.lock:
            self.served.add(name)

    def process_request(self, request, client_address):
        # Bounded: wait for a free slot (the client waits in the listen backlog meanwhile).
        while not self.slots.acquire(timeout=0.5):
            if self.stopping.is_set():
                self.shutdown_request(request)
                return
        with self.lock:
            self.active += 1
        try:
            super().process_request(request, client_address)
        except BaseException:
            self._done()
            raise

    def process_request_thread(self, request, client_address):
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._done()

    def _done(self):
        with self.lock:
            self.active -= 1
            self.last_request = time.monotonic()
        self.slots.release()

    def idle_seconds(self):
        with self.lock:
            return 0.0 if self.active else time.monotonic() - self.last_request

    def stop(self):
        self.stopping.set()
        self.shutdown()
        self.server_close()
        os.close(self.root_fd)

    def evict_served(self):
        """Drop the served files' pages from the page cache; returns their names."""
        with self.lock:
            names = sorted(self.served)
        for name in names:
            with contextlib.suppress(OSError):
                fd = os.open(os.path.join(self.manifest["root"], name), os.O_RDONLY | os.O_NOFOLLOW)
                try:
                    os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
                finally:
                    os.close(fd)
        return names


def _bind_candidates(bind, port):
    """(family, address, dual-stack) to try in order. Numeric addresses only: nothing is looked up."""
    if bind in ("", "*"):
        return [(socket.AF_INET6, ("::", port), True), (socket.AF_INET, ("0.0.0.0", port), False)]  # noqa: S104
    try:
        family, _, _, _, address = socket.getaddrinfo(bind, port, type=socket.SOCK_STREAM,
                                                      flags=socket.AI_NUMERICHOST | socket.AI_PASSIVE)[0]
    except socket.gaierror as exc:
        raise OSError(f"bind must be an IP address or empty, got {bind!r}") from exc
    return [(family, address, False)]


def main(argv=None, out=None):
    out = out or sys.stdout
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        print(__doc__.split("\n\n")[0], "\nUsage: gguf_model_seed.py MANIFEST.json", file=sys.stderr)
        return 2
    try:
        with open(argv[0]) as handle:
            manifest = load_manifest(json.load(handle))
    except (OSError, ValueError) as exc:
        print(f"gguf-model-seed: {argv[0]}: {exc}", file=sys.stderr)
        return 1
    # Refuse to start rather than answer 404s: every file must be verified and readable now.
    try:
        root_fd = os.open(manifest["root"], os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError as exc:
        print(f"gguf-model-seed: cannot open {manifest['root']}: {exc.strerror}", file=sys.stderr)
        return 1
    problems = []
    for entry in manifest["urls"].values():
        fd, _, why = open_verified(root_fd, entry)
        if fd is None:
            problems.append(why)
        else:
            os.close(fd)
    os.close(root_fd)
    if problems:
        print(f"gguf-model-seed: not serving, in {manifest['root']}: {'; '.join(problems)}", file=sys.stderr)
        return 1
    try:
        server = SeedServer(manifest, out=out)
    except OSError as exc:
        print(f"gguf-model-seed: cannot listen on {manifest['bind'] or 'all addresses'} port {manifest['port']}: "
              f"{exc} (gguf_model_fleet_port, gguf_model_fleet_address)", file=sys.stderr)
        return 1
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    server.log({"event": "listening", "address": server.server_name, "port": server.server_port,
                "files": len(manifest["urls"]), "threads": manifest["threads"]})
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.5}, daemon=True)
    thread.start()
    reason = "stopped"
    while not stop.wait(0.5):
        idle = manifest["idle_exit_seconds"]
        if idle and server.idle_seconds() >= idle:
            reason = f"idle for {idle} s"
            break
    server.stop()
    server.log({"event": "exit", "reason": reason, "evicted": server.evict_served()})
    return 0


if __name__ == "__main__":
    sys.exit(main())
