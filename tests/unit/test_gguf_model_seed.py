"""The fleet source's file server (roles/gguf_model/files/gguf_model_seed.py) over real HTTP on loopback.

Real files in a temporary model directory, verified with the sidecars the download module writes;
every server listens on 127.0.0.1 on a port the kernel picks.
"""

import hashlib
import http.client
import io
import json
import os
import select
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import role_script  # tests/support (on the path through pytest.ini)
from ansible_collections.cpu_llm.infra.plugins.module_utils import resumable_download as rd

SEED_PATH = role_script.ROOT / "roles" / "gguf_model" / "files" / "gguf_model_seed.py"
seed_server = role_script.load("gguf_model", "gguf_model_seed")

FIRST = os.urandom(300_000 + 7)
SECOND = os.urandom(70_001)
PREFIX = "/org/m-GGUF/resolve/main"


def sha(data):
    return hashlib.sha256(data).hexdigest()


@pytest.fixture
def model(tmp_path):
    """A model directory as the download leaves it (files + .NAME.verified sidecars) and its manifest."""
    root = tmp_path / "models" / "org--m-GGUF" / "main"
    root.mkdir(parents=True)
    files = []
    for name, data in (("m-Q6_K-00001-of-00002.gguf", FIRST), ("m-Q6_K-00002-of-00002.gguf", SECOND)):
        (root / name).write_bytes(data)
        rd._write_marker(str(root / name), sha(data))  # the download module's own sidecar writer
        files.append({"path": f"Q6_K/{name}", "name": name, "sha256": sha(data), "size": len(data)})
    manifest = {"root": str(root), "repo": "org/m-GGUF", "revision": "main", "files": files,
                "bind": "127.0.0.1", "port": 0, "threads": 8, "idle_exit_seconds": 0}
    return root, manifest


class Running:
    """A SeedServer serving on 127.0.0.1 in a thread; its log lines as dicts."""

    def __init__(self, manifest, handler=None):
        self.out = io.StringIO()
        self.server = seed_server.SeedServer(seed_server.load_manifest(manifest), out=self.out,
                                             **({"handler": handler} if handler else {}))
        self.port = self.server.server_address[1]
        self.base = f"http://127.0.0.1:{self.port}{PREFIX}"
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    def log(self):
        return [json.loads(line) for line in self.out.getvalue().splitlines()]

    def request(self, path, method="GET", headers=None):
        """(status, headers, body); returns once the server logged the request (it logs after sending)."""
        before = len(self.out.getvalue().splitlines())
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
        try:
            conn.request(method, path, headers=headers or {})
            response = conn.getresponse()
            answer = response.status, response.headers, response.read()
        finally:
            conn.close()
        deadline = time.monotonic() + 5
        while len(self.out.getvalue().splitlines()) == before and time.monotonic() < deadline:
            time.sleep(0.01)
        return answer

    def stop(self):
        self.server.stop()
        self.thread.join(5)


@pytest.fixture
def seed(model):
    running = Running(model[1])
    yield running
    running.stop()


FIRST_URL = f"{PREFIX}/Q6_K/m-Q6_K-00001-of-00002.gguf"


def test_full_get_sends_the_file_with_its_length(seed):
    status, headers, body = seed.request(FIRST_URL)
    assert (status, body) == (200, FIRST)
    assert headers["Content-Length"] == str(len(FIRST)) and headers["Accept-Ranges"] == "bytes"
    assert headers["ETag"] == f'"{sha(FIRST)}"'


def test_head_sends_the_length_and_no_body(seed):
    status, headers, body = seed.request(FIRST_URL, "HEAD")
    assert (status, body) == (200, b"") and headers["Content-Length"] == str(len(FIRST))
    assert seed.log()[-1]["bytes"] == 0


LAST = len(FIRST) - 1


@pytest.mark.parametrize(("header", "start", "end"), [
    ("bytes=100-199", 100, 199), ("bytes=299000-", 299000, LAST), ("bytes=-10", LAST - 9, LAST), ("bytes=0-0", 0, 0),
    ("bytes=299990-999999999", 299990, LAST)])
