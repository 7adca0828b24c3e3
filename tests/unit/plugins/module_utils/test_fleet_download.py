"""One WAN download per fleet, end to end on 127.0.0.1: the test hub -> the fleet source (the real downloader)
-> its seed server (roles/gguf_model/files/gguf_model_seed.py, with the manifest module_utils/fleet.py
writes) -> a peer (the real downloader, given URLs by gguf_download's own code), whose transfer is cut
and resumes with a Range request as it would from the hub."""

import hashlib
import io
import json
import os
import threading
from types import SimpleNamespace

import pytest
import role_script  # tests/support (on the path through pytest.ini)
from ansible_collections.cpu_llm.infra.plugins.module_utils import fleet
from ansible_collections.cpu_llm.infra.plugins.module_utils import resumable_download as rd
from ansible_collections.cpu_llm.infra.plugins.modules import gguf_download
from conftest import requests

seed_server = role_script.load("gguf_model", "gguf_model_seed")
MIB = 1 << 20
CHUNK = 256 << 10
FILES = {"Q6_K/m-Q6_K-00001-of-00002.gguf": os.urandom(MIB + 5), "Q6_K/m-Q6_K-00002-of-00002.gguf": os.urandom(300_001)}
# As the gguf_model_plan filter gives it: [{name, path, sha256, size}], first shard first.
PLAN = [{"name": path.rsplit("/", 1)[1], "path": path, "sha256": hashlib.sha256(data).hexdigest(), "size": len(data)}
        for path, data in FILES.items()]


def specs(base_url, dest_dir):
    """The URLs and destinations gguf_download makes of the plan (its own code), for fetch_all."""
    def fail_json(**kwargs):
        raise AssertionError(kwargs)

    module = SimpleNamespace(params={"base_url": base_url, "dest_dir": str(dest_dir), "files": PLAN},
                             fail_json=fail_json)
    return gguf_download._specs(module)


def declare(source_dir):
    """Two hosts as the role declares them: llm-1 downloads from the hub, llm-2 names it its source."""
    common = {"source": "llm-1", "repo": "org/m", "revision": "main", "files": PLAN, "port": 8089, "connections": 4}
    return {"llm-1": {**common, "dir": str(source_dir), "address": "127.0.0.1", "addresses": ["127.0.0.1"],
                      "needs": False},
            "llm-2": {**common, "dir": "/elsewhere", "address": "llm-2", "addresses": ["127.0.0.2"], "needs": True}}


class Seed:
    """The source's server as the role would start it, but on a port the kernel picks."""

    def __init__(self, source_dir, handler=seed_server.SeedHandler):
        declarations = declare(source_dir)
        mine, peer = fleet.plan(declarations, "llm-1"), fleet.plan(declarations, "llm-2")
        assert peer["base_url"] == "http://127.0.0.1:8089/org/m/resolve/main"
        assert mine["seed"]["allow"] == ["127.0.0.1", "127.0.0.2"] and mine["seed"]["bind"] == "127.0.0.1"
        self.out = io.StringIO()
        self.server = seed_server.SeedServer(seed_server.load_manifest(dict(mine["seed"]["manifest"], port=0)),
                                             handler=handler, out=self.out)
        self.base_url = peer["base_url"].replace(":8089/", f":{self.server.server_address[1]}/")
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    def log(self):
        return [json.loads(line) for line in self.out.getvalue().splitlines()]

    def stop(self):
        self.server.stop()
        self.thread.join(5)


@pytest.fixture
def source(serve, tmp_path):
    """The fleet source after its download from the hub: (its model directory, the hub's request log)."""
    hub_file = serve(b"not part of the model")
    www = tmp_path / "www" / "org" / "m" / "resolve" / "main"
    for path, data in FILES.items():
        (www / path).parent.mkdir(parents=True, exist_ok=True)
        (www / path).write_bytes(data)
    source_dir = tmp_path / "llm-1" / "org--m" / "main"
    result = rd.fetch_all(specs(hub_file.rsplit("/", 1)[0], source_dir), str(tmp_path / "llm-1" / ".staging"),
                          connections=4, chunk_size=CHUNK)
    assert result["changed"] and result["bytes_downloaded"] == sum(map(len, FILES.values()))
    return source_dir, tmp_path / "requests.jsonl"


@pytest.fixture
def seed(source):
    running = Seed(source[0])
    yield running
    running.stop()


