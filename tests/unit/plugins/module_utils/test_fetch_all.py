"""resumable_download.fetch_all: a model's files in one job, one status file listing all of them."""

import hashlib
import json
import os
import threading
import time

import pytest
from ansible_collections.cpu_llm.infra.plugins.module_utils import resumable_download as rd

MIB = 1 << 20
FIRST = os.urandom(2 * MIB + 7)
SECOND = os.urandom(MIB + 3)


def sha(data):
    return hashlib.sha256(data).hexdigest()


@pytest.fixture
def two_files(serve, tmp_path):
    """A hub (per-connection cap) serving m.gguf and n.gguf; returns the specs fetch_all takes."""
    url = serve(FIRST, "--per-connection-rate", 1_500_000)
    (tmp_path / "www" / "org" / "m" / "resolve" / "main" / "n.gguf").write_bytes(SECOND)
    base, models = url.rsplit("/", 1)[0], tmp_path / "models"
    return [{"url": f"{base}/m.gguf", "dest": str(models / "m.gguf"), "sha256": sha(FIRST), "size": len(FIRST)},
            {"url": f"{base}/n.gguf", "dest": str(models / "n.gguf"), "sha256": sha(SECOND), "size": len(SECOND)}]


def test_files_arrive_one_after_another_and_the_status_lists_all_of_them(two_files, tmp_path):
    status_path = tmp_path / "status" / "progress.json"  # its directory does not exist yet
    seen, result = [], {}

    def run():
        result.update(rd.fetch_all(two_files, str(tmp_path / "staging"), progress_file=str(status_path),
                                   connections=2, chunk_size=256 << 10, progress_interval=0.05))

    thread = threading.Thread(target=run)
    thread.start()
    deadline = time.monotonic() + 30
    while thread.is_alive() and time.monotonic() < deadline:
        if status_path.exists():
            seen.append(json.loads(status_path.read_text()))
        time.sleep(0.05)
    thread.join()
    assert result["changed"] and result["bytes_downloaded"] == len(FIRST) + len(SECOND)
    assert [f["sha256"] for f in result["files"]] == [sha(FIRST), sha(SECOND)]
    final = json.loads(status_path.read_text())
    assert [e["state"] for e in final] == ["done", "done"]
    assert [e["bytes_done"] for e in final] == [len(FIRST), len(SECOND)]
    # While the first file was coming, the second was listed as pending with its size (the total is known).
    during_first = [s for s in seen if s[0]["state"] == "downloading"]
    assert during_first and all(s[1]["state"] == "pending" and s[1]["bytes_total"] == len(SECOND)
                                for s in during_first)
    assert not any(s[0]["state"] == "downloading" and s[1]["state"] == "downloading" for s in seen)


def test_a_verified_file_is_not_fetched_again_and_counts_as_done(two_files, tmp_path):
    staging, status_path = str(tmp_path / "staging"), tmp_path / "progress.json"
    rd.fetch_all(two_files[:1], staging, connections=2)
    result = rd.fetch_all(two_files, staging, progress_file=str(status_path), connections=2)
    assert [f["changed"] for f in result["files"]] == [False, True]
    assert result["bytes_downloaded"] == len(SECOND)
    first = json.loads(status_path.read_text())[0]
    assert first["state"] == "done" and first["bytes_done"] == first["resumed_from"] == len(FIRST)


def test_a_failed_file_stops_the_rest_and_the_status_says_so(two_files, tmp_path):
    files = [dict(two_files[0], sha256="0" * 64), two_files[1]]
    status_path = tmp_path / "progress.json"
    with pytest.raises(rd.DownloadError, match=r"sha256 of m\.gguf"):
        rd.fetch_all(files, str(tmp_path / "staging"), progress_file=str(status_path), connections=2)
    assert [e["state"] for e in json.loads(status_path.read_text())] == ["failed", "pending"]
    assert not os.path.exists(files[0]["dest"]) and not os.path.exists(files[1]["dest"])


def test_check_mode_fetches_and_writes_nothing(two_files, tmp_path):
    status_path = tmp_path / "progress.json"
    result = rd.fetch_all(two_files, str(tmp_path / "staging"), progress_file=str(status_path), check_mode=True)
    assert result["changed"] and result["bytes_downloaded"] == 0
    assert not status_path.exists() and not (tmp_path / "staging").exists()
