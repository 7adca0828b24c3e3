"""Resumable, verified downloads of large files. Plain Python (standard library), no Ansible imports.

A 300 GB model downloads for hours; a dropped connection must not start it over, a corrupt
byte must never reach the serving directory, and a re-run must not re-hash 300 GB.

  staging/<name>.part        bytes so far
  staging/<name>.part.state  parallel mode: which fixed-size chunks are complete (JSON, rewritten
                             atomically after each chunk, whose bytes are fdatasync'ed first)
  dest                       appears only after the sha256 matched (os.replace on the same filesystem)
  dest's sidecar             .<name>.verified ("sha256 size mtime_ns"): a re-run trusts an unchanged file

Two transfer modes:

- connections == 1 (or the size is unknown, or the server ignores Range): one stream; a re-run
  continues with an HTTP Range request from the part file's size. The sha256 is computed while the
  bytes stream in (after hashing the part already on disk, when resuming): one read in all.
- connections > 1: the part file is created at its full size (sparse) and cut into chunks of
  `chunk_size` bytes (64 MiB); N worker threads each take the lowest missing chunk, GET it with
  `Range: bytes=a-b` and pwrite it at its offset. A hasher thread consumes the chunks strictly in
  order, as each next one completes, reading it back with pread right after it was written (so
  from the page cache: a 64 MiB chunk x N connections stays far below the cache) and then evicting
  that range (posix_fadvise DONTNEED). The file is therefore read once, not twice. Not hashing in
  memory: chunks complete out of order, and holding every out-of-order chunk in memory would cost
  up to N x 64 MiB of RAM on a host whose memory is for the model. A re-run skips the chunks the
  state file lists and reads them back once for the hash (hashlib cannot save a digest's state, so
  the bytes of a previous run are hashed again, once).

What the Hub and its CDN do, and what happens:

- 429 / 503: waits Retry-After seconds (seconds or an HTTP date, capped at `max_retry_wait`;
  exponential backoff without the header), at most `retries` times per request.
- The resolve URL redirects to a signed CDN URL; workers reuse that URL. When it expires (403 or
  410 from the CDN host), the original URL is resolved again and the chunk continues.
- A dropped connection mid-chunk: the chunk continues from its last written byte (bounded retries).
- A server that answers 200 to a ranged request: falls back to one stream, with a warning.
- Disk full (ENOSPC / EDQUOT): stops with the directory and the bytes still needed; the part and
  its state stay, so the next run (after freeing space) resumes.
"""

import contextlib
import errno
import hashlib
import http.client
import json
import os
import queue
import re
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

from ansible_collections.cpu_llm.infra.plugins.module_utils.gguf_header import KeepAuthOnSameHost

CHUNK = 1 << 20  # I/O block
PART_CHUNK = 64 << 20  # unit of parallel download, resume and hashing
MAX_CONNECTIONS = 64
RETRIES = 5
MAX_RETRY_WAIT = 60.0
STATE_VERSION = 1

# Hooks the tests replace (a fake writer that fills the disk; a fast clock for retries).
_pwrite = os.pwrite
_sleep = time.sleep


class DownloadError(Exception):
    """A download that cannot complete; the message says what happened and what was kept."""


class _RangeIgnoredError(Exception):
    """The server answered a ranged GET with the whole file."""


class _WriteError(Exception):
    """Writing the part file failed (kept apart from network OSErrors)."""

    def __init__(self, error):
        super().__init__(str(error))
        self.error = error


class _StoppedError(Exception):
    """Another worker failed; this one stops."""


def sha256_file(path, start_digest=None, upto=None):
    digest = start_digest or hashlib.sha256()
    with open(path, "rb") as handle:
        remaining = upto
        while True:
            block = handle.read(CHUNK if remaining is None else min(CHUNK, remaining))
            if not block:
                break
            digest.update(block)
            if remaining is not None:
                remaining -= len(block)
                if remaining <= 0:
                    break
    return digest


def marker_path(dest):
    head, name = os.path.split(dest)
    return os.path.join(head, f".{name}.verified")


