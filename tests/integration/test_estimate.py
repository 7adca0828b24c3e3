"""playbooks/estimate.yml: the sizing report for hardware given as variables (nothing is contacted)."""

import json
import os
import re
import socket
import subprocess
import sys
from pathlib import Path

import make_gguf  # tests/support (on the path through pytest.ini)
import pytest

ROOT = Path(__file__).resolve().parents[2]


def estimate(extra=None):
    env = dict(os.environ, ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"), ANSIBLE_LOCALHOST_WARNING="0",
               ANSIBLE_INVENTORY_UNPARSED_WARNING="0")
    out = subprocess.run(["ansible-playbook", "playbooks/estimate.yml", "-e", json.dumps(extra or {})], cwd=ROOT,
                         env=env, capture_output=True, text=True, check=False, timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr
    return out.stdout


def test_seed_build_report():
    report = estimate()
    assert "24 of 24 channels populated, 4800 MT/s" in report
    assert "peak 921.6 GB/s" in report
    expected = float(re.search(r"expected ([\d.]+) \(likely ([\d.]+)-([\d.]+)", report).group(1))
    assert 1.0 <= expected <= 2.5  # the seed thread's "1-2 tok/s"
    assert "RAM        needs" in report and "has 412.3 GB" in report


def test_half_populated_single_socket_warns_and_is_slower():
    half = estimate({"estimate_hardware": {"cpu_model": "AMD EPYC 9454P 48-Core Processor", "sockets": 1,
                                           "cores": 48, "numa_nodes": 1, "memory_channels": 6,
                                           "memory_speed_mts": 4800, "memory_total_bytes": 412316860416}})
    assert "6 of 12 channels populated" in half
    assert "WARNING    6 of 12 memory channels are populated" in half
    assert float(re.search(r"expected ([\d.]+)", half).group(1)) < 1.0


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def deepseek_hub(tmp_path_factory):
    """A local hub serving DeepSeek-V3's real tensor layout at Q4_K_M and Q6_K as header-only shards.

    The data sections are sparse (hundreds of GB of zeros cost no disk), so their listing
    checksums are declared in sidecars instead of hashed; nothing here downloads them.
    """
    root = tmp_path_factory.mktemp("www")
    repo = root / "deepseek-ai" / "DeepSeek-V3-GGUF" / "resolve" / "main"
    for quant in ("Q4_K_M", "Q6_K"):
        (repo / quant).mkdir(parents=True)
        for path in make_gguf.write_header_only(str(repo / quant / f"DeepSeek-V3-{quant}.gguf"), "deepseek-v3", quant,
                                                split_max_tensors=400):
            Path(str(path) + ".sha256").write_text("0" * 64 + "\n")
    port, pidfile, log = free_port(), root / "hub.pid", root / "requests.jsonl"
    subprocess.run([sys.executable, str(ROOT / "tests" / "support" / "hf_server.py"), "--daemon", "--root", str(root),
                    "--port", str(port), "--pidfile", str(pidfile), "--request-log", str(log)], check=True)
    yield f"http://127.0.0.1:{port}", log
    subprocess.run([sys.executable, str(ROOT / "tests" / "support" / "hf_server.py"), "--stop", "--pidfile",
                    str(pidfile)], check=False)


def test_moe_repo_is_sized_from_its_gguf_headers_without_downloading(deepseek_hub):
    endpoint, log = deepseek_hub
    report = estimate({"estimate_repo": "deepseek-ai/DeepSeek-V3-GGUF", "estimate_quant": "Q4_K_M",
                       "estimate_endpoint": endpoint})
    assert "Experts  mixture of experts: 8 of 256 used per token" in report
    active = float(re.search(r"used per token, ([\d.]+) GB read per token", report).group(1))
    size = float(re.search(r"Model    deepseek-ai/DeepSeek-V3-GGUF@main \(\d+ file\(s\)\): ([\d.]+)", report)[1])
    assert 380 < size < 420 and 15 < active < 30, (size, active)
    # MLA: 61 layers x (512 + 64) x 2 bytes per token, exact from the header.
    assert "KV cache for 4096 tokens, from the GGUF header (mla" in report
    expected = float(re.search(r"expected ([\d.]+)", report).group(1))
    assert expected > 5, "a token reads ~22 GB, not 400 GB"
    # Only header bytes crossed the wire: a few MB per shard, not hundreds of GB.
    sent = sum(json.loads(line).get("bytes", 0) for line in log.read_text().splitlines())
    assert sent < 64 * 2**20, sent


def test_auto_quant_picks_what_fits(deepseek_hub):
    endpoint, _ = deepseek_hub
    report = estimate({"estimate_repo": "deepseek-ai/DeepSeek-V3-GGUF", "estimate_quant": "auto",
                       "estimate_endpoint": endpoint})
    # 412 GB of RAM: Q6_K (~550 GB) does not fit; Q4_K_M (~405 GB + KV + 4.3 GB overhead) does.
    assert re.search(r"Q6_K\s+[\d.]+ GB, needs\s+[\d.]+ GB: does not fit", report), report
    assert re.search(r"Q4_K_M\s+[\d.]+ GB, needs\s+[\d.]+ GB: fits, [\d.]+ tok/s  <- chosen", report), report
    assert "Model    deepseek-ai/DeepSeek-V3-GGUF@main" in report and ", Q4_K_M" in report
