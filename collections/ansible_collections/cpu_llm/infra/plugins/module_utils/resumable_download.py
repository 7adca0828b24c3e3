"""Resumable, verified downloads of large files. Plain Python (standard library), no Ansible imports.

A 300 GB model downloads for hours; a dropped connection must not start it over, a corrupt
byte must never reach the serving directory, and a re-run must not re-hash 300 GB.

  staging/<name>.part   bytes so far; a re-run continues with an HTTP Range request
  dest                  appears only after the sha256 matched (os.replace on the same filesystem)
  dest's sidecar        .<name>.verified ("sha256 size mtime_ns"): a re-run trusts an unchanged file
"""

import hashlib
import os
import urllib.error
import urllib.parse
import urllib.request

CHUNK = 1 << 20


class DownloadError(Exception):
    """A download that cannot complete; the message says what happened and what was kept."""


class _NoAuthAcrossHosts(urllib.request.HTTPRedirectHandler):
    """Follow redirects (Hugging Face sends LFS files to a CDN) without leaking the token there."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        new = super().redirect_request(req, fp, code, msg, headers, newurl)
        if new is not None and urllib.parse.urlsplit(newurl).netloc != urllib.parse.urlsplit(req.full_url).netloc:
            new.remove_header("Authorization")
        return new


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


def fetch(url, dest, staging_dir, sha256=None, size=None, headers=None, timeout=60, check_mode=False,
          evict=True, opener=None):
    """Make dest hold the file at url with this sha256. Returns a result dict for Ansible."""
    result = {"changed": False, "dest": dest, "bytes_downloaded": 0, "resumed_from": 0, "sha256": sha256}
    if sha256 and verified(dest, sha256):
        return result
    if not sha256 and os.path.isfile(dest) and (size is None or os.path.getsize(dest) == size):
        return result  # unverified mode (the user allowed it): an existing file of the right size stays
    result["changed"] = True
    if check_mode:
        return result

    os.makedirs(staging_dir, exist_ok=True)
    part = os.path.join(staging_dir, os.path.basename(dest) + ".part")
    have = os.path.getsize(part) if os.path.exists(part) else 0
    if size is not None and have > size:
        os.remove(part)
        have = 0

    if size is None or have < size:
        request = urllib.request.Request(url, headers=dict(headers or {}))
        if have:
            request.add_header("Range", f"bytes={have}-")
        opener = opener or urllib.request.build_opener(_NoAuthAcrossHosts)
        try:
            response = opener.open(request, timeout=timeout)
        except urllib.error.HTTPError as exc:
            if exc.code == 416 and have and size is None:
                response = None  # the part file is already complete
            else:
                raise DownloadError(f"GET {url} answered HTTP {exc.code} {exc.reason}; "
                                    f"{have} bytes kept in {part} for the next run") from exc
        except (urllib.error.URLError, OSError) as exc:
            raise DownloadError(f"GET {url} failed: {exc}; {have} bytes kept in {part} for the next run") from exc
        if response is not None:
            with response:
                if have and response.status == 200:
                    have = 0  # the server ignored the Range request: start over
                result["resumed_from"] = have
                mode = "ab" if have else "wb"
                try:
                    with open(part, mode) as out:
                        while True:
                            block = response.read(CHUNK)
                            if not block:
                                break
                            out.write(block)
                            result["bytes_downloaded"] += len(block)
                        out.flush()
                        os.fsync(out.fileno())
                except OSError as exc:
                    raise DownloadError(f"download of {url} interrupted after {result['bytes_downloaded']} bytes: "
                                        f"{exc}; the part file is kept for the next run") from exc
    got = os.path.getsize(part)
    if size is not None and got != size:
        raise DownloadError(f"download of {url} stopped at {got} of {size} bytes; the part file {part} is kept "
                            "and the next run resumes it")
    actual = sha256_file(part).hexdigest()
    if sha256 and actual != sha256:
        os.remove(part)
        raise DownloadError(f"sha256 of {os.path.basename(dest)} is {actual}, expected {sha256}: the download was "
                            "discarded and nothing in the model directory was changed")
    os.makedirs(os.path.dirname(dest), exist_ok=True)
    os.chmod(part, 0o644)
    os.replace(part, dest)
    _write_marker(dest, actual)
    if evict:
        evict_page_cache(dest)
    result["sha256"] = actual
    return result