def _read_marker(dest):
    try:
        with open(marker_path(dest)) as handle:
            sha, size, mtime = handle.read().split()
        return sha, int(size), int(mtime)
    except (OSError, ValueError):
        return None


def _write_marker(dest, sha):
    stat = os.stat(dest)
    with open(marker_path(dest), "w") as handle:
        handle.write(f"{sha} {stat.st_size} {stat.st_mtime_ns}\n")


def evict_page_cache(path):
    """Drop the file's pages from the page cache (posix_fadvise DONTNEED).

    The checksum pass read the whole file on one NUMA node; an interleaved llama-server that
    maps it would reuse those pages instead of spreading them over all nodes.
    """
    fd = os.open(path, os.O_RDONLY)
    try:
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)


def verified(dest, sha256):
    """True when dest exists and has this sha256 (trusting an unchanged sidecar)."""
    if not os.path.isfile(dest):
        return False
    stat = os.stat(dest)
    marker = _read_marker(dest)
    if marker and marker == (sha256, stat.st_size, stat.st_mtime_ns):
        return True
    if sha256 and sha256_file(dest).hexdigest() == sha256:
        _write_marker(dest, sha256)
        return True
    return False


def retry_after_seconds(value, attempt, cap=MAX_RETRY_WAIT):
    """Seconds to wait before retry number `attempt` (0-based): Retry-After (seconds or HTTP date), capped."""
    wait = None
    if value:
        try:
            wait = float(value)
        except ValueError:
            try:
                wait = (parsedate_to_datetime(value) - datetime.now(UTC)).total_seconds()
            except (TypeError, ValueError, IndexError):
                wait = None
    if wait is None:
        wait = float(2**attempt)
    return max(0.0, min(wait, cap))


def _gb(n):
    return f"{n / 1e9:.1f} GB"


def _write_all(fd, data, offset):
    view = memoryview(data)
    while view:
        try:
            written = _pwrite(fd, view, offset)
        except OSError as exc:
            raise _WriteError(exc) from exc
        view = view[written:]
        offset += written


def _allocated(path):
    try:
        return os.stat(path).st_blocks * 512
    except OSError:
        return 0


def _free_bytes(directory):
    stat = os.statvfs(directory)
    return stat.f_bavail * stat.f_frsize


def _disk_full(exc, staging_dir, part, size, done):
    needed = max(size - _allocated(part), 0) if size is not None else None
    still = f"{needed} more bytes ({_gb(needed)})" if needed is not None else "more space"
    return DownloadError(
        f"disk full: no space left in {staging_dir} ({os.strerror(exc.errno)}) after {done} bytes; {still} "
        f"are needed there. The staged part {part} is kept: free space and re-run to resume")


class Progress:
    """Bytes done / total, recent rate and ETA, written as JSON to a status file at a steady interval."""

    def __init__(self, path, name, total, interval=2.0, connections=1, sink=None):
        # sink: a function given each snapshot instead of writing it to path (several files in one status).
        self.path, self.name, self.total, self.interval, self.sink = path, name, total, interval, sink
        self.connections = connections
        self.lock = threading.Lock()
        self.done = 0
        self.resumed = 0
        self.started = time.monotonic()
        self.samples = [(self.started, 0)]
        self.state = "downloading"
        self._stop = threading.Event()
        self._thread = None

    def start(self, already):
        self.done = self.resumed = already
        self.started = time.monotonic()
        self.samples = [(self.started, already)]
        if self.path or self.sink:
            self.write()
            self._thread = threading.Thread(target=self._run, name="progress", daemon=True)
            self._thread.start()

    def add(self, n):
        with self.lock:
            self.done += n

    def snapshot(self):
        now = time.monotonic()
        with self.lock:
            done = self.done
            self.samples.append((now, done))
            while len(self.samples) > 2 and now - self.samples[0][0] > 10:
                self.samples.pop(0)  # rate over the last ~10 s
            t0, d0 = self.samples[0]
        elapsed = now - self.started
        rate = (done - d0) / (now - t0) if now > t0 else 0.0
        average = (done - self.resumed) / elapsed if elapsed > 0 else 0.0
        remaining = (self.total - done) if self.total else None
        eta = remaining / rate if remaining is not None and rate > 0 else None
        return {"file": self.name, "state": self.state, "bytes_done": done, "bytes_total": self.total,
                "resumed_from": self.resumed, "rate_bytes_per_s": round(rate, 1),
                "average_bytes_per_s": round(average, 1), "eta_seconds": None if eta is None else round(eta, 1),
                "elapsed_seconds": round(elapsed, 1), "connections": self.connections, "updated": round(time.time(), 3)}

    def write(self):
        if self.sink:
            self.sink(self.snapshot())
            return
        if not self.path:
            return
        tmp = f"{self.path}.tmp"
        with contextlib.suppress(OSError):  # progress is advisory: never fail a download over it
            with open(tmp, "w") as handle:
                json.dump(self.snapshot(), handle)
            os.replace(tmp, self.path)

    def _run(self):
        while not self._stop.wait(self.interval):
            self.write()

    def finish(self, state):
        self.state = state
        self._stop.set()
        if self._thread:
            self._thread.join()
        self.write()


