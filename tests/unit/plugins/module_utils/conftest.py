"""Shared fixtures: a local hub (tests/support/hf_server.py) serving one file, for the download tests; the
header-only GGUFs of published large models, for the header reader and the offload planner."""

import json
import socket
import subprocess
import sys
import time
from pathlib import Path

import make_gguf  # tests/support/make_gguf.py (on the path through pytest.ini)
import pytest
from ansible_collections.cpu_llm.infra.plugins.module_utils import gguf_header as gh

HUB = Path(__file__).resolve().parents[4] / "tests" / "support" / "hf_server.py"


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def requests(log):
    """The hub's request log, one dict per request."""
    return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []


@pytest.fixture
def serve(tmp_path):
    """serve(payload, *flags) -> URL of m.gguf holding payload, on a new hub with these fault flags.

    Every hub of a test writes to one request log, tmp_path / "requests.jsonl".
    """
    root = tmp_path / "www" / "org" / "m" / "resolve" / "main"
    root.mkdir(parents=True)
    procs, log = [], tmp_path / "requests.jsonl"

    def start(payload, *flags):
        (root / "m.gguf").write_bytes(payload)
        port = free_port()
        procs.append(subprocess.Popen([sys.executable, str(HUB), "--root", str(tmp_path / "www"), "--port", str(port),
                                       "--request-log", str(log), *map(str, flags)]))
        for _ in range(100):
            with socket.socket() as sock:
                if sock.connect_ex(("127.0.0.1", port)) == 0:
                    return f"http://127.0.0.1:{port}/org/m/resolve/main/m.gguf"
            time.sleep(0.05)
        raise RuntimeError("hub did not start")

    yield start
    for proc in procs:
        proc.terminate()
        proc.wait()


# Each published layout at the quant its tests use (gpt-oss as published: MXFP4 experts).
LAYOUT_QUANTS = {"deepseek-v3": "Q4_K_M", "qwen3-235b-a22b": "Q4_K_M", "gpt-oss-120b": "MXFP4",
                 "llama-3.1-405b": "Q6_K"}


@pytest.fixture(scope="session")
def big(tmp_path_factory):
    """Header-only files of the published layouts (sparse: hundreds of GB apparent, KB on disk)."""
    folder = tmp_path_factory.mktemp("layouts")
    files = {}
    for layout, quant in LAYOUT_QUANTS.items():
        [files[layout]] = make_gguf.write_header_only(folder / f"{layout}.gguf", layout, quant)
    return files


@pytest.fixture(scope="session")
def headers(big):
    return {layout: gh.read_header(path) for layout, path in big.items()}


@pytest.fixture(scope="session")
def profiles(headers):
    return {layout: gh.model_profile([header]) for layout, header in headers.items()}