def test_one_range_is_answered_206_with_its_content_range(seed, header, start, end):
    status, headers, body = seed.request(FIRST_URL, headers={"Range": header})
    assert status == 206 and body == FIRST[start:end + 1]
    assert headers["Content-Range"] == f"bytes {start}-{end}/{len(FIRST)}"
    assert headers["Content-Length"] == str(end - start + 1)
    assert seed.log()[-1] == {**seed.log()[-1], "status": 206, "range": header, "bytes": end - start + 1}


@pytest.mark.parametrize("header", [f"bytes={len(FIRST)}-", f"bytes={len(FIRST) + 5}-{len(FIRST) + 9}", "bytes=-0"])
def test_a_range_past_the_end_is_416(seed, header):
    status, headers, body = seed.request(FIRST_URL, headers={"Range": header})
    assert (status, body) == (416, b"") and headers["Content-Range"] == f"bytes */{len(FIRST)}"


@pytest.mark.parametrize("header", ["bytes=0-1,5-9", "lines=1-2", "bytes=9-1"])
def test_a_range_that_is_not_one_byte_range_gets_the_whole_file(seed, header):
    status, _, body = seed.request(FIRST_URL, headers={"Range": header})
    assert (status, body) == (200, FIRST)


@pytest.mark.parametrize("path", [
    f"{PREFIX}/Q6_K/../Q6_K/m-Q6_K-00001-of-00002.gguf", f"{PREFIX}/../../../../etc/passwd",
    f"{PREFIX}/%2e%2e/%2e%2e/secret.txt", f"{PREFIX}/..%2F..%2Fsecret.txt", f"{PREFIX}//etc/passwd",
    "/etc/passwd", "//etc/passwd", f"{PREFIX}/Q6_K//m-Q6_K-00001-of-00002.gguf",
    f"{PREFIX}/m-Q6_K-00001-of-00002.gguf"])
def test_path_traversal_and_other_spellings_are_refused(seed, model, path):
    (model[0].parents[2] / "secret.txt").write_text("not for the fleet")
    status, _, body = seed.request(path)
    assert status == 404 and b"not for the fleet" not in body and FIRST[:64] not in body


@pytest.mark.parametrize("path", [
    "/org/other-GGUF/resolve/main/Q6_K/m-Q6_K-00001-of-00002.gguf",  # another repository
    "/org/m-GGUF/resolve/v2/Q6_K/m-Q6_K-00001-of-00002.gguf",  # another revision
    "/org/m-GGUF/blob/main/Q6_K/m-Q6_K-00001-of-00002.gguf",  # not the resolve layout
    f"{PREFIX}/", f"{PREFIX}/Q6_K/", "/", "/api/models/org/m-GGUF/tree/main"])  # no listings
def test_unknown_repository_revision_and_listings_are_404(seed, path):
    assert seed.request(path)[0] == 404


def test_a_file_not_among_the_verified_ones_is_404(seed, model):
    root = model[0]
    # In the model directory with a valid sidecar, but not in the manifest.
    (root / "m-Q4_K_M.gguf").write_bytes(b"another quant")
    rd._write_marker(str(root / "m-Q4_K_M.gguf"), sha(b"another quant"))
    assert seed.request(f"{PREFIX}/m-Q4_K_M.gguf")[0] == 404
    assert seed.request(f"{PREFIX}/Q6_K/.m-Q6_K-00001-of-00002.gguf.verified")[0] == 404
    # In the manifest, but changed after it was verified.
    second = root / "m-Q6_K-00002-of-00002.gguf"
    second.write_bytes(SECOND[:-1] + b"\0")
    status, _, body = seed.request(f"{PREFIX}/Q6_K/m-Q6_K-00002-of-00002.gguf")
    assert status == 404 and SECOND[:64] not in body
    assert "changed after it was verified" in seed.log()[-1]["why"]
    # In the manifest, but its sidecar is gone.
    Path(rd.marker_path(str(root / "m-Q6_K-00001-of-00002.gguf"))).unlink()
    assert seed.request(FIRST_URL)[0] == 404
    assert "no verification sidecar" in seed.log()[-1]["why"]


