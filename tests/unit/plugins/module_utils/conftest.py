"""A local hub (tests/support/hf_server.py) serving one file, for the download tests."""

import json
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

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