def body_bytes(log, path):
    """Bytes of the file sent in answer to GETs (the 1-byte probe of a parallel download left out)."""
    return sum(r["bytes"] for r in log if r["method"] == "GET" and r["path"].endswith("/" + path)
               and r["status"] in (200, 206) and r["range"] != "bytes=0-0")


def test_a_peer_fetches_the_verified_files_from_the_source_and_the_hub_sends_each_once(source, seed, tmp_path):
    peer_dir = tmp_path / "llm-2" / "org--m" / "main"
    result = rd.fetch_all(specs(seed.base_url, peer_dir), str(tmp_path / "llm-2" / ".staging"), connections=4,
                          chunk_size=CHUNK)
    assert result["changed"] and result["bytes_downloaded"] == sum(map(len, FILES.values()))
    for entry in PLAN:
        assert (peer_dir / entry["name"]).read_bytes() == FILES[entry["path"]]
        assert rd.verified(str(peer_dir / entry["name"]), entry["sha256"])
        # The hub sent each file once (to the source); the peer got it from the source.
        assert body_bytes(requests(source[1]), entry["path"]) == entry["size"]
        assert body_bytes(seed.log(), entry["path"]) == entry["size"]
    assert {r["client"] for r in seed.log()} == {"127.0.0.1"}
    # A second run: nothing to fetch, no request at all.
    before = len(seed.log())
    again = rd.fetch_all(specs(seed.base_url, peer_dir), str(tmp_path / "llm-2" / ".staging"), connections=4,
                         chunk_size=CHUNK)
    assert again["changed"] is False and len(seed.log()) == before


class CutFirst(seed_server.SeedHandler):
    """Test fault: the first `left` file bodies stop after `cut` bytes and the connection closes (a dropped link)."""

    cut, left, lock = 0, [0], threading.Lock()

    def _send_body(self, handle, start, length):
        with self.lock:
            cutting = self.left[0] > 0 and length > self.cut
            self.left[0] -= cutting
        if not cutting:
            return super()._send_body(handle, start, length)
        handle.seek(start)
        self.connection.sendfile(handle, start, self.cut)
        return self.cut


def test_a_cut_transfer_from_the_source_resumes_with_a_range_request(source, tmp_path):
    CutFirst.cut, CutFirst.left = 400_000 + 3, [1]
    seed = Seed(source[0], handler=CutFirst)
    entry = PLAN[0]
    url, dest = f"{seed.base_url}/{entry['path']}", tmp_path / "llm-2" / entry["name"]
    staging = tmp_path / "llm-2" / ".staging"
    try:
        with pytest.raises(rd.DownloadError, match=r"the part file .* is kept"):
            rd.fetch(url, str(dest), str(staging), sha256=entry["sha256"], size=entry["size"])
        assert not dest.exists() and (staging / f"{entry['name']}.part").stat().st_size == CutFirst.cut
        result = rd.fetch(url, str(dest), str(staging), sha256=entry["sha256"], size=entry["size"])
    finally:
        seed.stop()
    assert result["resumed_from"] == CutFirst.cut and result["bytes_downloaded"] == entry["size"] - CutFirst.cut
    assert dest.read_bytes() == FILES[entry["path"]]
    last = seed.log()[-1]
    rest = entry["size"] - CutFirst.cut
    assert (last["range"], last["status"], last["bytes"]) == (f"bytes={CutFirst.cut}-", 206, rest)


def test_dropped_parallel_connections_continue_their_chunks(source, tmp_path):
    CutFirst.cut, CutFirst.left = 1000, [3]
    seed = Seed(source[0], handler=CutFirst)
    try:
        result = rd.fetch_all(specs(seed.base_url, tmp_path / "llm-2"), str(tmp_path / "llm-2" / ".staging"),
                              connections=4, chunk_size=CHUNK)
    finally:
        seed.stop()
    assert result["retries"] >= 1 and result["bytes_downloaded"] == sum(map(len, FILES.values()))
    for entry in PLAN:
        assert (tmp_path / "llm-2" / entry["name"]).read_bytes() == FILES[entry["path"]]
    # The chunks continued from the byte where they were cut, not from their start.
    starts = {int(r["range"].split("=")[1].split("-")[0]) for r in seed.log() if r.get("range")}
    assert any(start % CHUNK == CutFirst.cut for start in starts)