def test_a_symlink_is_not_followed_even_with_a_matching_sidecar(model, tmp_path):
    root, manifest = model
    outside = tmp_path / "outside.gguf"
    outside.write_bytes(b"outside the model directory")
    (root / "link.gguf").symlink_to(outside)
    rd._write_marker(str(root / "link.gguf"), sha(outside.read_bytes()))  # stat follows the link: it "matches"
    manifest = dict(manifest, files=[*manifest["files"], {"path": "link.gguf", "name": "link.gguf",
                                                          "sha256": sha(outside.read_bytes()), "size": None}])
    running = Running(manifest)
    try:
        status, _, body = running.request(f"{PREFIX}/link.gguf")
        assert status == 404 and b"outside" not in body
        assert "cannot open link.gguf" in running.log()[-1]["why"]
    finally:
        running.stop()


def test_a_wrong_sha256_in_the_manifest_is_not_served(model):
    manifest = model[1]
    files = [dict(manifest["files"][0], sha256="0" * 64)]
    running = Running(dict(manifest, files=files))
    try:
        assert running.request(FIRST_URL)[0] == 404
        assert "another sha256" in running.log()[-1]["why"]
    finally:
        running.stop()


def test_every_request_is_one_log_line_without_headers(seed):
    seed.request(FIRST_URL, headers={"Authorization": "Bearer hf_secret_token", "X-Other": "private-value",
                                     "Range": "bytes=0-9"})
    seed.request(f"{PREFIX}/missing.gguf?token=query-secret")
    seed.request(FIRST_URL, "POST")
    lines = seed.out.getvalue().splitlines()
    assert len(lines) == 3
    assert "hf_secret_token" not in seed.out.getvalue() and "private-value" not in seed.out.getvalue()
    assert "query-secret" not in seed.out.getvalue()
    first, missing, post = map(json.loads, lines)
    assert {k: first[k] for k in ("client", "method", "path", "range", "status", "bytes")} == {
        "client": "127.0.0.1", "method": "GET", "path": FIRST_URL, "range": "bytes=0-9", "status": 206, "bytes": 10}
    assert (missing["status"], missing["why"]) == (404, "not a file of this model")
    assert (post["method"], post["status"]) == ("POST", 501)


def test_at_most_threads_requests_run_at_once(model):
    """Two slots: two clients that never finish their request hold both; a third waits until one leaves."""
    running = Running(dict(model[1], threads=2))
    holders = []
    try:
        for _ in range(2):
            holder = socket.create_connection(("127.0.0.1", running.port), timeout=5)
            holder.sendall(b"GET / HTTP/1.1\r\n")  # headers never end
            holders.append(holder)
        deadline = time.monotonic() + 5
        while running.server.active < 2 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert running.server.active == 2
        waiting = http.client.HTTPConnection("127.0.0.1", running.port, timeout=0.5)
        waiting.request("HEAD", FIRST_URL)
        with pytest.raises(TimeoutError):
            waiting.getresponse()
        waiting.close()
        holders.pop().close()
        assert running.request(FIRST_URL, "HEAD")[0] == 200
    finally:
        for holder in holders:
            holder.close()
        running.stop()