class _Client:
    """GETs of one file: retries 429/503 after Retry-After, re-resolves an expired CDN URL."""

    def __init__(self, url, headers, timeout, opener, retries, max_wait):
        self.url, self.headers, self.timeout = url, dict(headers or {}), timeout
        self.opener = opener or urllib.request.build_opener(KeepAuthOnSameHost)
        self.retries, self.max_wait = retries, max_wait
        self.resolved = url
        self.lock = threading.Lock()
        self.stats = {"retries": 0, "reresolved": 0}
        self._host = urllib.parse.urlsplit(url).netloc

    def _headers_for(self, target):
        if urllib.parse.urlsplit(target).netloc == self._host:
            return dict(self.headers)
        return {k: v for k, v in self.headers.items() if k.lower() != "authorization"}

    def open(self, start=None, end=None, use_resolved=False):
        """Open a GET (of bytes start..end when given). HTTPErrors left after the retries propagate."""
        attempt = 0
        while True:
            with self.lock:
                target = self.resolved if use_resolved else self.url
            request = urllib.request.Request(target, headers=self._headers_for(target))
            if start is not None:
                request.add_header("Range", f"bytes={start}-{'' if end is None else end}")
            try:
                response = self.opener.open(request, timeout=self.timeout)
            except urllib.error.HTTPError as exc:
                if attempt >= self.retries:
                    raise
                if exc.code in (429, 503):
                    wait = retry_after_seconds(exc.headers.get("Retry-After") if exc.headers else None,
                                               attempt, self.max_wait)
                    exc.close()
                    with self.lock:
                        self.stats["retries"] += 1
                    _sleep(wait)
                elif exc.code in (403, 410) and target != self.url:
                    exc.close()  # the signed CDN URL expired: resolve the original URL again
                    with self.lock:
                        if self.resolved == target:
                            self.resolved = self.url
                            self.stats["reresolved"] += 1
                else:
                    raise
                attempt += 1
                continue
            if target == self.url and response.geturl() != self.url:
                with self.lock:
                    if self.resolved == self.url:
                        self.resolved = response.geturl()
            return response


def _http_error(url, exc, kept, part):
    return DownloadError(f"GET {url} answered HTTP {exc.code} {exc.reason}; {kept} bytes kept in {part} "
                         "for the next run")


def _content_range_start(response):
    match = re.match(r"bytes (\d+)-", response.headers.get("Content-Range") or "")
    return int(match.group(1)) if match else None


def _load_state(state_path, size, chunk_size, sha256):
    try:
        with open(state_path) as handle:
            state = json.load(handle)
    except (OSError, ValueError):
        return None
    if (state.get("version"), state.get("size"), state.get("chunk_size"), state.get("sha256")) != (
            STATE_VERSION, size, chunk_size, sha256):
        return None
    return {int(i) for i in state.get("done", [])}


def _save_state(state_path, size, chunk_size, sha256, done):
    tmp = state_path + ".tmp"
    with open(tmp, "w") as handle:
        json.dump({"version": STATE_VERSION, "size": size, "chunk_size": chunk_size, "sha256": sha256,
                   "done": sorted(done)}, handle)
    os.replace(tmp, state_path)


