"""resumable_download.fetch over several connections, and what the Hub does to downloads, against the local hub."""

import errno
import hashlib
import json
import os
import threading
import time
from email.utils import formatdate
from pathlib import Path

import pytest
from ansible_collections.cpu_llm.infra.plugins.module_utils import resumable_download as rd
from conftest import requests

ROOT = Path(__file__).resolve().parents[4]
HUB = ROOT / "tests" / "support" / "hf_server.py"
MIB = 1 << 20
PAYLOAD = os.urandom(3 * MIB + 123)
SHA = hashlib.sha256(PAYLOAD).hexdigest()
CHUNK = 256 << 10  # 13 chunks: many more than connections, as 64 MiB chunks of a 50 GB shard are


@pytest.fixture
def hub(serve, tmp_path):
    """(start(*flags) -> URL of m.gguf on a new hub with these fault flags, the shared request log)."""
    return (lambda *flags: serve(PAYLOAD, *flags)), tmp_path / "requests.jsonl"


def ranged_gets(log):
    return [r for r in requests(log) if r["method"] == "GET" and r["range"] and r["range"] != "bytes=0-0"]


def paths(tmp_path):
    return tmp_path / "models" / "m.gguf", tmp_path / "models" / ".staging"


def fetch(url, dest, staging, **kw):
    kw.setdefault("connections", 4)
    kw.setdefault("chunk_size", CHUNK)
    kw.setdefault("max_retry_wait", 0.5)
    return rd.fetch(url, str(dest), str(staging), sha256=SHA, size=len(PAYLOAD), **kw)


