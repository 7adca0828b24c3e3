"""resumable_download.fetch against the real local hub over HTTP, with transfers cut midway."""

import hashlib
import os
from pathlib import Path

import pytest
from ansible_collections.cpu_llm.infra.plugins.module_utils import resumable_download as rd
from conftest import requests

ROOT = Path(__file__).resolve().parents[4]
HUB = ROOT / "tests" / "support" / "hf_server.py"
PAYLOAD = os.urandom(3 * 1024 * 1024 + 123)
SHA = hashlib.sha256(PAYLOAD).hexdigest()


@pytest.fixture
def hub(serve, tmp_path):
    """(start(max_bytes_per_request=None) -> URL of m.gguf on a new hub, the request log)."""
    def start(max_bytes=None):
        return serve(PAYLOAD, *(["--max-bytes-per-request", max_bytes] if max_bytes else []))

    return start, tmp_path / "requests.jsonl"


def test_downloads_verifies_moves_and_marks(hub, tmp_path):
    start, _ = hub
    dest, staging = tmp_path / "models" / "m.gguf", tmp_path / "models" / ".staging"
    result = rd.fetch(start(), str(dest), str(staging), sha256=SHA, size=len(PAYLOAD))
    assert result["changed"] and result["bytes_downloaded"] == len(PAYLOAD) and result["resumed_from"] == 0
    assert dest.read_bytes() == PAYLOAD and oct(dest.stat().st_mode & 0o777) == "0o644"
    assert not list(staging.iterdir())
    assert Path(rd.marker_path(str(dest))).read_text().split()[0] == SHA


def test_second_run_changes_nothing_and_does_not_rehash(hub, tmp_path, monkeypatch):
    start, log = hub
    url = start()
    dest, staging = tmp_path / "m.gguf", tmp_path / ".staging"
    rd.fetch(url, str(dest), str(staging), sha256=SHA, size=len(PAYLOAD))
    before = len(requests(log))
    monkeypatch.setattr(rd, "sha256_file", lambda *a, **k: pytest.fail("re-hashed an unchanged file"))
    assert rd.fetch(url, str(dest), str(staging), sha256=SHA, size=len(PAYLOAD))["changed"] is False
    assert len(requests(log)) == before


def test_interrupted_transfer_resumes_with_range(hub, tmp_path):
    start, log = hub
    cut = 1024 * 1024 + 7
    dest, staging = tmp_path / "m.gguf", tmp_path / ".staging"
    with pytest.raises(rd.DownloadError, match=r"the part file .* is kept"):
        rd.fetch(start(max_bytes=cut), str(dest), str(staging), sha256=SHA, size=len(PAYLOAD))
    assert not dest.exists() and (staging / "m.gguf.part").stat().st_size == cut
    result = rd.fetch(start(), str(dest), str(staging), sha256=SHA, size=len(PAYLOAD))
    assert result["resumed_from"] == cut and result["bytes_downloaded"] == len(PAYLOAD) - cut
    assert dest.read_bytes() == PAYLOAD
    assert requests(log)[-1]["range"] == f"bytes={cut}-" and requests(log)[-1]["status"] == 206


def test_wrong_checksum_is_discarded_and_dest_untouched(hub, tmp_path):
    start, _ = hub
    dest, staging = tmp_path / "m.gguf", tmp_path / ".staging"
    dest.write_bytes(b"the model that serves today")
    with pytest.raises(rd.DownloadError, match=r"expected 0{64}: the download was discarded"):
        rd.fetch(start(), str(dest), str(staging), sha256="0" * 64, size=len(PAYLOAD))
    assert dest.read_bytes() == b"the model that serves today"
    assert not (staging / "m.gguf.part").exists()


def test_check_mode_changes_nothing(hub, tmp_path):
    start, log = hub
    dest = tmp_path / "m.gguf"
    assert rd.fetch(start(), str(dest), str(tmp_path / "s"), sha256=SHA, check_mode=True)["changed"] is True
    assert not dest.exists() and not requests(log)


def test_http_error_names_the_url_and_keeps_the_part(hub, tmp_path):
    start, _ = hub
    url = start().replace("m.gguf", "missing.gguf")
    with pytest.raises(rd.DownloadError, match=r"answered HTTP 404"):
        rd.fetch(url, str(tmp_path / "x.gguf"), str(tmp_path / "s"), sha256=SHA)


def test_token_is_not_sent_to_another_host_on_redirect():
    handler = rd.KeepAuthOnSameHost()
    req = rd.urllib.request.Request("https://huggingface.co/a/b/resolve/main/f.gguf",
                                    headers={"Authorization": "Bearer hf_secret"})
    same = handler.redirect_request(req, None, 302, "Found", {}, "https://huggingface.co/other")
    other = handler.redirect_request(req, None, 302, "Found", {}, "https://cdn-lfs.example/f.gguf")
    assert same.get_header("Authorization") == "Bearer hf_secret"
    assert other.get_header("Authorization") is None