def _contiguous_prefix(done, chunk_size, size):
    n = 0
    while n in done:
        n += 1
    return min(n * chunk_size, size)


def _single_stream(client, part, staging_dir, size, progress, result):
    """One stream, resumed with Range from the part file's size. Returns the sha256 digest."""
    have = os.path.getsize(part) if os.path.exists(part) else 0
    if size is not None and have > size:
        os.remove(part)
        have = 0
    digest = hashlib.sha256()
    progress.start(have)
    if size is not None and have == size:
        return sha256_file(part, digest)
    try:
        response = client.open(have if have else None)
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and have and size is None:
            return sha256_file(part, digest)  # the part file is already complete
        raise _http_error(client.url, exc, have, part) from exc
    except (urllib.error.URLError, OSError, http.client.HTTPException) as exc:
        raise DownloadError(f"GET {client.url} failed: {exc}; {have} bytes kept in {part} for the next run") from exc
    with response:
        if have and response.status == 200:
            have = 0  # the server ignored the Range request: start over
            progress.start(0)
        if have:
            sha256_file(part, digest, upto=have)
        result["resumed_from"] = have
        flags = os.O_WRONLY | os.O_CREAT | (0 if have else os.O_TRUNC)
        fd = os.open(part, flags, 0o600)
        offset = have
        try:
            while True:
                try:
                    block = response.read(CHUNK)
                except (OSError, http.client.HTTPException) as exc:
                    raise DownloadError(f"download of {client.url} interrupted after {result['bytes_downloaded']} "
                                        f"bytes: {exc}; the part file is kept for the next run") from exc
                if not block:
                    break
                _write_all(fd, block, offset)
                digest.update(block)
                offset += len(block)
                result["bytes_downloaded"] += len(block)
                progress.add(len(block))
            os.fsync(fd)
        except _WriteError as exc:
            if exc.error.errno in (errno.ENOSPC, errno.EDQUOT):
                raise _disk_full(exc.error, staging_dir, part, size, offset) from exc
            raise DownloadError(f"writing {part} failed after {offset} bytes: {exc}; "
                                "the part file is kept for the next run") from exc
        finally:
            os.close(fd)
    return digest


