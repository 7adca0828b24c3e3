#!/usr/bin/env python3
"""How much of the link a parallel download uses, against the local hub with a per-connection cap.

The Hub's CDN caps each connection well below a server's link (hf_transfer and aria2c open many
connections for this reason). This starts tests/support/hf_server.py on 127.0.0.1 with
--per-connection-rate CAP, serves a generated sparse file, downloads it with N connections
(the role's default, 8) and with 1, through the production code (resumable_download.fetch:
chunks, pwrite, in-order sha256, page-cache eviction), and prints

  download_vs_link=<r>   achieved aggregate rate / min(N x CAP, loopback limit)

where the loopback limit is what the same code reaches against an uncapped hub (N connections),
i.e. what this machine's loopback, Python server and hashing can carry. Files live on tmpfs
(/dev/shm when present) so the disk does not enter the ratio. Target: >= 0.9 with 8 connections.

Usage: benchmarks/download_vs_link.py [--size-mib 512] [--cap-mbs 20] [--connections 8]
"""

import argparse
import hashlib
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "collections"))  # a standalone script: the embedded collection, as pytest.ini does

from ansible_collections.cpu_llm.infra.plugins.module_utils import resumable_download as rd  # noqa: E402

HUB = ROOT / "tests" / "support" / "hf_server.py"
MIB = 1 << 20


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def make_file(path, size):
    """A sparse file with some random blocks: cheap to create and to serve, hashed like any other."""
    with open(path, "wb") as handle:
        handle.truncate(size)
        for offset in range(0, size, 64 * MIB):
            handle.seek(offset)
            handle.write(os.urandom(MIB))
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(8 * MIB), b""):
            digest.update(block)
    return digest.hexdigest()


def start_hub(www, *flags):
    port = free_port()
    proc = subprocess.Popen([sys.executable, str(HUB), "--root", str(www), "--port", str(port), *flags])
    for _ in range(100):
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return proc, f"http://127.0.0.1:{port}/org/bench/resolve/main"
        time.sleep(0.05)
    proc.terminate()
    raise SystemExit("hub did not start")


def warm(url):
    """The hub's Sha256Cache hashes a file on its first /resolve/ request: do that before timing."""
    urllib.request.urlopen(urllib.request.Request(url, method="HEAD"), timeout=60).close()


def timed_fetch(url, sha, size, work, connections, chunk_size):
    dest, staging = work / "out" / "f.gguf", work / "out" / ".staging"
    shutil.rmtree(work / "out", ignore_errors=True)
    began = time.monotonic()
    result = rd.fetch(url, str(dest), str(staging), sha256=sha, size=size, connections=connections,
                      chunk_size=chunk_size, timeout=30)
    seconds = time.monotonic() - began
    assert result["sha256"] == sha and result["bytes_downloaded"] == size, result
    shutil.rmtree(work / "out", ignore_errors=True)
    return size / seconds, seconds


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mib", type=int, default=512, help="file downloaded with N connections")
    parser.add_argument("--single-size-mib", type=int, default=128, help="file downloaded with 1 connection")
    parser.add_argument("--cap-mbs", type=float, default=20.0, help="per-connection cap, MB/s (1e6 bytes)")
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--chunk-mib", type=int, default=16,
                        help="chunk size; production uses 64 MiB on multi-GB shards, scaled down with the file")
    args = parser.parse_args()
    cap = args.cap_mbs * 1e6
    shm = "/dev/shm"  # noqa: S108 - mkdtemp makes a private directory there
    base = shm if os.path.isdir(shm) else None
    work = Path(tempfile.mkdtemp(prefix="download_vs_link.", dir=base))
    procs = []
    try:
        repo = work / "www" / "org" / "bench" / "resolve" / "main"
        repo.mkdir(parents=True)
        size, single = args.size_mib * MIB, args.single_size_mib * MIB
        sha = make_file(repo / "big.gguf", size)
        sha_single = make_file(repo / "small.gguf", single)
        proc, capped = start_hub(work / "www", "--per-connection-rate", str(cap))
        procs.append(proc)
        proc, uncapped = start_hub(work / "www")
        procs.append(proc)
        for url in (capped, uncapped):
            warm(f"{url}/big.gguf")
            warm(f"{url}/small.gguf")
        chunk = args.chunk_mib * MIB
        loopback, _ = timed_fetch(f"{uncapped}/big.gguf", sha, size, work, args.connections, chunk)
        rate, seconds = timed_fetch(f"{capped}/big.gguf", sha, size, work, args.connections, chunk)
        rate1, seconds1 = timed_fetch(f"{capped}/small.gguf", sha_single, single, work, 1, chunk)
    finally:
        for proc in procs:
            proc.terminate()
            proc.wait()
        shutil.rmtree(work, ignore_errors=True)
    link = min(args.connections * cap, loopback)
    print(f"file {size / 1e6:.0f} MB, per-connection cap {cap / 1e6:.0f} MB/s, chunk {args.chunk_mib} MiB, "
          f"loopback limit (uncapped, {args.connections} connections) {loopback / 1e6:.0f} MB/s")
    print(f"{args.connections} connections: {rate / 1e6:.1f} MB/s in {seconds:.1f} s; "
          f"link = min({args.connections} x {cap / 1e6:.0f}, {loopback / 1e6:.0f}) = {link / 1e6:.0f} MB/s")
    print(f"1 connection: {rate1 / 1e6:.1f} MB/s in {seconds1:.1f} s ({single / 1e6:.0f} MB file); "
          f"speedup {rate / rate1:.1f}x")
    print(f"single_connection_rate_mbs={rate1 / 1e6:.1f}")
    print(f"download_vs_link={rate / link:.2f}")


if __name__ == "__main__":
    main()