@pytest.mark.parametrize(("change", "message"), [
    ({"root": "models"}, "root must be an absolute directory"),
    ({"repo": "just-a-name"}, "repo must be '<org>/<name>'"),
    ({"revision": "../main"}, "revision must not contain"),
    ({"files": []}, "files must list at least one file"),
    ({"files": [{"path": "../x.gguf"}]}, "files[].path must not contain"),
    ({"files": [{"path": "/etc/passwd"}]}, "files[].path must be a relative path"),
    ({"files": [{"path": "a.gguf", "name": "sub/a.gguf"}]}, "files[].name must be a plain file name"),
    ({"files": [{"path": "a.gguf", "name": ".."}]}, "files[].name must be a plain file name"),
    ({"files": [{"path": "a.gguf", "sha256": "abc"}]}, "must be 64 lowercase hex digits"),
    ({"files": [{"path": "a.gguf"}, {"path": "b/a.gguf"}]}, "is listed twice"),
    ({"port": 70000}, "port must be 0..65535"),
    ({"threads": 0}, "threads must be 1..256"),
    ({"bind": "10.0.0.1\nx"}, "bind must be an IP address"),
])
def test_a_bad_manifest_is_refused(model, change, message):
    with pytest.raises(seed_server.ManifestError) as error:
        seed_server.load_manifest({**model[1], **change})
    assert message in str(error.value)


def run_script(manifest, tmp_path):
    path = tmp_path / "manifest.json"
    path.write_text(json.dumps(manifest))
    return subprocess.Popen([sys.executable, "-I", str(SEED_PATH), str(path)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def read_line(proc, seconds=10):
    ready, _, _ = select.select([proc.stdout], [], [], seconds)
    assert ready, "the server printed nothing"
    return json.loads(proc.stdout.readline())


def test_the_script_serves_until_sigterm_then_evicts_what_it_served(model, tmp_path):
    proc = run_script(model[1], tmp_path)
    try:
        listening = read_line(proc)
        assert listening["event"] == "listening" and listening["files"] == 2
        conn = http.client.HTTPConnection("127.0.0.1", listening["port"], timeout=5)
        conn.request("GET", FIRST_URL)
        assert conn.getresponse().read() == FIRST
        conn.close()
        assert read_line(proc)["status"] == 200
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(10) == 0
        assert read_line(proc) == {"event": "exit", "reason": "stopped", "evicted": ["m-Q6_K-00001-of-00002.gguf"]}
    finally:
        proc.kill()
        proc.wait()


def test_the_script_stops_by_itself_when_nobody_comes(model, tmp_path):
    proc = run_script(dict(model[1], idle_exit_seconds=1), tmp_path)
    try:
        assert read_line(proc)["event"] == "listening"
        assert proc.wait(10) == 0
        assert read_line(proc) == {"event": "exit", "reason": "idle for 1 s", "evicted": []}
    finally:
        proc.kill()
        proc.wait()


def test_the_script_refuses_to_start_with_an_unverified_file(model, tmp_path):
    Path(rd.marker_path(str(model[0] / "m-Q6_K-00002-of-00002.gguf"))).unlink()
    proc = run_script(model[1], tmp_path)
    _, err = proc.communicate(timeout=10)
    assert proc.returncode == 1
    assert "not serving" in err and "m-Q6_K-00002-of-00002.gguf has no verification sidecar" in err


def test_the_script_says_which_variable_when_the_port_is_taken(model, tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        proc = run_script(dict(model[1], port=port), tmp_path)
        _, err = proc.communicate(timeout=10)
    assert proc.returncode == 1
    assert f"cannot listen on 127.0.0.1 port {port}" in err and "gguf_model_fleet_port" in err


def test_no_bind_address_means_every_address_ipv6_first_and_nothing_is_looked_up():
    assert seed_server._bind_candidates("", 8089) == [(socket.AF_INET6, ("::", 8089), True),
                                                      (socket.AF_INET, ("0.0.0.0", 8089), False)]  # noqa: S104
    assert seed_server._bind_candidates("10.0.0.5", 8089) == [(socket.AF_INET, ("10.0.0.5", 8089), False)]
    assert seed_server._bind_candidates("fd00::5", 8089)[0][:2] == (socket.AF_INET6, ("fd00::5", 8089, 0, 0))
    with pytest.raises(OSError, match="bind must be an IP address"):
        seed_server._bind_candidates("localhost", 8089)