def test_parallel_download_uses_ranged_chunks_and_reads_the_file_once_for_the_hash(hub, tmp_path, monkeypatch):
    start, log = hub
    dest, staging = paths(tmp_path)
    read = []
    real_pread = os.pread
    monkeypatch.setattr(rd.os, "pread", lambda fd, n, off: read.append(n) or real_pread(fd, n, off))
    monkeypatch.setattr(rd, "sha256_file", lambda *a, **k: pytest.fail("hashed the whole file in a second pass"))
    result = fetch(start(), dest, staging, connections=8)
    assert dest.read_bytes() == PAYLOAD and result["sha256"] == SHA and result["connections"] == 8
    assert result["bytes_downloaded"] == len(PAYLOAD) and result["warnings"] == []
    assert sum(read) == len(PAYLOAD)  # the hasher read each byte back once, nothing more
    chunks = {r["range"] for r in ranged_gets(log)}
    assert len(chunks) == -(-len(PAYLOAD) // CHUNK) and all(r["status"] == 206 for r in ranged_gets(log))
    assert not list(staging.iterdir())  # no part, no state left
    assert Path(rd.marker_path(str(dest))).read_text().split()[0] == SHA


def test_dropped_connections_continue_within_the_chunk(hub, tmp_path):
    start, log = hub
    dest, staging = paths(tmp_path)
    result = fetch(start("--max-bytes-per-request", 100_000), dest, staging, chunk_size=MIB)
    assert dest.read_bytes() == PAYLOAD and result["retries"] > 0
    # Continued from the last written byte, never re-fetching a byte: ranges of one chunk never overlap.
    assert sum(r["bytes"] for r in ranged_gets(log)) == len(PAYLOAD)


def fill_disk_after(monkeypatch, staging, limit, wait_done=()):
    """A fake writer: ENOSPC at offsets >= limit, once the chunks in wait_done are recorded as complete."""
    real = rd._pwrite

    def pwrite(fd, data, offset):
        if offset + len(data) > limit:
            deadline = time.monotonic() + 5
            state = staging / "m.gguf.part.state"
            while wait_done and time.monotonic() < deadline:
                if state.exists() and set(wait_done) <= set(json.loads(state.read_text() or "{}").get("done", [])):
                    break
                time.sleep(0.01)
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real(fd, data, offset)

    monkeypatch.setattr(rd, "_pwrite", pwrite)


def test_disk_full_names_the_directory_and_bytes_needed_and_a_rerun_fetches_only_missing_chunks(
        hub, tmp_path, monkeypatch):
    start, log = hub
    url = start()
    dest, staging = paths(tmp_path)
    fill_disk_after(monkeypatch, staging, 2 * MIB, wait_done=(0, 1))
    with pytest.raises(rd.DownloadError, match=rf"disk full: no space left in {staging} .* more bytes \(.* GB\) "
                                               r"are needed there\. The staged part .* is kept"):
        fetch(url, dest, staging, connections=2, chunk_size=MIB)
    assert not dest.exists() and (staging / "m.gguf.part").exists()
    state = json.loads((staging / "m.gguf.part.state").read_text())
    assert state["done"] == [0, 1]
    monkeypatch.undo()
    before = len(requests(log))
    result = fetch(url, dest, staging, connections=2, chunk_size=MIB)
    assert dest.read_bytes() == PAYLOAD
    assert result["chunks_resumed"] == 2 and result["resumed_from"] == 2 * MIB
    assert result["bytes_downloaded"] == len(PAYLOAD) - 2 * MIB
    later = [r for r in requests(log)[before:] if r["range"] != "bytes=0-0"]
    starts = sorted(int(r["range"].split("=")[1].split("-")[0]) for r in later)
    # Only the missing chunks are fetched (a loaded host may retry one, continuing inside it).
    assert starts[0] == 2 * MIB and 3 * MIB in starts and all(start >= 2 * MIB for start in starts), later


def test_disk_full_in_single_stream_keeps_the_part_and_resumes(hub, tmp_path, monkeypatch):
    start, log = hub
    url = start()
    dest, staging = paths(tmp_path)
    fill_disk_after(monkeypatch, staging, MIB)
    with pytest.raises(rd.DownloadError, match=rf"no space left in {staging} .*{len(PAYLOAD) - MIB} more bytes"):
        fetch(url, dest, staging, connections=1)
    assert (staging / "m.gguf.part").stat().st_size == MIB
    monkeypatch.undo()
    result = fetch(url, dest, staging, connections=1)
    assert result["resumed_from"] == MIB and dest.read_bytes() == PAYLOAD
    assert requests(log)[-1]["range"] == f"bytes={MIB}-"


def test_too_little_free_space_fails_before_downloading(hub, tmp_path, monkeypatch):
    start, log = hub
    dest, staging = paths(tmp_path)
    monkeypatch.setattr(rd, "_free_bytes", lambda directory: 1000)
    with pytest.raises(rd.DownloadError, match=rf"disk full: {staging} has 1000 bytes free .* {len(PAYLOAD)} more"):
        fetch(start(), dest, staging)
    assert not ranged_gets(log)


def test_single_stream_continues_a_part_left_by_a_parallel_run(hub, tmp_path, monkeypatch):
    start, log = hub
    url = start()
    dest, staging = paths(tmp_path)
    fill_disk_after(monkeypatch, staging, 2 * MIB, wait_done=(0, 1))
    with pytest.raises(rd.DownloadError):
        fetch(url, dest, staging, connections=2, chunk_size=MIB)
    monkeypatch.undo()
    result = fetch(url, dest, staging, connections=1, chunk_size=MIB)
    assert result["resumed_from"] == 2 * MIB and dest.read_bytes() == PAYLOAD
    assert requests(log)[-1]["range"] == f"bytes={2 * MIB}-"


def test_parallel_run_continues_a_part_left_by_a_single_stream(hub, tmp_path):
    start, _ = hub
    dest, staging = paths(tmp_path)
    with pytest.raises(rd.DownloadError):
        fetch(start("--max-bytes-per-request", MIB + 5), dest, staging, connections=1)
    result = fetch(start(), dest, staging, connections=4, chunk_size=CHUNK)
    assert result["chunks_resumed"] == MIB // CHUNK and dest.read_bytes() == PAYLOAD


def test_a_part_left_for_another_sha256_is_not_reused(hub, tmp_path, monkeypatch):
    start, _ = hub
    url = start()
    dest, staging = paths(tmp_path)
    fill_disk_after(monkeypatch, staging, 2 * MIB, wait_done=(0, 1))
    with pytest.raises(rd.DownloadError):
        rd.fetch(url, str(dest), str(staging), sha256="f" * 64, size=len(PAYLOAD), connections=2, chunk_size=MIB)
    monkeypatch.undo()
    result = fetch(url, dest, staging, connections=2, chunk_size=MIB)
    assert result["chunks_resumed"] == 0 and dest.read_bytes() == PAYLOAD


@pytest.mark.parametrize("status", [429, 503])
def test_rate_limits_wait_retry_after_then_succeed(hub, tmp_path, status):
    start, log = hub
    dest, staging = paths(tmp_path)
    began = time.monotonic()
    result = fetch(start("--rate-limit-first", 3, "--rate-limit-status", status, "--retry-after", "0.2"),
                   dest, staging)
    assert dest.read_bytes() == PAYLOAD and result["retries"] >= 3
    assert [r["status"] for r in requests(log)].count(status) == 3
    assert time.monotonic() - began >= 0.2 * 3 / 4  # waited, at least one Retry-After per worker retry chain


def test_retry_after_is_capped(hub, tmp_path):
    start, _ = hub
    dest, staging = paths(tmp_path)
    began = time.monotonic()
    fetch(start("--rate-limit-first", 2, "--retry-after", 3600), dest, staging, max_retry_wait=0.1)
    assert dest.read_bytes() == PAYLOAD and time.monotonic() - began < 10


def test_rate_limit_retries_are_bounded(hub, tmp_path):
    start, _ = hub
    dest, staging = paths(tmp_path)
    with pytest.raises(rd.DownloadError, match="answered HTTP 429"):
        fetch(start("--rate-limit-first", 50, "--retry-after", "0.01"), dest, staging, retries=2)


def test_retry_after_values():
    assert rd.retry_after_seconds("7", 0) == 7
    assert rd.retry_after_seconds("120", 0, cap=60) == 60
    assert rd.retry_after_seconds(None, 3) == 8  # exponential backoff without the header
    assert 25 <= rd.retry_after_seconds(formatdate(time.time() + 30, usegmt=True), 0) <= 30
    assert rd.retry_after_seconds(formatdate(time.time() - 30, usegmt=True), 0) == 0
    assert rd.retry_after_seconds("soon", 1) == 2


@pytest.mark.parametrize("status", [403, 410])
def test_expired_cdn_url_is_resolved_again_from_the_original_url(hub, tmp_path, status):
    start, log = hub
    dest, staging = paths(tmp_path)
    result = fetch(start("--redirect-expiring", MIB, "--redirect-expired-status", status), dest, staging)
    assert dest.read_bytes() == PAYLOAD and result["reresolved"] >= 1
    log_entries = requests(log)
    assert any(r["status"] == status and r["path"].startswith("/cdn/") for r in log_entries)
    redirects = sum(r["status"] == 302 for r in log_entries)
    assert 2 <= redirects < -(-len(PAYLOAD) // CHUNK)  # chunks reuse the CDN URL until it expires
    assert all(r["path"].startswith("/cdn/") for r in ranged_gets(log) if r["status"] == 206)


def test_redirect_expiring_by_time_in_single_stream(hub, tmp_path):
    start, _ = hub
    dest, staging = paths(tmp_path)
    # The signed URL outlives the stream's one request, not a second one (0.5 s: long enough on a busy host).
    result = fetch(start("--redirect-expiring", 0, "--redirect-ttl", 0.5), dest, staging, connections=1)
    assert dest.read_bytes() == PAYLOAD and result["connections"] == 1


def test_server_ignoring_range_falls_back_to_one_stream_with_a_warning(hub, tmp_path):
    start, log = hub
    dest, staging = paths(tmp_path)
    result = fetch(start("--ignore-range"), dest, staging, connections=8)
    assert dest.read_bytes() == PAYLOAD and result["connections"] == 1
    assert len(result["warnings"]) == 1 and "ignores Range requests" in result["warnings"][0]
    entries = requests(log)
    assert entries[-1]["range"] is None and entries[-1]["status"] == 200 and entries[-1]["bytes"] == len(PAYLOAD)
    assert [r["range"] for r in entries[:-1]] in ([], ["bytes=0-0"])  # only the probe (if logged before it closed)


def test_progress_file_reports_bytes_rate_and_eta_while_downloading(hub, tmp_path):
    start, _ = hub
    dest, staging = paths(tmp_path)
    progress = tmp_path / "progress.json"
    url = start("--per-connection-rate", 1_000_000)  # 4 connections: ~0.8 s
    seen = []
    thread = threading.Thread(target=fetch, args=(url, dest, staging),
                              kwargs={"progress_file": str(progress), "progress_interval": 0.05})
    thread.start()
    deadline = time.monotonic() + 20
    while thread.is_alive() and time.monotonic() < deadline:
        if progress.exists():
            seen.append(json.loads(progress.read_text()))
        time.sleep(0.05)
    thread.join()
    final = json.loads(progress.read_text())
    assert final["state"] == "done" and final["bytes_done"] == final["bytes_total"] == len(PAYLOAD)
    assert final["average_bytes_per_s"] > 0
    midway = [s for s in seen if 0 < s["bytes_done"] < len(PAYLOAD) and s["rate_bytes_per_s"] > 0]
    assert midway and all(s["eta_seconds"] is not None for s in midway)


def test_token_is_not_sent_to_the_cdn_host_when_chunks_use_the_resolved_url():
    client = rd._Client("https://huggingface.co/a/b/resolve/main/f.gguf", {"Authorization": "Bearer x"}, 5,
                        None, 1, 1)
    assert client._headers_for("https://huggingface.co/a/b/resolve/main/f.gguf") == {"Authorization": "Bearer x"}
    assert client._headers_for("https://cdn-lfs.example/f.gguf?sig=1") == {}


def test_connections_out_of_range_are_refused(tmp_path):
    with pytest.raises(rd.DownloadError, match=r"connections must be 1\.\.64"):
        rd.fetch("http://127.0.0.1:9/x", str(tmp_path / "x"), str(tmp_path / "s"), connections=65)