class _Parallel:
    """Fixed-size chunks over N connections into a preallocated part file, hashed in order."""

    def __init__(self, client, part, staging_dir, size, sha256, chunk_size, connections, evict, progress, result):
        self.client, self.part, self.staging_dir, self.size = client, part, staging_dir, size
        self.sha256, self.chunk_size, self.connections, self.evict = sha256, chunk_size, connections, evict
        self.progress, self.result = progress, result
        self.state_path = part + ".state"
        self.count = max(1, -(-size // chunk_size))
        self.cond = threading.Condition()
        self.stop = threading.Event()
        self.workers_done = threading.Event()
        self.errors = []
        self.digest = None

    def _span(self, index):
        start = index * self.chunk_size
        return start, min(start + self.chunk_size, self.size) - 1

    def _prepare(self):
        done = _load_state(self.state_path, self.size, self.chunk_size, self.sha256)
        exists = os.path.exists(self.part)
        if done is None or not exists or os.path.getsize(self.part) != self.size:
            # A part without a state file was left by a single-stream run; with a state file for another
            # size, chunk size or sha256 (a new revision), its bytes are not this file's: start over.
            single = exists and not os.path.exists(self.state_path)
            have = os.path.getsize(self.part) if single else 0
            if have > self.size:
                have = 0
            # A part left by a single-stream run: its first `have` bytes are good, whole chunks of them count.
            done = {i for i in range(self.count) if self._span(i)[1] < have}
            with open(self.part, "r+b" if have else "wb") as handle:
                handle.truncate(self.size)
            _save_state(self.state_path, self.size, self.chunk_size, self.sha256, done)
        return done

    def run(self):
        done = self._prepare()
        already = sum(self._span(i)[1] - self._span(i)[0] + 1 for i in done)
        self.result["resumed_from"] = already
        self.result["chunks_resumed"] = len(done)
        needed = self.size - _allocated(self.part)
        free = _free_bytes(self.staging_dir)
        if needed > free:
            raise DownloadError(f"disk full: {self.staging_dir} has {free} bytes free ({_gb(free)}) but "
                                f"{needed} more bytes ({_gb(needed)}) are needed there for "
                                f"{os.path.basename(self.part)}; nothing was downloaded. Free space and re-run")
        self.done = done
        self.todo = queue.Queue()
        for index in range(self.count):
            if index not in done:
                self.todo.put(index)
        self.progress.start(already)
        self.fd = os.open(self.part, os.O_RDWR)
        try:
            hasher = threading.Thread(target=self._hash, name="sha256", daemon=True)
            hasher.start()
            workers = [threading.Thread(target=self._worker, name=f"conn-{n}", daemon=True)
                       for n in range(min(self.connections, self.todo.qsize()))]
            for worker in workers:
                worker.start()
            for worker in workers:
                worker.join()
            with self.cond:
                self.workers_done.set()
                self.cond.notify_all()
            hasher.join()
            if self.errors:
                raise self._error(self.errors[0])
            os.fsync(self.fd)
        finally:
            os.close(self.fd)
        return self.digest

    def _error(self, exc):
        kept = sum(self._span(i)[1] - self._span(i)[0] + 1 for i in self.done)
        if isinstance(exc, _WriteError) and exc.error.errno in (errno.ENOSPC, errno.EDQUOT):
            return _disk_full(exc.error, self.staging_dir, self.part, self.size, kept)
        if isinstance(exc, _RangeIgnoredError | DownloadError):
            return exc
        if isinstance(exc, urllib.error.HTTPError):
            return _http_error(self.client.url, exc, kept, self.part)
        return DownloadError(f"download of {self.client.url} failed: {exc}; {len(self.done)} of {self.count} "
                             f"chunks ({kept} bytes) are kept in {self.part} and the next run fetches only the rest")

    def _worker(self):
        while not self.stop.is_set():
            try:
                index = self.todo.get_nowait()
            except queue.Empty:
                return
            try:
                self._chunk(index)
            except _StoppedError:
                return
            except Exception as exc:  # any failure stops all workers, reported once
                self.errors.append(exc)
                self.stop.set()
                return

    def _chunk(self, index):
        start, end = self._span(index)
        pos, failures = start, 0
        while pos <= end:
            if self.stop.is_set():
                raise _StoppedError
            try:
                response = self.client.open(pos, end, use_resolved=True)
            except urllib.error.HTTPError:
                raise
            except (urllib.error.URLError, OSError, http.client.HTTPException) as exc:
                failures = self._failed(failures, exc)
                continue
            with response:
                if response.status != 206 or _content_range_start(response) != pos:
                    raise _RangeIgnoredError(f"{self.client.url} answered HTTP {response.status} to a ranged GET")
                began = pos
                try:
                    while pos <= end:
                        block = response.read(min(CHUNK, end + 1 - pos))
                        if not block:
                            raise ConnectionError(f"connection closed at byte {pos} of chunk {index}")
                        _write_all(self.fd, block, pos)
                        pos += len(block)
                        self.progress.add(len(block))
                        with self.client.lock:
                            self.result["bytes_downloaded"] += len(block)
                        if self.stop.is_set():
                            raise _StoppedError
                except (OSError, http.client.HTTPException) as exc:
                    # A drop after progress continues at once; only drops in a row without progress count.
                    failures = self._failed(0 if pos > began else failures, exc, wait=pos == began)
        os.fdatasync(self.fd)  # the state file must never list bytes that a crash could lose
        with self.cond:
            self.done.add(index)
            _save_state(self.state_path, self.size, self.chunk_size, self.sha256, self.done)
            self.cond.notify_all()

    def _failed(self, failures, exc, wait=True):
        if failures >= self.client.retries:
            raise exc
        with self.client.lock:
            self.client.stats["retries"] += 1
        if wait:
            _sleep(min(2.0**failures * 0.5, self.client.max_wait))
        return failures + 1 if wait else 0

    def _hash(self):
        try:
            self.digest = self._hash_in_order()
        except Exception as exc:  # reported by run() like a worker failure
            self.errors.append(exc)
            self.stop.set()

    def _hash_in_order(self):
        digest = hashlib.sha256()
        for index in range(self.count):
            with self.cond:
                while index not in self.done and not self.stop.is_set() and not self.workers_done.is_set():
                    self.cond.wait(0.5)
                if index not in self.done:
                    return None
            start, end = self._span(index)
            pos = start
            while pos <= end:
                block = os.pread(self.fd, min(CHUNK, end + 1 - pos), pos)
                if not block:
                    raise DownloadError(f"{self.part} is shorter than expected at byte {pos}")
                digest.update(block)
                pos += len(block)
            if self.evict:
                os.posix_fadvise(self.fd, start, end + 1 - start, os.POSIX_FADV_DONTNEED)
        return digest


def fetch(url, dest, staging_dir, sha256=None, size=None, headers=None, timeout=60, check_mode=False,
          evict=True, opener=None, connections=1, chunk_size=PART_CHUNK, progress_file=None,
          progress_interval=2.0, retries=RETRIES, max_retry_wait=MAX_RETRY_WAIT, progress_sink=None):
    """Make dest hold the file at url with this sha256. Returns a result dict for Ansible."""
    result = {"changed": False, "dest": dest, "bytes_downloaded": 0, "resumed_from": 0, "sha256": sha256,
              "connections": 0, "retries": 0, "reresolved": 0, "warnings": []}
    if not 1 <= connections <= MAX_CONNECTIONS:
        raise DownloadError(f"connections must be 1..{MAX_CONNECTIONS}, got {connections}")
    if sha256 and verified(dest, sha256):
        return result
    if not sha256 and os.path.isfile(dest) and (size is None or os.path.getsize(dest) == size):
        return result  # unverified mode (the user allowed it): an existing file of the right size stays
    result["changed"] = True
    if check_mode:
        return result

    os.makedirs(staging_dir, exist_ok=True)
    part = os.path.join(staging_dir, os.path.basename(dest) + ".part")
    client = _Client(url, headers, timeout, opener, retries, max_retry_wait)
    progress = Progress(progress_file, os.path.basename(dest), size, progress_interval, connections, progress_sink)
    try:
        digest = _transfer(client, part, staging_dir, size, sha256, connections, chunk_size, evict, progress, result)
    except BaseException:
        result.update(client.stats)
        progress.finish("failed")
        raise
    result.update(client.stats)
    progress.state = "verifying"
    got = os.path.getsize(part)
    if size is not None and got != size:
        progress.finish("failed")
        raise DownloadError(f"download of {url} stopped at {got} of {size} bytes; the part file {part} is kept "
                            "and the next run resumes it")
    actual = digest.hexdigest()
    if sha256 and actual != sha256:
        os.remove(part)
        with contextlib.suppress(FileNotFoundError):
            os.remove(part + ".state")
        progress.finish("failed")
        raise DownloadError(f"sha256 of {os.path.basename(dest)} is {actual}, expected {sha256}: the download was "
                            "discarded and nothing in the model directory was changed")
    os.makedirs(os.path.dirname(dest), exist_ok=True)
    os.chmod(part, 0o644)
    os.replace(part, dest)
    with contextlib.suppress(FileNotFoundError):
        os.remove(part + ".state")
    _write_marker(dest, actual)
    if evict:
        evict_page_cache(dest)
    result["sha256"] = actual
    progress.finish("done")
    result["seconds"] = round(time.monotonic() - progress.started, 3)
    result["average_bytes_per_s"] = round(result["bytes_downloaded"] / result["seconds"], 1) if result["seconds"] else 0
    return result


def _transfer(client, part, staging_dir, size, sha256, connections, chunk_size, evict, progress, result):
    state_path = part + ".state"
    if connections > 1 and size and size > 0:
        parallel = _Parallel(client, part, staging_dir, size, sha256, chunk_size, connections, evict, progress, result)
        probe = _probe(client, part, parallel)
        if probe is None:
            result["connections"] = min(connections, parallel.count)
            try:
                return parallel.run()
            except _RangeIgnoredError as exc:
                probe = str(exc)
        result["warnings"].append(f"{probe}: the server ignores Range requests, so this file was downloaded over "
                                  "one connection and cannot resume")
        with contextlib.suppress(FileNotFoundError):
            os.remove(part)
        with contextlib.suppress(FileNotFoundError):
            os.remove(state_path)
    elif os.path.exists(state_path):
        # A part left by a parallel run: keep its complete leading chunks, continue as one stream.
        done = _load_state(state_path, size, chunk_size, sha256) or set()
        if os.path.exists(part):
            with open(part, "r+b") as handle:
                handle.truncate(_contiguous_prefix(done, chunk_size, os.path.getsize(part)))
        os.remove(state_path)
    result["connections"] = 1
    return _single_stream(client, part, staging_dir, size, progress, result)


def _probe(client, part, parallel):
    """Resolve the URL (following the redirect to the CDN) with a 1-byte ranged GET. None when ranges work."""
    try:
        response = client.open(0, 0)
    except urllib.error.HTTPError as exc:
        raise _http_error(client.url, exc, _allocated(part), part) from exc
    except (urllib.error.URLError, OSError, http.client.HTTPException) as exc:
        raise DownloadError(f"GET {client.url} failed: {exc}; the part file {part} (if any) is kept") from exc
    with response:
        if response.status == 206 and _content_range_start(response) == 0:
            response.read()
            return None
        return f"{client.url} answered HTTP {response.status} to a ranged GET"


class _StatusFile:
    """One JSON list for several files fetched one after another: done, current and pending entries."""

    def __init__(self, path, files):
        self.path = path
        self.lock = threading.Lock()
        self.entries = [{"file": os.path.basename(f["dest"]), "state": "pending", "bytes_done": 0,
                         "bytes_total": f.get("size"), "resumed_from": 0, "rate_bytes_per_s": 0,
                         "elapsed_seconds": 0} for f in files]

    def sink(self, index):
        def write(snapshot):
            with self.lock:
                self.entries[index] = snapshot
                entries = list(self.entries)
            if not self.path:
                return
            tmp = f"{self.path}.tmp"
            with contextlib.suppress(OSError):  # progress is advisory: never fail a download over it
                with open(tmp, "w") as handle:
                    json.dump(entries, handle)
                os.replace(tmp, self.path)
        return write

    def mark(self, index, size, state):
        """A file that needed no transfer (already verified) counts as done, with its bytes."""
        self.sink(index)({"file": self.entries[index]["file"], "state": state, "bytes_done": size or 0,
                          "bytes_total": size, "resumed_from": size or 0, "rate_bytes_per_s": 0,
                          "elapsed_seconds": 0})


def fetch_all(files, staging_dir, progress_file=None, check_mode=False, **options):
    """fetch() each of files ({url, dest, sha256, size}) in order; one status file for all of them.

    One background job for the whole model keeps its progress on one line and its connections to
    one file at a time. The first failure stops the rest (earlier files stay verified in place).
    """
    if check_mode:
        progress_file = None  # check mode writes nothing
    elif progress_file:
        os.makedirs(os.path.dirname(progress_file), exist_ok=True)
    status = _StatusFile(progress_file, files)
    if files:
        status.sink(0)(status.entries[0])  # all pending: a watcher never reads an earlier run's file
    total = {"changed": False, "files": [], "bytes_downloaded": 0, "retries": 0, "reresolved": 0,
             "seconds": 0.0, "warnings": []}
    for index, spec in enumerate(files):
        result = fetch(spec["url"], spec["dest"], staging_dir, sha256=spec.get("sha256"), size=spec.get("size"),
                       check_mode=check_mode, progress_sink=status.sink(index), **options)
        if not result["changed"] or check_mode:
            status.mark(index, spec.get("size"), "done")
        total["changed"] = total["changed"] or result["changed"]
        total["warnings"].extend(result.pop("warnings"))
        for key in ("bytes_downloaded", "retries", "reresolved"):
            total[key] += result.get(key, 0)
        total["seconds"] += result.get("seconds", 0)
        total["files"].append(result)
    total["seconds"] = round(total["seconds"], 3)
    total["average_bytes_per_s"] = round(total["bytes_downloaded"] / total["seconds"], 1) if total["seconds"] else 0
    return total
